use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    RssSampler, assert_error_shape, firmware_rows, image_bytes, sha256_hex, spawn_app, spawn_app_with,
    stored_keys, upload, upload_ok,
};

#[tokio::test]
async fn an_upload_becomes_a_draft_with_its_size_and_digest_and_its_image_is_stored() {
    let app = spawn_app().await;
    let bytes = image_bytes(1, 300_000);
    let response = upload(
        &app,
        &json!({"version": "v1.2.0", "hardware": ["nw-s1", "nw-s1-rev2"], "release_notes": "Faster BLE", "mandatory": true}),
        bytes.clone(),
    )
    .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let release: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/v1/admin/firmware/{}", release["id"].as_str().unwrap()));
    assert_eq!(release["version"], "1.2.0");
    assert_eq!(release["hardware"], json!(["nw-s1", "nw-s1-rev2"]));
    assert_eq!(release["size"], 300_000);
    assert_eq!(release["sha256"], sha256_hex(&bytes));
    assert_eq!(release["state"], "draft");
    assert_eq!(release["mandatory"], true);
    assert_eq!(release["created_by"], "release-bot");
    assert_eq!(stored_keys(&app, "firmware/").await, [format!("firmware/{}", sha256_hex(&bytes))]);
    assert!(stored_keys(&app, "staging/").await.is_empty());
    let stored = app
        .state
        .store
        .open(
            &nowatch_ota::storage::ObjectKey::parse(&format!("firmware/{}", sha256_hex(&bytes))).unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(crate::helpers::read_all(stored).await, bytes);
}

#[tokio::test]
async fn the_same_version_and_bytes_again_answer_200_with_the_same_release() {
    let app = spawn_app().await;
    let bytes = image_bytes(2, 10_000);
    let first = upload_ok(&app, "1.0.0", &["nw-s1"], bytes.clone()).await;
    let again = upload(&app, &json!({"version": "1.0.0", "hardware": ["nw-s1"]}), bytes).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(firmware_rows(&app).await, 1);
    assert!(stored_keys(&app, "staging/").await.is_empty());
}

#[tokio::test]
async fn the_same_version_with_other_bytes_is_409_and_changes_nothing() {
    let app = spawn_app().await;
    upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(3, 10_000)).await;
    for version in ["1.0.0", "v1.0.0+other-build"] {
        let response =
            upload(&app, &json!({"version": version, "hardware": ["nw-s1"]}), image_bytes(4, 10_000)).await;
        let body = assert_error_shape(response, 409, "/v1/admin/firmware").await;
        assert!(body["message"][0].as_str().unwrap().contains("already exists"), "{body}");
    }
    // The same version for other hardware is a different release.
    upload_ok(&app, "1.0.0", &["nw-s2"], image_bytes(4, 10_000)).await;
    assert_eq!(firmware_rows(&app).await, 2);
    assert_eq!(stored_keys(&app, "firmware/").await.len(), 2);
    assert!(stored_keys(&app, "staging/").await.is_empty());
}

#[tokio::test]
async fn a_wrong_expected_sha256_is_400_and_leaves_nothing_behind() {
    let app = spawn_app().await;
    let metadata =
        json!({"version": "1.0.0", "hardware": ["nw-s1"], "expected_sha256": sha256_hex(b"something else")});
    let response = upload(&app, &metadata, image_bytes(5, 50_000)).await;
    let body = assert_error_shape(response, 400, "/v1/admin/firmware").await;
    assert!(body["message"][0].as_str().unwrap().starts_with("metadata.expected_sha256"), "{body}");
    assert_eq!(firmware_rows(&app).await, 0);
    assert!(stored_keys(&app, "staging/").await.is_empty());
    assert!(stored_keys(&app, "firmware/").await.is_empty());

    let bytes = image_bytes(5, 50_000);
    let metadata = json!({"version": "1.0.0", "hardware": ["nw-s1"], "expected_sha256": sha256_hex(&bytes).to_uppercase()});
    assert_eq!(upload(&app, &metadata, bytes).await.status(), 201);
}

#[tokio::test]
async fn an_image_over_max_upload_bytes_is_413_while_streaming_and_leaves_nothing() {
    let app = spawn_app_with(&[("NOWATCH_OTA__FIRMWARE__MAX_UPLOAD_BYTES", "1000000")]).await;
    let response =
        upload(&app, &json!({"version": "1.0.0", "hardware": ["nw-s1"]}), image_bytes(6, 1_000_001)).await;
    let body = assert_error_shape(response, 413, "/v1/admin/firmware").await;
    assert!(body["message"][0].as_str().unwrap().contains("1000000"), "{body}");
    assert_eq!(firmware_rows(&app).await, 0);
    assert!(stored_keys(&app, "staging/").await.is_empty());
    assert_eq!(
        upload(&app, &json!({"version": "1.0.0", "hardware": ["nw-s1"]}), image_bytes(6, 1_000_000))
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn bad_metadata_and_misordered_parts_are_400_naming_the_problem() {
    let app = spawn_app().await;
    type Parts = Vec<(&'static str, Vec<u8>)>;
    let cases: Vec<(&str, Parts, &str)> = vec![
        (
            "invalid semver",
            vec![
                ("metadata", br#"{"version":"1.2","hardware":["nw-s1"]}"#.to_vec()),
                ("file", b"x".to_vec()),
            ],
            "metadata",
        ),
        (
            "bad hardware id",
            vec![
                ("metadata", br#"{"version":"1.2.0","hardware":["../etc"]}"#.to_vec()),
                ("file", b"x".to_vec()),
            ],
            "hardware id",
        ),
        (
            "no hardware",
            vec![("metadata", br#"{"version":"1.2.0","hardware":[]}"#.to_vec()), ("file", b"x".to_vec())],
            "metadata.hardware",
        ),
        (
            "unknown field",
            vec![
                ("metadata", br#"{"version":"1.2.0","hardware":["nw-s1"],"chanel":"beta"}"#.to_vec()),
                ("file", b"x".to_vec()),
            ],
            "unknown field `chanel`",
        ),
        ("malformed json", vec![("metadata", b"{not json".to_vec()), ("file", b"x".to_vec())], "metadata"),
        (
            "min_from above version",
            vec![
                (
                    "metadata",
                    br#"{"version":"1.2.0","hardware":["nw-s1"],"min_from_version":"2.0.0"}"#.to_vec(),
                ),
                ("file", b"x".to_vec()),
            ],
            "metadata.min_from_version",
        ),
        (
            "bad digest",
            vec![
                ("metadata", br#"{"version":"1.2.0","hardware":["nw-s1"],"expected_sha256":"abc"}"#.to_vec()),
                ("file", b"x".to_vec()),
            ],
            "64 hexadecimal",
        ),
        (
            "file before metadata",
            vec![
                ("file", b"x".to_vec()),
                ("metadata", br#"{"version":"1.2.0","hardware":["nw-s1"]}"#.to_vec()),
            ],
            "file: arrived before metadata",
        ),
        (
            "missing file",
            vec![("metadata", br#"{"version":"1.2.0","hardware":["nw-s1"]}"#.to_vec())],
            "file: missing part",
        ),
        ("no parts at all", vec![], "multipart"),
        (
            "empty file",
            vec![("metadata", br#"{"version":"1.2.0","hardware":["nw-s1"]}"#.to_vec()), ("file", Vec::new())],
            "file: must not be empty",
        ),
        (
            "extra part",
            vec![
                ("metadata", br#"{"version":"1.2.0","hardware":["nw-s1"]}"#.to_vec()),
                ("file", b"x".to_vec()),
                ("notes", b"y".to_vec()),
            ],
            "unexpected part \"notes\"",
        ),
    ];
    for (name, parts, expected) in cases {
        let mut form = reqwest::multipart::Form::new();
        for (part, bytes) in parts {
            form = form.part(part, reqwest::multipart::Part::bytes(bytes).file_name("f"));
        }
        let response = app
            .post("/v1/admin/firmware")
            .bearer_auth(app.admin_token())
            .multipart(form)
            .send()
            .await
            .unwrap();
        let body = assert_error_shape(response, 400, "/v1/admin/firmware").await;
        assert!(body["message"][0].as_str().unwrap().contains(expected), "{name}: {body}");
    }
    let response =
        app.post("/v1/admin/firmware").bearer_auth(app.admin_token()).body("plain").send().await.unwrap();
    assert_error_shape(response, 400, "/v1/admin/firmware").await;
    assert_eq!(firmware_rows(&app).await, 0);
    assert!(stored_keys(&app, "staging/").await.is_empty());
    assert!(stored_keys(&app, "firmware/").await.is_empty());
}

#[tokio::test]
async fn an_interrupted_upload_leaves_no_row_and_its_staging_object_is_swept() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let boundary = "XyZ";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fw.bin\"\r\n\r\n",
        json!({"version": "1.0.0", "hardware": ["nw-s1"]})
    );
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "POST /v1/admin/firmware HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 50000000\r\n\r\n{head}",
        app.admin_token()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    socket.write_all(&image_bytes(7, 2_000_000)).await.unwrap();
    socket.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(500)).await;

    nowatch_ota::services::sweep::run(&app.state, Duration::ZERO).await.unwrap();
    assert_eq!(firmware_rows(&app).await, 0);
    assert!(stored_keys(&app, "staging/").await.is_empty());
    assert!(stored_keys(&app, "firmware/").await.is_empty());
}

#[tokio::test]
async fn release_signatures_are_required_when_configured_and_must_verify() {
    use base64::Engine;
    use ed25519_dalek::Signer;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let keys_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        keys_dir.path().join("ci.pem"),
        key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__SIGNING__REQUIRE_RELEASE_SIGNATURE", "true"),
        ("NOWATCH_OTA__SIGNING__RELEASE_KEYS_DIR", keys_dir.path().to_str().unwrap()),
    ])
    .await;
    let bytes = image_bytes(8, 20_000);
    let digest: [u8; 32] = hex::decode(sha256_hex(&bytes)).unwrap().try_into().unwrap();
    let good = base64::engine::general_purpose::STANDARD.encode(key.sign(&digest).to_bytes());
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let bad = base64::engine::general_purpose::STANDARD.encode(stranger.sign(&digest).to_bytes());

    let missing = upload(&app, &json!({"version": "1.0.0", "hardware": ["nw-s1"]}), bytes.clone()).await;
    let body = assert_error_shape(missing, 400, "/v1/admin/firmware").await;
    assert!(body["message"][0].as_str().unwrap().contains("release_signature"), "{body}");
    let untrusted = upload(
        &app,
        &json!({"version": "1.0.0", "hardware": ["nw-s1"], "release_signature": bad}),
        bytes.clone(),
    )
    .await;
    assert_error_shape(untrusted, 400, "/v1/admin/firmware").await;
    assert_eq!(firmware_rows(&app).await, 0);

    let signed =
        upload(&app, &json!({"version": "1.0.0", "hardware": ["nw-s1"], "release_signature": good}), bytes)
            .await;
    assert_eq!(signed.status(), 201);
    let release: Value = signed.json().await.unwrap();
    assert_eq!(release["release_signature"], good);
}

#[tokio::test]
async fn a_large_upload_streams_through_without_the_memory_growing_with_it() {
    const SIZE: usize = 128 << 20;
    const CHUNK: usize = 256 << 10;
    let app = spawn_app().await;
    let chunk = bytes::Bytes::from(image_bytes(9, CHUNK));
    let chunks =
        futures_util::stream::iter((0..SIZE / CHUNK).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let file = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(chunks), SIZE as u64)
        .file_name("big.bin");
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(json!({"version": "9.0.0", "hardware": ["nw-s1"]}).to_string()),
        )
        .part("file", file);

    let _alone = crate::helpers::measure_memory_alone(1).await;
    let sampler = RssSampler::start();
    let response =
        app.post("/v1/admin/firmware").bearer_auth(app.admin_token()).multipart(form).send().await.unwrap();
    let growth = sampler.growth();
    assert_eq!(response.status(), 201);
    let release: Value = response.json().await.unwrap();
    assert_eq!(release["size"], SIZE as u64);
    assert!(
        growth < 48 << 20,
        "memory grew by {} MiB while a {} MiB image streamed",
        growth >> 20,
        SIZE >> 20
    );
}
