//! Bodies that stop moving: an upload whose client stops sending is refused with 408 after
//! `firmware.upload_idle_timeout_s` and leaves nothing behind; a download whose client stops
//! reading is cut after `firmware.download_idle_timeout_s` and its file closed. Small timeouts
//! here; the waits below are bounds on what must happen, far above the timeouts.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::helpers::{image_bytes, publish, spawn_app_with, upload_ok};

#[tokio::test]
async fn an_upload_that_stalls_is_refused_with_408_and_leaves_nothing_behind() {
    let app = spawn_app_with(&[("NOWATCH_OTA__FIRMWARE__UPLOAD_IDLE_TIMEOUT_S", "2")]).await;
    // 9 MiB (more than one S3 part), then nothing, with the connection left open.
    let piece = bytes::Bytes::from(image_bytes(7, 1 << 20));
    let sent = futures_util::stream::iter((0..9).map(move |_| Ok::<_, std::io::Error>(piece.clone())))
        .chain(futures_util::stream::pending());
    let file = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(sent), 64 << 20)
        .file_name("fw.bin");
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(json!({"version": "1.0.0", "hardware": ["nw-s1"]}).to_string()),
        )
        .part("file", file);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let response = client
        .post(app.url("/v1/admin/firmware"))
        .bearer_auth(app.admin_token())
        .multipart(form)
        .send()
        .await
        .expect("an answer within 30 s, not a connection held open");
    let body = crate::helpers::assert_error_shape(response, 408, "/v1/admin/firmware").await;
    println!("stalled upload: {body}");
    assert_eq!(crate::helpers::firmware_rows(&app).await, 0, "no release");
    assert_eq!(crate::helpers::stored_keys(&app, "").await, Vec::<String>::new(), "no staging object");
}

/// Paths of the files this process (the service runs in it) holds open.
fn open_files() -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_is_never_read_is_cut_and_its_file_closed() {
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__STORAGE__BACKEND", "fs"),
        ("NOWATCH_OTA__FIRMWARE__DOWNLOAD_IDLE_TIMEOUT_S", "2"),
    ])
    .await;
    // Far more than the kernel's socket buffers hold, so the service must wait for the client.
    let size = 64 << 20;
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(8, size)).await;
    let id = release["id"].as_str().unwrap().to_owned();
    publish(&app, &id, json!({"channel": "stable"})).await;
    let image = std::fs::canonicalize(
        app.dir.path().join("blobs/firmware").join(release["sha256"].as_str().unwrap()),
    )
    .unwrap();

    let address = app.address.strip_prefix("http://").unwrap().to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /v1/firmware/{id}/download HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\r\n",
        app.user_token()
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !open_files().contains(&image) {
        assert!(Instant::now() < deadline, "the download never opened the image");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client reads nothing. The service gives up on it and closes the image.
    let deadline = Instant::now() + Duration::from_secs(45);
    while open_files().contains(&image) {
        assert!(Instant::now() < deadline, "the image is still open 45 s into a download nobody reads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the client finds the connection cut before the whole image arrived.
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut received = 0usize;
    let mut buffer = vec![0u8; 1 << 20];
    let ended = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break "closed",
            Ok(n) => received += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the connection is still open after {received} bytes")
            }
            Err(_) => break "reset",
        }
    };
    println!("unread download: connection {ended} after {received} of {size} bytes");
    assert!(received < size, "{received}");
}
