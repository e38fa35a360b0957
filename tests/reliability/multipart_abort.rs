//! The parts of a multipart upload that failed do not stay in S3: the upload is aborted when it
//! fails, including when the client goes away; an abort S3 could not take (it was down) is
//! retried by the sweep once S3 is back. s3s-fs keeps an upload's parts and records at its root
//! (`.upload-<id>.json`, `.upload_id-<id>.part-<n>`, `...upload-<id>.metadata.json`), so what
//! is left of them is what a directory listing shows.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{free_port, image_bytes, spawn_app_with};
use crate::storage_faults::{S3Process, bucket_dir, pending_parts, s3_settings, streamed_release};

/// Whatever s3s-fs holds of multipart uploads not completed.
fn upload_leftovers(s3_root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(s3_root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".upload"))
        .collect()
}

async fn app_on_s3(port: u16) -> crate::helpers::TestApp {
    let settings = s3_settings(port);
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(&pairs).await
}

async fn wait_for_parts(s3_root: &std::path::Path, parts: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while pending_parts(s3_root) < parts {
        assert!(Instant::now() < deadline, "the upload never reached S3");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_parts_of_an_upload_cut_off_by_s3_dying_are_aborted_once_s3_is_back() {
    let s3_dir = bucket_dir();
    let port = free_port();
    let s3 = S3Process::start(port, s3_dir.path());
    let app = app_on_s3(port).await;

    let (form, _) = streamed_release("3.0.0");
    let upload =
        tokio::spawn(app.post("/v1/admin/firmware").bearer_auth(app.admin_token()).multipart(form).send());
    wait_for_parts(s3_dir.path(), 2).await;
    s3.kill();
    let response = upload.await.unwrap().expect("an answer");
    assert_eq!(response.status(), 503);
    assert!(!upload_leftovers(s3_dir.path()).is_empty(), "S3 died holding the parts");

    // S3 comes back; the next sweep aborts what could not be aborted while it was down. It
    // runs here rather than on its timer so the test need not wait for it; s3s-fs cannot list
    // multipart uploads, which the sweep must take as "skip that step", not as a failure.
    let _s3 = S3Process::start(port, s3_dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "readiness did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ttl = Duration::from_secs(app.state.settings.storage.staging_ttl_s);
    let report = nowatch_ota::services::sweep::run(&app.state, ttl).await;
    assert!(report.is_ok(), "the sweep failed: {report:?}");
    assert_eq!(upload_leftovers(s3_dir.path()), Vec::<String>::new(), "parts left in S3");
    assert_eq!(crate::helpers::firmware_rows(&app).await, 0);
}

#[tokio::test]
async fn the_parts_of_an_upload_whose_client_disconnects_are_aborted() {
    let s3_dir = bucket_dir();
    let port = free_port();
    let _s3 = S3Process::start(port, s3_dir.path());
    let app = app_on_s3(port).await;

    // A raw connection, so the test decides when it goes away: 96 MiB announced, 20 sent.
    let address = app.address.strip_prefix("http://").unwrap().to_owned();
    let admin = app.admin_token();
    let root = s3_dir.path().to_owned();
    let client = tokio::task::spawn_blocking(move || {
        let boundary = "nwota-boundary";
        let metadata = json!({"version": "4.0.0", "hardware": ["nw-s1"]}).to_string();
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{metadata}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fw.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        let length = head.len() + (96 << 20) + format!("\r\n--{boundary}--\r\n").len();
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST /v1/admin/firmware HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n{head}"
        )
        .unwrap();
        let piece = image_bytes(4, 1 << 20);
        for _ in 0..20 {
            stream.write_all(&piece).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while pending_parts(&root) < 2 {
            assert!(Instant::now() < deadline, "the upload never reached S3");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Gone, mid-body.
        stream.shutdown(std::net::Shutdown::Both).unwrap();
    });
    client.await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while !upload_leftovers(s3_dir.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the multipart upload was not aborted: {:?}",
            upload_leftovers(s3_dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(crate::helpers::firmware_rows(&app).await, 0);
    assert!(crate::helpers::stored_keys(&app, "").await.is_empty(), "no object in the bucket");
}
