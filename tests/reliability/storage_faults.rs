//! The S3 server stops mid-download and mid-upload, then comes back: clear errors, `/readyz`
//! says so, and the service recovers by itself.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    S3_ACCESS_KEY, S3_SECRET_KEY, free_port, image_bytes, listening_within, publish, sha256_hex,
    spawn_app_with, upload_ok,
};
use crate::service::files_under;

/// s3s-fs on a fixed port, killed when dropped so that a failing test leaves nothing running.
pub(crate) struct S3Process(Child);

impl S3Process {
    pub(crate) fn start(port: u16, dir: &std::path::Path) -> Self {
        let child = Command::new("s3s-fs")
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                S3_ACCESS_KEY,
                "--secret-key",
                S3_SECRET_KEY,
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is installed by tests/run");
        assert!(listening_within(port, Duration::from_secs(10)), "s3s-fs did not start");
        Self(child)
    }

    /// SIGKILL: the server stops mid-request, as a crashed or partitioned S3 would.
    pub(crate) fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for S3Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The service's settings for the bucket `firmware-bucket` on s3s-fs at `port`.
pub(crate) fn s3_settings(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("NOWATCH_OTA__STORAGE__BACKEND", "s3".into()),
        ("NOWATCH_OTA__STORAGE__S3__BUCKET", "firmware-bucket".into()),
        ("NOWATCH_OTA__STORAGE__S3__ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("NOWATCH_OTA__STORAGE__S3__PATH_STYLE", "true".into()),
        ("NOWATCH_OTA__STORAGE__S3__ACCESS_KEY_ID", S3_ACCESS_KEY.into()),
        ("NOWATCH_OTA__STORAGE__S3__SECRET_ACCESS_KEY", S3_SECRET_KEY.into()),
    ]
}

async fn app_on_s3(port: u16) -> crate::helpers::TestApp {
    let settings = s3_settings(port);
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(&pairs).await
}

/// A directory for s3s-fs holding the empty bucket `firmware-bucket`.
pub(crate) fn bucket_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("firmware-bucket")).unwrap();
    dir
}

#[tokio::test]
async fn the_s3_server_going_away_mid_transfer_is_reported_and_survived() {
    let s3_dir = bucket_dir();
    let port = free_port();
    let s3 = S3Process::start(port, s3_dir.path());
    let app = app_on_s3(port).await;
    let bytes = image_bytes(5, 48 << 20);
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], bytes.clone()).await;
    let id = release["id"].as_str().unwrap().to_owned();
    publish(&app, &id, json!({"channel": "stable"})).await;
    let path = format!("/v1/firmware/{id}/download");

    // Mid-download: the client gets fewer bytes than Content-Length, never a wrong image.
    let mut download = app.get(&path).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let mut received = download.chunk().await.unwrap().unwrap().len();
    s3.kill();
    let mut failed = false;
    loop {
        match download.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed || received < bytes.len(), "a cut download must not look complete");

    // While it is down: 503 in the NOWATCH shape, readiness says why, uploads fail cleanly.
    let response = app.get(&path).bearer_auth(app.user_token()).send().await.unwrap();
    let body = crate::helpers::assert_error_shape(response, 503, &path).await;
    assert_eq!(body["message"], json!(["blob storage unavailable"]));
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("s3 blob storage unreachable"));
    let failed_upload = crate::helpers::upload(
        &app,
        &json!({"version": "2.0.0", "hardware": ["nw-s1"]}),
        image_bytes(6, 1 << 20),
    )
    .await;
    let body = crate::helpers::assert_error_shape(failed_upload, 503, "/v1/admin/firmware").await;
    assert_eq!(body["message"], json!(["blob storage unavailable"]));
    assert_eq!(crate::helpers::firmware_rows(&app).await, 1, "no row for the failed upload");

    // It comes back on the same address: the service recovers without a restart.
    let _s3 = S3Process::start(port, s3_dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let whole = app.get(&path).bearer_auth(app.user_token()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&whole), sha256_hex(&bytes));
    assert_eq!(upload_ok(&app, "2.0.0", &["nw-s1"], image_bytes(6, 1 << 20)).await["state"], "draft");
}

/// The size of the upload cut off mid-way: twelve 8 MiB multipart parts.
const UPLOAD_MIB: usize = 96;

/// A `UPLOAD_MIB` MiB release, streamed in 1 MiB pieces, and the image's SHA-256.
pub(crate) fn streamed_release(version: &str) -> (reqwest::multipart::Form, String) {
    use sha2::Digest;
    let piece = bytes::Bytes::from(image_bytes(9, 1 << 20));
    let mut hasher = sha2::Sha256::new();
    (0..UPLOAD_MIB).for_each(|_| hasher.update(&piece));
    let pieces =
        futures_util::stream::iter((0..UPLOAD_MIB).map(move |_| Ok::<_, std::io::Error>(piece.clone())));
    let file = reqwest::multipart::Part::stream_with_length(
        reqwest::Body::wrap_stream(pieces),
        (UPLOAD_MIB as u64) << 20,
    )
    .file_name("fw.bin");
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(json!({"version": version, "hardware": ["nw-s1"]}).to_string()),
        )
        .part("file", file);
    (form, hex::encode(hasher.finalize()))
}

/// Multipart parts s3s-fs holds for uploads not yet completed (it keeps them at its root).
pub(crate) fn pending_parts(s3_root: &std::path::Path) -> usize {
    std::fs::read_dir(s3_root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
        .count()
}

#[tokio::test]
async fn the_s3_server_dying_mid_upload_fails_the_upload_cleanly_and_the_same_upload_then_succeeds() {
    let s3_dir = bucket_dir();
    let port = free_port();
    let s3 = S3Process::start(port, s3_dir.path());
    let app = app_on_s3(port).await;

    let (form, sha256) = streamed_release("3.0.0");
    let upload =
        tokio::spawn(app.post("/v1/admin/firmware").bearer_auth(app.admin_token()).multipart(form).send());
    // S3 is stopped once it holds two parts of this upload: the service is mid-way through it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while pending_parts(s3_dir.path()) < 2 {
        assert!(!upload.is_finished(), "the upload ended before S3 was stopped");
        assert!(Instant::now() < deadline, "the upload never reached S3");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s3.kill();
    let killed = Instant::now();
    // actix answers as soon as the handler fails, with the body half read, and closes the
    // connection after it: the client gets the error, not a reset.
    let response = upload.await.unwrap().expect("an answer, not a dropped connection");
    println!("s3 killed mid-upload: {} after {:?}", response.status(), killed.elapsed());
    assert_eq!(response.headers()["connection"], "close");
    let body = crate::helpers::assert_error_shape(response, 503, "/v1/admin/firmware").await;
    assert_eq!(body["message"], json!(["blob storage unavailable"]));

    // Nothing was kept: no row, no object under firmware/ (nor a staging object: the multipart
    // upload never completed).
    assert_eq!(crate::helpers::firmware_rows(&app).await, 0, "no row for the cut-off upload");
    let bucket = s3_dir.path().join("firmware-bucket");
    assert!(files_under(&bucket).is_empty(), "nothing in the bucket: {:?}", files_under(&bucket));

    // S3 comes back on the same address: the same upload succeeds, no restart of the service.
    let _s3 = S3Process::start(port, s3_dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(crate::helpers::stored_keys(&app, "").await.is_empty(), "no object the service could serve");
    // The cut-off upload's parts: the abort could not reach S3; the next sweep retries it
    // (tests/reliability/multipart_abort.rs checks that they go).
    println!("s3 killed mid-upload: {} parts of the cut-off upload left in S3", pending_parts(s3_dir.path()));
    let (form, _) = streamed_release("3.0.0");
    let response =
        app.post("/v1/admin/firmware").bearer_auth(app.admin_token()).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let release: serde_json::Value = response.json().await.unwrap();
    assert_eq!(release["sha256"], sha256.as_str());
    let id = release["id"].as_str().unwrap();
    let image =
        app.get(&format!("/v1/firmware/{id}/download")).bearer_auth(app.admin_token()).send().await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(sha256_hex(&image.bytes().await.unwrap()), sha256, "the image is stored whole");
}
