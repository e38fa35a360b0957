//! What a manifest means is exactly what a device checks (issue 19): one hardware per manifest,
//! `verify` runs every device check in README's order, and key files are the ones OpenSSL and
//! Python's `cryptography` read and write.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{Duration, Utc};
use nowatch_ota::signing::{MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSigner, SPEC_VERSION};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error_shape, image_bytes, publish, sha256_hex, spawn_app_with, upload, upload_ok,
};

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nowatch-ota")).args(args).output().unwrap()
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().expect("openssl")
}

/// `verify` of `manifest` and `image` against `key` (base64), with the device's `extra` facts.
fn verify(manifest: &Path, image: &Path, key: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "verify",
        "--manifest",
        manifest.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--public-key",
        key,
    ];
    args.extend_from_slice(extra);
    cli(&args)
}

async fn set_floor(app: &TestApp, hardware: &str, version: &str) {
    let response = app
        .client
        .put(app.url(&format!("/v1/admin/hardware/{hardware}/floor")))
        .bearer_auth(app.admin_token())
        .json(&json!({"min_version": version}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_manifest_names_only_the_hardware_it_was_issued_for() {
    let app = spawn_app_with(&[]).await;
    let bytes = image_bytes(3, 8192);
    let release = upload_ok(&app, "1.5.0", &["hw-a", "hw-b"], bytes.clone()).await;
    let id = release["id"].as_str().unwrap();
    publish(&app, id, json!({"channel": "stable"})).await;
    set_floor(&app, "hw-a", "1.0.0").await;
    set_floor(&app, "hw-b", "2.0.0").await;

    let token = app.user_token();
    let manifest: Value = app
        .get(&format!("/v1/firmware/{id}/manifest?hardware=hw-a"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifest["signed"]["hardware"], json!(["hw-a"]), "{manifest}");
    assert_eq!(manifest["signed"]["min_version"], "1.0.0");

    let dir = tempfile::tempdir().unwrap();
    let (path, image) = (dir.path().join("m.json"), dir.path().join("fw.bin"));
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    std::fs::write(&image, &bytes).unwrap();
    let keys: Value =
        app.get("/v1/firmware/keys").bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let key = keys["keys"][0]["public_key"].as_str().unwrap();

    let ok = verify(&path, &image, key, &["--hardware", "hw-a", "--current-version", "1.0.0"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // The hw-a manifest, floor 1.0.0, on a hw-b device whose floor is 2.0.0: refused.
    let other = verify(&path, &image, key, &["--hardware", "hw-b", "--current-version", "1.0.0"]);
    assert!(!other.status.success(), "a hw-b device accepted the hw-a manifest");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("hw-b"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

fn signed_body(bytes: &[u8], version: &str, channel: &str, min_from: Option<&str>) -> ManifestBody {
    let now = Utc::now();
    ManifestBody {
        kind: MANIFEST_TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        firmware_id: uuid::Uuid::new_v4().to_string(),
        version: version.into(),
        hardware: vec!["nw-s1".into()],
        channel: channel.into(),
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        min_version: None,
        min_from_version: min_from.map(str::to_owned),
        mandatory: false,
        issued_at: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        expires_at: (now + Duration::days(7)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        release_signature: None,
        chunk_size: None,
        chunk_table_sha256: None,
    }
}

#[test]
fn verify_refuses_a_release_the_device_may_not_install_from_its_version_or_channel() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[11u8; 32]);
    let signer = ManifestSigner::new(key.clone(), Vec::new());
    let public = BASE64.encode(key.verifying_key().as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let bytes = image_bytes(5, 4096);
    let image = dir.path().join("fw.bin");
    std::fs::write(&image, &bytes).unwrap();
    let manifest = dir.path().join("m.json");
    let body = signed_body(&bytes, "3.0.0", "beta", Some("2.0.0"));
    std::fs::write(&manifest, serde_json::to_vec(&ManifestEnvelope::sign(&body, &signer).unwrap()).unwrap())
        .unwrap();

    let from_1 = verify(&manifest, &image, &public, &["--current-version", "1.0.0"]);
    assert!(!from_1.status.success(), "3.0.0 needs 2.0.0 first, yet 1.0.0 accepted it");
    assert!(String::from_utf8_lossy(&from_1.stderr).contains("min_from_version"));
    let from_2 = verify(&manifest, &image, &public, &["--current-version", "2.0.0"]);
    assert!(from_2.status.success(), "{}", String::from_utf8_lossy(&from_2.stderr));

    // A beta manifest is for beta devices and those on less stable channels.
    for (channel, accepted) in [("stable", false), ("beta", true), ("alpha", true), ("internal", true)] {
        let out = verify(&manifest, &image, &public, &["--current-version", "2.0.0", "--channel", channel]);
        assert_eq!(out.status.success(), accepted, "{channel}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let unknown = verify(&manifest, &image, &public, &["--channel", "nightly"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("--channel"));
    // The order of channels is the device's to know; --channels names it.
    let own = verify(&manifest, &image, &public, &["--channel", "stable", "--channels", "beta,stable"]);
    assert!(own.status.success(), "{}", String::from_utf8_lossy(&own.stderr));
}

#[test]
fn the_readme_lists_the_device_checks_in_the_order_verify_runs_them() {
    let readme = include_str!("../../README.md");
    let start = readme.find("<!-- device checks -->").expect("README marks its list of device checks");
    let end = start + readme[start..].find("<!-- /device checks -->").unwrap();
    let listed: Vec<&str> = readme[start..end]
        .lines()
        .filter_map(|l| l.trim().split_once(". **"))
        .map(|(_, rest)| rest.split("**").next().unwrap())
        .collect();
    let names: Vec<&str> = nowatch_ota::signing::DEVICE_CHECKS.iter().map(|c| c.name()).collect();
    assert_eq!(listed, names);
}

#[test]
fn keygen_writes_a_pkcs8_v1_key_openssl_and_python_read_only_its_owner_can() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let made = cli(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let read = openssl(&["pkey", "-in", key.to_str().unwrap(), "-noout", "-text"]);
    assert!(read.status.success(), "openssl: {}", String::from_utf8_lossy(&read.stderr));
    let python = Command::new("python3")
        .args([
            "-c",
            "import sys; from cryptography.hazmat.primitives.serialization import load_pem_private_key; \
             load_pem_private_key(open(sys.argv[1], 'rb').read(), None)",
            key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(python.status.success(), "cryptography: {}", String::from_utf8_lossy(&python.stderr));

    // Never through a link planted where the key goes, and never over a file.
    let target = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, dir.path().join("planted.pem")).unwrap();
    let planted = cli(&["keygen", "--out", dir.path().join("planted.pem").to_str().unwrap()]);
    assert!(!planted.status.success());
    assert!(!target.exists(), "keygen wrote through a symlink");
    let before = std::fs::read(&key).unwrap();
    assert!(!cli(&["keygen", "--out", key.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

/// An ed25519 key made by `openssl genpkey`, and its public half as SubjectPublicKeyInfo PEM.
fn openssl_key(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    assert!(
        openssl(&["genpkey", "-algorithm", "ed25519", "-out", private.to_str().unwrap()]).status.success()
    );
    let out =
        openssl(&["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    assert!(out.status.success());
    (private, public)
}

#[tokio::test]
async fn keys_from_openssl_sign_manifests_and_releases() {
    let dir = tempfile::tempdir().unwrap();
    let (online, online_pub) = openssl_key(dir.path(), "online");
    let keys_dir = dir.path().join("release-keys");
    std::fs::create_dir(&keys_dir).unwrap();
    let (release_key, release_pub) = openssl_key(dir.path(), "ci");
    std::fs::copy(&release_pub, keys_dir.join("ci.pem")).unwrap();
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__SIGNING__KEY_FILE", online.to_str().unwrap()),
        ("NOWATCH_OTA__SIGNING__REQUIRE_RELEASE_SIGNATURE", "true"),
        ("NOWATCH_OTA__SIGNING__RELEASE_KEYS_DIR", keys_dir.to_str().unwrap()),
    ])
    .await;

    // A release signature made with OpenSSL alone, over the 32-byte SHA-256 digest.
    let bytes = image_bytes(6, 30_000);
    let digest = dir.path().join("digest.bin");
    std::fs::write(&digest, hex::decode(sha256_hex(&bytes)).unwrap()).unwrap();
    let sig = dir.path().join("sig.bin");
    let signed = openssl(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-inkey",
        release_key.to_str().unwrap(),
        "-in",
        digest.to_str().unwrap(),
        "-out",
        sig.to_str().unwrap(),
    ]);
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let signature = BASE64.encode(std::fs::read(&sig).unwrap());
    let metadata = json!({"version": "1.0.0", "hardware": ["nw-s1"], "release_signature": signature});
    let response = upload(&app, &metadata, bytes.clone()).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    publish(&app, &id, json!({"channel": "stable"})).await;
    let forged = upload(
        &app,
        &json!({"version": "1.0.1", "hardware": ["nw-s1"], "release_signature": BASE64.encode([0u8; 64])}),
        bytes.clone(),
    )
    .await;
    assert_error_shape(forged, 400, "/v1/admin/firmware").await;

    // Manifests signed with the OpenSSL key verify with its public half.
    let manifest: Value = app
        .get(&format!("/v1/firmware/{id}/manifest"))
        .bearer_auth(app.user_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (path, image) = (dir.path().join("m.json"), dir.path().join("fw.bin"));
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    std::fs::write(&image, &bytes).unwrap();
    let ok = verify(&path, &image, online_pub.to_str().unwrap(), &["--hardware", "nw-s1"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[tokio::test]
async fn a_channel_with_a_role_is_invisible_to_callers_without_it() {
    let app = spawn_app_with(&[]).await;
    let internal =
        upload_ok(&app, "2.0.0", &["nw-s1"], image_bytes(21, 4096)).await["id"].as_str().unwrap().to_owned();
    publish(&app, &internal, json!({"channel": "internal"})).await;
    let stable =
        upload_ok(&app, "1.5.0", &["nw-s1"], image_bytes(22, 4096)).await["id"].as_str().unwrap().to_owned();
    publish(&app, &stable, json!({"channel": "stable"})).await;

    let user = app.user_token();
    let tester = crate::helpers::token(json!({"sub": "uid_tester", "roles": ["tester"]}));
    let get = |path: String, token: String| {
        let request = app.get(&path).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let listed = |token: String| {
        let request = app.get("/v1/firmware?hardware=nw-s1&channel=internal").bearer_auth(token);
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["version"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let check =
        "/v1/firmware/check?hardware=nw-s1&version=1.0.0&device_id=watch-int-1&channel=internal".to_owned();

    // A plain token: the internal release is nowhere.
    assert_eq!(listed(user.clone()).await, ["1.5.0"]);
    let offer: Value = get(check.clone(), user.clone()).await.json().await.unwrap();
    assert_eq!(offer["firmware"]["version"], "1.5.0", "{offer}");
    for path in [
        format!("/v1/firmware/{internal}"),
        format!("/v1/firmware/{internal}/manifest"),
        format!("/v1/firmware/{internal}/manifest?channel=internal"),
        format!("/v1/firmware/{internal}/download"),
    ] {
        let response = get(path.clone(), user.clone()).await;
        assert_error_shape(response, 404, path.split('?').next().unwrap()).await;
    }
    let manifest = get(format!("/v1/firmware/{stable}/manifest?channel=internal"), user.clone()).await;
    assert_eq!(manifest.status(), 404, "a manifest issued for the internal channel");

    // Nor can it report for it (its health is the testers' alone).
    let report = format!("/v1/firmware/{internal}/report");
    let response = app
        .post(&report)
        .bearer_auth(&user)
        .json(&json!({"device_id": "watch-int-1", "status": "failed", "from_version": "1.0.0"}))
        .send()
        .await
        .unwrap();
    assert_error_shape(response, 404, &report).await;

    // The role, and admins, see it.
    for token in [tester.clone(), app.admin_token()] {
        assert_eq!(listed(token.clone()).await, ["2.0.0", "1.5.0"]);
        let offer: Value = get(check.clone(), token.clone()).await.json().await.unwrap();
        assert_eq!(offer["firmware"]["version"], "2.0.0");
        assert_eq!(get(format!("/v1/firmware/{internal}/download"), token.clone()).await.status(), 200);
        assert_eq!(get(format!("/v1/firmware/{internal}/manifest"), token).await.status(), 200);
    }

    // Revoked (its rollouts aborted, out of the catalog), it stays hidden from a plain token.
    let revoked = app
        .post(&format!("/v1/admin/firmware/{internal}/revoke"))
        .bearer_auth(app.admin_token())
        .json(&json!({"reason": "test build"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    for path in [format!("/v1/firmware/{internal}"), format!("/v1/firmware/{internal}/download")] {
        let response = get(path.clone(), user.clone()).await;
        assert_error_shape(response, 404, &path).await;
    }
    assert_eq!(get(format!("/v1/firmware/{internal}"), tester).await.status(), 200);
}

#[tokio::test]
async fn channel_roles_are_configured_per_channel() {
    let app = spawn_app_with(&[("NOWATCH_OTA__FIRMWARE__CHANNEL_ROLES__BETA", "beta-tester")]).await;
    let beta =
        upload_ok(&app, "3.0.0", &["nw-s1"], image_bytes(23, 4096)).await["id"].as_str().unwrap().to_owned();
    publish(&app, &beta, json!({"channel": "beta"})).await;
    let path = format!("/v1/firmware/{beta}");
    assert_eq!(app.get(&path).bearer_auth(app.user_token()).send().await.unwrap().status(), 404);
    let member = crate::helpers::token(json!({"sub": "uid_b", "roles": ["beta-tester"]}));
    assert_eq!(app.get(&path).bearer_auth(member).send().await.unwrap().status(), 200);

    let dir = tempfile::tempdir().unwrap();
    let mut env = crate::helpers::base_env(&dir).await;
    env.insert("NOWATCH_OTA__FIRMWARE__CHANNEL_ROLES__NIGHTLY".into(), "tester".into());
    let error = nowatch_ota::config::Settings::load_from(env).unwrap_err().to_string();
    assert!(error.contains("firmware.channel_roles") && error.contains("nightly"), "{error}");
}
