//! The S3 server stops mid-download and mid-upload, then comes back: clear errors, `/readyz`
//! says so, and the service recovers by itself.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    S3_ACCESS_KEY, S3_SECRET_KEY, base_env, image_bytes, publish, sha256_hex, spawn_app_with, upload_ok,
};

fn start_s3(port: u16, dir: &std::path::Path) -> Child {
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[tokio::test]
async fn the_s3_server_going_away_mid_transfer_is_reported_and_survived() {
    let s3_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(s3_dir.path().join("firmware-bucket")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut s3 = start_s3(port, s3_dir.path());
    let endpoint = format!("http://127.0.0.1:{port}");
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__STORAGE__BACKEND", "s3"),
        ("NOWATCH_OTA__STORAGE__S3__BUCKET", "firmware-bucket"),
        ("NOWATCH_OTA__STORAGE__S3__ENDPOINT", &endpoint),
        ("NOWATCH_OTA__STORAGE__S3__PATH_STYLE", "true"),
        ("NOWATCH_OTA__STORAGE__S3__ACCESS_KEY_ID", S3_ACCESS_KEY),
        ("NOWATCH_OTA__STORAGE__S3__SECRET_ACCESS_KEY", S3_SECRET_KEY),
    ])
    .await;
    let _ = base_env;
    let bytes = image_bytes(5, 48 << 20);
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], bytes.clone()).await;
    let id = release["id"].as_str().unwrap().to_owned();
    publish(&app, &id, json!({"channel": "stable"})).await;
    let path = format!("/v1/firmware/{id}/download");

    // Mid-download: the client gets fewer bytes than Content-Length, never a wrong image.
    let mut download = app.get(&path).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(download.status(), 200);
    let mut received = download.chunk().await.unwrap().unwrap().len();
    s3.kill().unwrap();
    s3.wait().unwrap();
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

    // While it is down: 5xx in the NOWATCH shape, readiness says why, uploads fail cleanly.
    let response = app.get(&path).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"][0], "Internal server error");
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("s3 blob storage unreachable"));
    let failed_upload = crate::helpers::upload(
        &app,
        &json!({"version": "2.0.0", "hardware": ["nw-s1"]}),
        image_bytes(6, 1 << 20),
    )
    .await;
    assert!(failed_upload.status().is_server_error());
    assert_eq!(crate::helpers::firmware_rows(&app).await, 1, "no row for the failed upload");

    // It comes back on the same address: the service recovers without a restart.
    let mut s3 = start_s3(port, s3_dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let whole = app.get(&path).bearer_auth(app.user_token()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_hex(&whole), sha256_hex(&bytes));
    assert_eq!(upload_ok(&app, "2.0.0", &["nw-s1"], image_bytes(6, 1 << 20)).await["state"], "draft");
    s3.kill().unwrap();
    s3.wait().unwrap();
}
