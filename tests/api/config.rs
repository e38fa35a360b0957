use std::collections::HashMap;

use nowatch_ota::config::{Settings, StorageBackend};
use nowatch_ota::startup::Application;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn load_error(pairs: &[(&str, &str)]) -> String {
    Settings::load_from(env(pairs)).unwrap_err().to_string()
}

#[test]
fn defaults_are_the_embedded_sqlite_and_files_setup() {
    let settings = Settings::load_from(HashMap::new()).unwrap();
    assert_eq!(settings.database.url, "sqlite://data/nowatch-ota.db");
    assert_eq!(settings.storage.backend, StorageBackend::Fs);
    assert_eq!(settings.storage.fs.root.to_str(), Some("data/blobs"));
    assert_eq!(settings.firmware.channels, ["stable", "beta", "alpha", "internal"]);
    assert!(!settings.production);
}

#[test]
fn environment_variables_override_the_file_and_lists_split_on_commas() {
    let settings = Settings::load_from(env(&[
        ("NOWATCH_OTA__SERVER__PORT", "9999"),
        ("NOWATCH_OTA__FIRMWARE__CHANNELS", "stable,canary"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1/x"),
    ]))
    .unwrap();
    assert_eq!(settings.server.port, 9999);
    assert_eq!(settings.firmware.channels, ["stable", "canary"]);
    assert!(settings.is_postgres());
}

#[test]
fn the_proxy_takes_an_https_upstream_with_a_base_path_and_comma_separated_prefixes() {
    let settings = Settings::load_from(env(&[
        ("NOWATCH_OTA__PROXY__UPSTREAM", "https://api.nowatch.example/nowatch"),
        ("NOWATCH_OTA__PROXY__PREFIXES", "/v1/user,/v1/session"),
    ]))
    .unwrap();
    assert_eq!(settings.proxy.upstream, "https://api.nowatch.example/nowatch");
    assert_eq!(settings.proxy.prefixes, ["/v1/user", "/v1/session"]);
    let defaults = Settings::load_from(HashMap::new()).unwrap();
    assert_eq!(defaults.proxy.upstream, "", "no upstream unless configured");
    assert_eq!(defaults.proxy.prefixes.len(), 15);
}

#[test]
fn a_config_file_named_by_nowatch_ota_config_is_layered_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ota.toml");
    std::fs::write(&path, "[server]\nport = 7000\n[firmware]\npoll_after_s = 60\n").unwrap();
    let settings = Settings::load_from(env(&[("NOWATCH_OTA_CONFIG", path.to_str().unwrap())])).unwrap();
    assert_eq!(settings.server.port, 7000);
    assert_eq!(settings.firmware.poll_after_s, 60);
    assert_eq!(settings.server.host, "127.0.0.1", "keys the file omits keep their defaults");
}

#[test]
fn a_missing_config_file_is_refused() {
    let message = load_error(&[("NOWATCH_OTA_CONFIG", "/nonexistent/ota.toml")]);
    assert!(message.contains("NOWATCH_OTA_CONFIG"), "{message}");
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("NOWATCH_OTA__SERVER__PORT", "eighty", "port"),
        ("NOWATCH_OTA__SERVER__PROT", "80", "prot"),
        ("NOWATCH_OTA__STORAGE__BACKEND", "s3", "storage.s3.bucket"),
        ("NOWATCH_OTA__STORAGE__BACKEND", "ftp", "backend"),
        ("NOWATCH_OTA__AUTH__ALGORITHM", "none", "auth.algorithm"),
        ("NOWATCH_OTA__AUTH__ALGORITHM", "RS256", "auth.public_key_file"),
        ("NOWATCH_OTA__AUTH__HS_SECRET", "short", "auth.hs_secret"),
        ("NOWATCH_OTA__DATABASE__URL", "mysql://x", "database.url"),
        ("NOWATCH_OTA__FIRMWARE__CHANNELS", "stable,stable", "firmware.channels"),
        ("NOWATCH_OTA__FIRMWARE__DOWNLOAD_MODE", "redirect", "firmware.download_mode"),
        ("NOWATCH_OTA__FIRMWARE__CHUNK_SIZE", "4000", "firmware.chunk_size"),
        ("NOWATCH_OTA__FIRMWARE__CHUNK_SIZE", "256", "firmware.chunk_size"),
        ("NOWATCH_OTA__STORAGE__S3__PRESIGN_TTL_S", "901", "storage.s3.presign_ttl_s"),
        ("NOWATCH_OTA__STORAGE__S3__PRESIGN_TTL_S", "604800", "storage.s3.presign_ttl_s"),
        ("NOWATCH_OTA__STORAGE__S3__PUBLIC_ENDPOINT", "s3.example.com", "storage.s3.public_endpoint"),
        (
            "NOWATCH_OTA__STORAGE__S3__PUBLIC_ENDPOINT",
            "https://ak:sk@s3.example.com",
            "storage.s3.public_endpoint",
        ),
        ("NOWATCH_OTA__PROXY__UPSTREAM", "ftp://backend", "proxy.upstream"),
        ("NOWATCH_OTA__PROXY__UPSTREAM", "backend:3000", "proxy.upstream"),
        ("NOWATCH_OTA__PROXY__UPSTREAM", "http://backend:3000/?x=1", "proxy.upstream"),
        ("NOWATCH_OTA__PROXY__TIMEOUT_S", "0", "proxy.timeout_s"),
        ("NOWATCH_OTA__ROLLOUT__MAX_DEVICES_PER_OWNER", "0", "rollout.max_devices_per_owner"),
        ("NOWATCH_OTA__PROXY__MAX_BODY_BYTES", "0", "proxy.max_body_bytes"),
        ("NOWATCH_OTA__PROXY__PREFIXES", "/v1/user,v1/session", "proxy.prefixes"),
        ("NOWATCH_OTA__PROXY__PREFIXES", "/v1/user/../admin", "proxy.prefixes"),
        ("NOWATCH_OTA__PROXY__PREFIXES", "/v1", "proxy.prefixes"),
        ("NOWATCH_OTA__PROXY__PREFIXES", "/v1/firmware/extra", "proxy.prefixes"),
    ];
    for (key, value, named) in cases {
        let message = load_error(&[(key, value)]);
        assert!(message.contains(named), "{key}={value}: {message:?} does not name {named}");
    }
}

#[test]
fn an_s3_endpoint_carrying_credentials_is_refused_without_printing_them() {
    for endpoint in ["http://AKIAEXAMPLE:wJalr/XUtnFEMI@s3:9000", "http://AKIAEXAMPLE:wJalrXUtnFEMI@s3:9000"]
    {
        let message = load_error(&[
            ("NOWATCH_OTA__STORAGE__BACKEND", "s3"),
            ("NOWATCH_OTA__STORAGE__S3__BUCKET", "firmware"),
            ("NOWATCH_OTA__STORAGE__S3__ENDPOINT", endpoint),
        ]);
        assert!(message.contains("storage.s3.endpoint"), "{message}");
        assert!(!message.contains("wJalr") && !message.contains("AKIAEXAMPLE"), "{message}");
    }
}

#[test]
fn production_refuses_the_dev_signing_key_and_the_dev_jwt_secret() {
    let message = load_error(&[("NOWATCH_OTA_ENV", "production")]);
    assert!(message.contains("signing.key_file"), "{message}");
    let message = load_error(&[
        ("NOWATCH_OTA_ENV", "production"),
        ("NOWATCH_OTA__SIGNING__KEY_FILE", "/etc/ota/signing.pem"),
    ]);
    assert!(message.contains("auth.hs_secret"), "{message}");
    let message = load_error(&[
        ("NOWATCH_OTA_ENV", "production"),
        ("NOWATCH_OTA__SIGNING__KEY_FILE", "/etc/ota/signing.pem"),
        ("NOWATCH_OTA__AUTH__HS_SECRET", "a-real-production-secret-of-enough-length"),
    ]);
    assert!(message.contains("metrics.token"), "{message}");
}

#[test]
fn a_metrics_token_must_be_long_and_sendable_and_is_never_echoed() {
    for token in ["short-token", "a token with spaces in it", "tab\tseparated-token-of-length"] {
        let message = load_error(&[("NOWATCH_OTA__METRICS__TOKEN", token)]);
        assert!(message.contains("metrics.token"), "{message}");
        assert!(!message.contains(token), "{message}");
    }
    let settings = Settings::load_from(env(&[("NOWATCH_OTA__METRICS__TOKEN", "0123456789abcdef")])).unwrap();
    assert!(!format!("{settings:?}").contains("0123456789abcdef"));
}

#[tokio::test]
async fn production_refuses_the_dev_key_even_when_named_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = crate::helpers::base_env(&dir).await;
    env.insert("NOWATCH_OTA_ENV".into(), "production".into());
    env.insert(
        "NOWATCH_OTA__SIGNING__KEY_FILE".into(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/keys/dev-signing.pem").into(),
    );
    env.insert("NOWATCH_OTA__AUTH__HS_SECRET".into(), "a-real-production-secret-of-enough-length".into());
    env.insert("NOWATCH_OTA__SERVER__PUBLIC_URL".into(), "https://ota.example.com".into());
    env.insert("NOWATCH_OTA__METRICS__TOKEN".into(), "a-real-metrics-token-for-the-scraper".into());
    let settings = Settings::load_from(env).unwrap();
    let error = Application::build(settings).await.err().unwrap().to_string();
    assert!(error.contains("DEV ONLY"), "{error}");
}

#[tokio::test]
async fn production_starts_with_a_real_key_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, nowatch_ota::signing::generate_pem().unwrap()).unwrap();
    let mut env = crate::helpers::base_env(&dir).await;
    env.insert("NOWATCH_OTA_ENV".into(), "production".into());
    env.insert("NOWATCH_OTA__SIGNING__KEY_FILE".into(), key.display().to_string());
    env.insert("NOWATCH_OTA__AUTH__HS_SECRET".into(), "a-real-production-secret-of-enough-length".into());
    env.insert("NOWATCH_OTA__SERVER__PUBLIC_URL".into(), "https://ota.example.com".into());
    env.insert("NOWATCH_OTA__METRICS__TOKEN".into(), "a-real-metrics-token-for-the-scraper".into());
    let c = crate::root::Ceremony::new();
    let root = c.root(
        "1.json",
        &["--root-key", "@r1", "--threshold", "1", "--manifest-key", key.to_str().unwrap()],
        &["r1"],
    );
    env.insert("NOWATCH_OTA__SIGNING__ROOT_DIR".into(), c.root_dir("roots", &[&root]).display().to_string());
    let app = Application::build(Settings::load_from(env).unwrap()).await.unwrap();
    assert_ne!(app.port(), 0);
}

#[tokio::test]
async fn production_refuses_to_start_without_a_root_that_lists_the_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, nowatch_ota::signing::generate_pem().unwrap()).unwrap();
    let mut env = crate::helpers::base_env(&dir).await;
    env.insert("NOWATCH_OTA_ENV".into(), "production".into());
    env.insert("NOWATCH_OTA__SIGNING__KEY_FILE".into(), key.display().to_string());
    env.insert("NOWATCH_OTA__AUTH__HS_SECRET".into(), "a-real-production-secret-of-enough-length".into());
    env.insert("NOWATCH_OTA__SERVER__PUBLIC_URL".into(), "https://ota.example.com".into());
    env.insert("NOWATCH_OTA__METRICS__TOKEN".into(), "a-real-metrics-token-for-the-scraper".into());
    let start = |env: &HashMap<String, String>| {
        let settings = Settings::load_from(env.clone()).unwrap();
        async move { Application::build(settings).await.err().map(|e| format!("{e:#}")).unwrap_or_default() }
    };
    let error = start(&env).await;
    assert!(error.contains("`signing.root_dir`") && error.contains("built-in DEV ONLY root"), "{error}");

    let c = crate::root::Ceremony::new();
    let other =
        c.root("other.json", &["--root-key", "@r1", "--threshold", "1", "--manifest-key", "@k1"], &["r1"]);
    env.insert("NOWATCH_OTA__SIGNING__ROOT_DIR".into(), c.root_dir("other", &[&other]).display().to_string());
    let error = start(&env).await;
    assert!(
        error.contains("`signing.root_dir`") && error.contains("does not list the signing key"),
        "{error}"
    );

    // Listing the key is not enough when a root key is one of the DEV ONLY ones.
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/dev-root-a.pem"), c.path("dev-a.pem")).unwrap();
    let dev = c.root(
        "dev.json",
        &["--root-key", "@dev-a", "--threshold", "1", "--manifest-key", key.to_str().unwrap()],
        &["dev-a"],
    );
    env.insert("NOWATCH_OTA__SIGNING__ROOT_DIR".into(), c.root_dir("dev", &[&dev]).display().to_string());
    let error = start(&env).await;
    assert!(error.contains("DEV ONLY root key"), "{error}");

    // Nor when the chain only starts at the DEV ONLY root: whoever holds its public private
    // halves could sign a different version 2.
    for name in ["dev-root-a", "dev-root-b"] {
        std::fs::copy(
            format!("{}/keys/{name}.pem", env!("CARGO_MANIFEST_DIR")),
            c.path(&format!("{name}.pem")),
        )
        .unwrap();
    }
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/root/1.root.json"), c.path("dev-1.json"))
        .unwrap();
    let real = c.root(
        "real-2.json",
        &[
            "--from",
            "dev-1.json",
            "--root-key",
            "@r2",
            "--threshold",
            "1",
            "--manifest-key",
            key.to_str().unwrap(),
        ],
        &["dev-root-a", "dev-root-b", "r2"],
    );
    let dev_1 = c.path("dev-1.json");
    env.insert(
        "NOWATCH_OTA__SIGNING__ROOT_DIR".into(),
        c.root_dir("from-dev", &[&dev_1, &real]).display().to_string(),
    );
    let error = start(&env).await;
    assert!(error.contains("root version 1 has a DEV ONLY root key"), "{error}");
}

#[test]
fn the_readme_documents_every_key_of_the_default_config_with_its_variable() {
    let defaults =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml")).unwrap();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut section = String::new();
    let mut keys = 0;
    for line in defaults.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_owned();
        } else if let Some((key, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            let key = format!("{section}.{}", key.trim());
            let variable = format!("NOWATCH_OTA__{}", key.to_uppercase().replace('.', "__"));
            assert!(
                readme.contains(&format!("| `{key}` | `{variable}` |")),
                "README misses {key} ({variable})"
            );
            assert!(defaults.contains(&variable), "config/default.toml does not name {variable}");
            keys += 1;
        }
    }
    assert!(keys >= 40, "{keys}");
    let documented =
        readme.lines().filter(|l| l.starts_with("| `") && l.contains("| `NOWATCH_OTA__")).count();
    assert_eq!(documented, keys, "the README documents keys that config/default.toml does not have");
}
