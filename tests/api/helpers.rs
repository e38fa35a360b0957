//! Test harness: `spawn_app()` builds the real application on port 0 with a fresh database
//! (SQLite in a temp dir, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set) and a
//! fresh blob store (a temp dir, or a fresh bucket on a real S3-compatible server when
//! `TEST_STORAGE=s3`), plus helpers to mint tokens.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use nowatch_ota::config::{DEV_HS_SECRET, Settings};
use nowatch_ota::startup::Application;
use nowatch_ota::state::AppState;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: actix_web::web::Data<AppState>,
    pub dir: tempfile::TempDir,
    _gate: MemoryGate,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    pub fn admin_token(&self) -> String {
        token(json!({"sub": "release-bot", "isAdmin": true}))
    }

    pub fn user_token(&self) -> String {
        token(json!({"sub": "uid_user"}))
    }

    /// A token of the account that owns `device` alone: reports sent with it count towards a
    /// rollout's health whatever `rollout.max_devices_per_owner` is.
    pub fn owner_token(&self, device: &str) -> String {
        token(json!({"sub": format!("owner-of-{device}")}))
    }
}

/// The application on the embedded defaults plus whatever the test environment selects.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Like [`spawn_app`], with extra `NOWATCH_OTA__...` settings as `(key, value)` pairs.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let gate = MemoryGate::enter().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&dir).await;
    for (k, v) in overrides {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = Settings::load_from(env).unwrap();
    let app = Application::build(settings).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    tokio::spawn(app.run_until_stopped());
    TestApp { address, client: reqwest::Client::new(), state, dir, _gate: gate }
}

/// Settings for a fresh, isolated instance, as environment variables.
pub async fn base_env(dir: &tempfile::TempDir) -> HashMap<String, String> {
    let mut env = HashMap::new();
    let root = dir.path();
    env.insert("NOWATCH_OTA__SERVER__PORT".into(), "0".into());
    env.insert("NOWATCH_OTA__SERVER__WORKERS".into(), "2".into());
    env.insert("NOWATCH_OTA__LOG__LEVEL".into(), "warn".into());
    // Tests check and report for the same devices many times a second; the tests of the limits
    // turn them on.
    env.insert("NOWATCH_OTA__FIRMWARE__MIN_CHECK_INTERVAL_S".into(), "0".into());
    env.insert("NOWATCH_OTA__LIMITS__REPORTS_PER_ACCOUNT_PER_MINUTE".into(), "0".into());
    env.insert("NOWATCH_OTA__LIMITS__REPORTS_PER_DEVICE_PER_MINUTE".into(), "0".into());
    env.insert("NOWATCH_OTA__LIMITS__NEW_DEVICES_PER_ACCOUNT_PER_DAY".into(), "0".into());
    // Tests drive rollout evaluation themselves, with their own clock.
    env.insert("NOWATCH_OTA__ROLLOUT__TICK_INTERVAL_S".into(), "86400".into());
    env.insert("NOWATCH_OTA__STORAGE__FS__ROOT".into(), root.join("blobs").display().to_string());
    env.insert(
        "NOWATCH_OTA__SIGNING__RELEASE_KEYS_DIR".into(),
        root.join("release-keys").display().to_string(),
    );
    let url = match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => fresh_postgres_database(&admin_url).await,
        _ => format!("sqlite://{}/test.db", root.display()),
    };
    env.insert("NOWATCH_OTA__DATABASE__URL".into(), url);
    if std::env::var("TEST_STORAGE").as_deref() == Ok("s3") {
        env.extend(s3_env(&fresh_bucket().await));
    }
    env
}

/// Creates an empty database next to `admin_url`'s and returns its URL.
async fn fresh_postgres_database(admin_url: &str) -> String {
    let name = format!("nwota_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url).await.unwrap();
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A real S3-compatible server (s3s-fs), started once per test binary on a free port.
pub struct S3Server {
    pub endpoint: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

pub const S3_ACCESS_KEY: &str = "nwota-test-ak";
pub const S3_SECRET_KEY: &str = "nwota-test-sk";

pub fn s3_server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let port = free_port();
        let mut command = Command::new("s3s-fs");
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // A static is never dropped, so the server must die with the test process: the kernel
        // kills it when the thread that spawned it ends, and that thread lives as long as the
        // process (test threads do not).
        let (spawned_tx, spawned) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let _ = spawned_tx.send(command.spawn());
            loop {
                std::thread::park();
            }
        });
        let child = spawned.recv().unwrap().expect("s3s-fs is not installed: run ./tests/run, which installs it (cargo install s3s-fs@0.14.1 --locked --features binary)");
        assert!(listening_within(port, std::time::Duration::from_secs(5)), "s3s-fs did not start");
        S3Server { endpoint: format!("http://127.0.0.1:{port}"), _child: child, _dir: dir }
    })
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether something listens on 127.0.0.1:`port` within `within` (polled every 20 ms), for a
/// process a test has just started.
pub fn listening_within(port: u16, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Creates a new bucket on the test S3 server and returns its name.
pub async fn fresh_bucket() -> String {
    let bucket = format!("nwota-{}", uuid::Uuid::new_v4().simple());
    let server = s3_server();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&server.endpoint)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            S3_ACCESS_KEY,
            S3_SECRET_KEY,
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(config).create_bucket().bucket(&bucket).send().await.unwrap();
    bucket
}

/// Settings that point the service at `bucket` on the test S3 server.
pub fn s3_env(bucket: &str) -> HashMap<String, String> {
    let server = s3_server();
    HashMap::from([
        ("NOWATCH_OTA__STORAGE__BACKEND".into(), "s3".into()),
        ("NOWATCH_OTA__STORAGE__S3__BUCKET".into(), bucket.into()),
        ("NOWATCH_OTA__STORAGE__S3__ENDPOINT".into(), server.endpoint.clone()),
        ("NOWATCH_OTA__STORAGE__S3__PATH_STYLE".into(), "true".into()),
        ("NOWATCH_OTA__STORAGE__S3__ACCESS_KEY_ID".into(), S3_ACCESS_KEY.into()),
        ("NOWATCH_OTA__STORAGE__S3__SECRET_ACCESS_KEY".into(), S3_SECRET_KEY.into()),
    ])
}

/// An HS256 token over `claims` with the dev secret; `exp` defaults to an hour from now.
pub fn token(mut claims: Value) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    if claims.get("exp").is_none() {
        claims["exp"] = json!(now + 3600);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(DEV_HS_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Asserts the NOWATCH error shape and returns the body.
pub async fn assert_error_shape(response: reqwest::Response, status: u16, path: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["statusCode"], status);
    assert_eq!(body["path"], path);
    assert!(body["message"].is_array() && !body["message"].as_array().unwrap().is_empty(), "{body}");
    assert!(body["error"].is_string());
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    body
}

/// Uploads `bytes` as a release with the given metadata JSON, as an admin.
pub async fn upload(app: &TestApp, metadata: &Value, bytes: Vec<u8>) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .part("metadata", reqwest::multipart::Part::text(metadata.to_string()))
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name("firmware.bin"));
    app.post("/v1/admin/firmware").bearer_auth(app.admin_token()).multipart(form).send().await.unwrap()
}

/// Uploads and returns the created release's JSON, asserting 201.
pub async fn upload_ok(app: &TestApp, version: &str, hardware: &[&str], bytes: Vec<u8>) -> Value {
    let response = upload(app, &json!({"version": version, "hardware": hardware}), bytes).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Publishes a release on a channel and returns the rollout JSON, asserting 201.
pub async fn publish(app: &TestApp, id: &str, body: Value) -> Value {
    let response = app
        .post(&format!("/v1/admin/firmware/{id}/publish"))
        .bearer_auth(app.admin_token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Deterministic pseudo-random bytes, different per seed.
pub fn image_bytes(seed: u8, len: usize) -> Vec<u8> {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The number of release rows.
pub async fn firmware_rows(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    nowatch_ota::db::entities::firmware::Entity::find().count(&app.state.db).await.unwrap()
}

/// Object keys under a prefix of the app's store.
pub async fn stored_keys(app: &TestApp, prefix: &str) -> Vec<String> {
    app.state.store.list(prefix).await.unwrap().into_iter().map(|o| o.key).collect()
}

/// Collects a blob stream.
pub async fn read_all(mut stream: nowatch_ota::storage::BlobStream) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Resident memory of this process (the service runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Samples this process's resident memory every 20 ms, on its own thread, until [`Self::growth`].
pub struct RssSampler {
    before: u64,
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sampling: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    pub fn start() -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let before = rss_bytes();
        let peak = std::sync::Arc::new(AtomicU64::new(before));
        let sampling = std::sync::Arc::new(AtomicBool::new(true));
        let thread = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
        };
        Self { before, peak, sampling, thread }
    }

    /// Stops sampling and returns how far the peak rose above the start, in bytes.
    pub fn growth(self) -> u64 {
        use std::sync::atomic::Ordering;
        self.sampling.store(false, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak.load(Ordering::Relaxed).saturating_sub(self.before)
    }
}

/// The version the update check offers `device` (None on 204), with a user token.
pub async fn offered_version(app: &TestApp, query: &str) -> Option<String> {
    let response =
        app.get(&format!("/v1/firmware/check?{query}")).bearer_auth(app.user_token()).send().await.unwrap();
    match response.status().as_u16() {
        204 => None,
        200 => {
            Some(response.json::<Value>().await.unwrap()["firmware"]["version"].as_str().unwrap().to_owned())
        }
        other => panic!("check answered {other}: {}", response.text().await.unwrap()),
    }
}

/// The tests share one process, so a test that measures this process's memory must not run
/// while other tests stream large bodies. Every app holds a shared place; [`measure_memory_alone`]
/// waits until only the caller's own app is left and keeps others out until it is dropped.
/// (A waiting measurement never blocks a test that is already running, so nothing deadlocks.)
static GATE: std::sync::Mutex<(usize, bool)> = std::sync::Mutex::new((0, false));

pub struct MemoryGate;

impl MemoryGate {
    pub async fn enter() -> Self {
        loop {
            {
                let mut gate = GATE.lock().unwrap();
                if !gate.1 {
                    gate.0 += 1;
                    return MemoryGate;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for MemoryGate {
    fn drop(&mut self) {
        let mut gate = GATE.lock().unwrap_or_else(|e| e.into_inner());
        gate.0 -= 1;
    }
}

pub struct Alone;

/// Waits until the caller's own `apps` are the only ones running, then keeps new ones out.
pub async fn measure_memory_alone(apps: usize) -> Alone {
    loop {
        {
            let mut gate = GATE.lock().unwrap();
            if !gate.1 && gate.0 <= apps {
                gate.1 = true;
                return Alone;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        GATE.lock().unwrap_or_else(|e| e.into_inner()).1 = false;
    }
}

/// The base64 public keys `GET /v1/firmware/keys` lists, the active one first.
pub async fn manifest_public_keys(app: &TestApp) -> Vec<String> {
    let response = app.get("/v1/firmware/keys").bearer_auth(app.user_token()).send().await.unwrap();
    let keys: Value = response.json().await.unwrap();
    let mut keys: Vec<&Value> = keys["keys"].as_array().unwrap().iter().collect();
    keys.sort_by_key(|k| k["status"] != "active");
    keys.iter().map(|k| k["public_key"].as_str().unwrap().to_owned()).collect()
}

/// `POST /v1/firmware/{firmware}/report` for `device`, with its owner's token.
pub async fn report_as_owner(
    app: &TestApp,
    firmware: &str,
    device: &str,
    mut body: Value,
) -> reqwest::Response {
    body["device_id"] = json!(device);
    app.post(&format!("/v1/firmware/{firmware}/report"))
        .bearer_auth(app.owner_token(device))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `GET path` with an admin token.
pub async fn admin_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.get(path).bearer_auth(app.admin_token()).send().await.unwrap()
}
