//! The device flow: update checks, manifests, keys, downloads and reports.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error_shape, image_bytes, publish, sha256_hex, spawn_app, spawn_app_with, upload_ok,
};

async fn check(app: &TestApp, query: &str) -> reqwest::Response {
    app.get(&format!("/v1/firmware/check?{query}")).bearer_auth(app.user_token()).send().await.unwrap()
}

/// The version offered to device `watch-1`, or None on 204.
async fn offered(app: &TestApp, hardware: &str, version: &str, channel: &str) -> Option<String> {
    crate::helpers::offered_version(
        app,
        &format!("hardware={hardware}&version={version}&device_id=watch-1&channel={channel}"),
    )
    .await
}

async fn release(app: &TestApp, version: &str, hardware: &[&str], seed: u8, channel: &str) -> Value {
    let release = upload_ok(app, version, hardware, image_bytes(seed, 5000 + usize::from(seed))).await;
    publish(app, release["id"].as_str().unwrap(), json!({"channel": channel})).await;
    release
}

async fn admin_json(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(app.admin_token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// An independent verification of a manifest: canonical JSON rebuilt with serde_json and a
/// BTreeMap, ed25519 `verify_strict` with a key from `/v1/firmware/keys`.
async fn verify_manifest_independently(app: &TestApp, manifest: &Value) {
    let keys: Value = app
        .get("/v1/firmware/keys")
        .bearer_auth(app.user_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &keys["keys"][0];
    assert_eq!(key["status"], "active");
    assert_eq!(key["algorithm"], "ed25519");
    let public: [u8; 32] = BASE64.decode(key["public_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert_eq!(key["key_id"], sha256_hex(&public));
    let public = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    let signature = &manifest["signatures"][0];
    assert_eq!(signature["key_id"], key["key_id"]);
    fn canonical(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let sorted: std::collections::BTreeMap<_, _> = m.iter().collect();
                let fields: Vec<String> = sorted
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), canonical(v)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
            other => other.to_string(),
        }
    }
    let sig =
        ed25519_dalek::Signature::from_slice(&BASE64.decode(signature["sig"].as_str().unwrap()).unwrap())
            .unwrap();
    public
        .verify_strict(canonical(&manifest["signed"]).as_bytes(), &sig)
        .expect("the manifest signature verifies");
}

#[tokio::test]
async fn check_offers_the_newest_release_with_a_manifest_a_device_can_verify() {
    let app = spawn_app().await;
    release(&app, "1.0.0", &["nw-s1"], 1, "stable").await;
    let newest = release(&app, "1.1.0", &["nw-s1"], 2, "stable").await;

    let response = check(&app, "hardware=nw-s1&version=1.0.0&device_id=watch-1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["firmware"]["id"], newest["id"]);
    assert_eq!(body["firmware"]["version"], "1.1.0");
    assert_eq!(
        body["download_url"],
        app.url(&format!("/v1/firmware/{}/download", newest["id"].as_str().unwrap()))
    );
    let poll = body["poll_after_s"].as_u64().unwrap();
    assert!((3420..=3780).contains(&poll), "{poll}");
    let signed = &body["manifest"]["signed"];
    assert_eq!(signed["type"], "nowatch-firmware-manifest");
    assert_eq!(signed["firmware_id"], newest["id"]);
    assert_eq!(
        (signed["size"].clone(), signed["sha256"].clone()),
        (newest["size"].clone(), newest["sha256"].clone())
    );
    assert_eq!(signed["hardware"], json!(["nw-s1"]));
    assert_eq!(signed["channel"], "stable");
    let expires = chrono::DateTime::parse_from_rfc3339(signed["expires_at"].as_str().unwrap()).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "expires in {days} h, not 7 days");
    verify_manifest_independently(&app, &body["manifest"]).await;

    let again = app
        .get("/v1/firmware/check?hardware=nw-s1&version=1.0.0&device_id=watch-1")
        .bearer_auth(app.user_token())
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(offered(&app, "nw-s1", "1.1.0", "stable").await, None);
    assert_eq!(offered(&app, "nw-s9", "0.1.0", "stable").await, None);
}

#[tokio::test]
async fn check_needs_a_token_and_names_bad_parameters() {
    let app = spawn_app().await;
    let path = "/v1/firmware/check";
    assert_error_shape(
        app.get(&format!("{path}?hardware=nw-s1&version=1.0.0&device_id=d")).send().await.unwrap(),
        401,
        path,
    )
    .await;
    for (query, field) in [
        ("version=1.0.0&device_id=d", "hardware"),
        ("hardware=nw-s1&device_id=d", "version"),
        ("hardware=nw-s1&version=1.0.0", "device_id"),
        ("hardware=nw%2Fs1&version=1.0.0&device_id=d", "hardware"),
        ("hardware=nw-s1&version=one&device_id=d", "version"),
        ("hardware=nw-s1&version=1.0.0&device_id=%00", "device_id"),
        ("hardware=nw-s1&version=1.0.0&device_id=d&channel=nightly", "channel"),
        ("hardware=nw-s1&version=1.0.0&device_id=d&colour=red", "query"),
    ] {
        let body = assert_error_shape(check(&app, query).await, 400, path).await;
        assert!(body["message"][0].as_str().unwrap().starts_with(field), "{query}: {body}");
    }
}

#[tokio::test]
async fn the_floor_is_inclusive_and_is_signed_into_the_manifest() {
    let app = spawn_app().await;
    release(&app, "1.1.0", &["nw-s1"], 1, "stable").await;
    admin_json(&app, reqwest::Method::PUT, "/v1/admin/hardware/nw-s1/floor", json!({"min_version": "1.1.0"}))
        .await;
    let response = check(&app, "hardware=nw-s1&version=1.0.0&device_id=watch-1").await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["firmware"]["version"], "1.1.0", "a release exactly at the floor is offered");
    assert_eq!(body["manifest"]["signed"]["min_version"], "1.1.0");
    admin_json(&app, reqwest::Method::PUT, "/v1/admin/hardware/nw-s1/floor", json!({"min_version": "1.1.1"}))
        .await;
    assert_eq!(offered(&app, "nw-s1", "1.0.0", "stable").await, None, "below the floor is never offered");
}

#[tokio::test]
async fn revoked_releases_are_never_offered_and_a_device_on_one_moves_on() {
    let app = spawn_app().await;
    let bad = release(&app, "1.1.0", &["nw-s1"], 1, "stable").await;
    let worse = release(&app, "1.3.0", &["nw-s1"], 2, "stable").await;
    release(&app, "1.2.0", &["nw-s1"], 3, "stable").await;
    assert_eq!(offered(&app, "nw-s1", "1.0.0", "stable").await.as_deref(), Some("1.3.0"));
    for id in [&bad["id"], &worse["id"]] {
        admin_json(
            &app,
            reqwest::Method::POST,
            &format!("/v1/admin/firmware/{}/revoke", id.as_str().unwrap()),
            json!({"reason": "bad"}),
        )
        .await;
    }
    assert_eq!(offered(&app, "nw-s1", "1.0.0", "stable").await.as_deref(), Some("1.2.0"));
    assert_eq!(
        offered(&app, "nw-s1", "1.1.0", "stable").await.as_deref(),
        Some("1.2.0"),
        "a device on a revoked version"
    );
    assert_eq!(offered(&app, "nw-s1", "1.2.0", "stable").await, None);
}

#[tokio::test]
async fn prereleases_sort_below_their_release_and_beta_devices_see_stable_releases() {
    let app = spawn_app().await;
    release(&app, "1.2.0-beta.1", &["nw-s1"], 1, "beta").await;
    release(&app, "1.2.0-beta.2", &["nw-s1"], 2, "beta").await;
    assert_eq!(offered(&app, "nw-s1", "1.1.0", "beta").await.as_deref(), Some("1.2.0-beta.2"));
    assert_eq!(offered(&app, "nw-s1", "1.1.0", "stable").await, None, "a stable device never sees beta");
    release(&app, "1.2.0", &["nw-s1"], 3, "stable").await;
    assert_eq!(offered(&app, "nw-s1", "1.2.0-beta.2", "beta").await.as_deref(), Some("1.2.0"));
    release(&app, "1.3.0", &["nw-s1"], 4, "stable").await;
    release(&app, "1.2.5-beta.1", &["nw-s1"], 5, "beta").await;
    assert_eq!(
        offered(&app, "nw-s1", "1.2.0", "beta").await.as_deref(),
        Some("1.3.0"),
        "newer stable over older beta"
    );
    assert_eq!(offered(&app, "nw-s1", "1.2.0", "alpha").await.as_deref(), Some("1.3.0"));
}

#[tokio::test]
async fn a_device_too_old_for_the_newest_release_gets_the_stepping_stone() {
    let app = spawn_app().await;
    release(&app, "2.0.0", &["nw-s1"], 1, "stable").await;
    let newest = upload_ok(&app, "3.0.0", &["nw-s1"], image_bytes(2, 4000)).await;
    let id = newest["id"].as_str().unwrap();
    admin_json(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/admin/firmware/{id}"),
        json!({"min_from_version": "2.0.0"}),
    )
    .await;
    publish(&app, id, json!({"channel": "stable"})).await;
    assert_eq!(offered(&app, "nw-s1", "1.0.0", "stable").await.as_deref(), Some("2.0.0"));
    assert_eq!(offered(&app, "nw-s1", "2.0.0", "stable").await.as_deref(), Some("3.0.0"));
}

#[tokio::test]
async fn the_check_answers_without_the_database() {
    let app = spawn_app().await;
    release(&app, "1.1.0", &["nw-s1"], 1, "stable").await;
    app.state.db.clone().close().await.unwrap();
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 503, "the database is really gone");
    assert_eq!(offered(&app, "nw-s1", "1.0.0", "stable").await.as_deref(), Some("1.1.0"));
}

#[tokio::test]
async fn releases_are_listed_and_read_with_their_manifests_and_keys() {
    let app = spawn_app().await;
    let stable = release(&app, "1.0.0", &["nw-s1"], 1, "stable").await;
    let beta = release(&app, "1.1.0-beta.1", &["nw-s1", "nw-s2"], 2, "beta").await;
    let draft = upload_ok(&app, "9.0.0", &["nw-s1"], image_bytes(3, 100)).await;
    let token = app.user_token();
    let list = |channel: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let body: Value = app
                .get(&format!("/v1/firmware?hardware=nw-s1&channel={channel}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["version"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("stable").await, ["1.0.0"]);
    assert_eq!(list("beta").await, ["1.1.0-beta.1", "1.0.0"]);

    let one: Value = app
        .get(&format!("/v1/firmware/{}", stable["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((one["version"].as_str(), one["channels"].clone()), (Some("1.0.0"), json!(["stable"])));
    let draft_path = format!("/v1/firmware/{}", draft["id"].as_str().unwrap());
    assert_error_shape(app.get(&draft_path).bearer_auth(&token).send().await.unwrap(), 404, &draft_path)
        .await;

    let manifest_path = format!("/v1/firmware/{}/manifest", beta["id"].as_str().unwrap());
    let needs_hw = app.get(&manifest_path).bearer_auth(&token).send().await.unwrap();
    assert_error_shape(needs_hw, 400, &manifest_path).await;
    let manifest: Value = app
        .get(&format!("{manifest_path}?hardware=nw-s2"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(manifest["signed"]["channel"], "beta");
    assert_eq!(manifest["signed"]["hardware"], json!(["nw-s2"]), "a manifest names only its own hardware");
    verify_manifest_independently(&app, &manifest).await;

    assert_error_shape(app.get("/v1/firmware/keys").send().await.unwrap(), 401, "/v1/firmware/keys").await;
}

#[tokio::test]
async fn downloads_honour_ranges_validators_and_head() {
    let app = spawn_app().await;
    let bytes = image_bytes(1, 100_000);
    let rel = upload_ok(&app, "1.0.0", &["nw-s1"], bytes.clone()).await;
    let id = rel["id"].as_str().unwrap();
    let path = format!("/v1/firmware/{id}/download");
    let user = app.user_token();
    assert_error_shape(app.get(&path).bearer_auth(&user).send().await.unwrap(), 404, &path).await;
    assert_eq!(
        app.get(&path).bearer_auth(app.admin_token()).send().await.unwrap().status(),
        200,
        "admins fetch drafts"
    );
    publish(&app, id, json!({"channel": "stable"})).await;

    let whole = app.get(&path).bearer_auth(&user).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    assert_eq!(whole.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.headers()["content-length"], "100000");
    assert_eq!(whole.bytes().await.unwrap().to_vec(), bytes);

    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=99000-", 99_000, 99_999),
        ("bytes=-10", 99_990, 99_999),
        ("bytes=500-200000", 500, 99_999),
    ] {
        let part = app.get(&path).bearer_auth(&user).header("Range", range).send().await.unwrap();
        assert_eq!(part.status(), 206, "{range}");
        assert_eq!(part.headers()["content-range"].to_str().unwrap(), format!("bytes {start}-{end}/100000"));
        assert_eq!(part.headers()["content-length"].to_str().unwrap(), (end - start + 1).to_string());
        assert_eq!(part.bytes().await.unwrap().to_vec(), bytes[start..=end]);
    }
    let beyond = app.get(&path).bearer_auth(&user).header("Range", "bytes=100000-").send().await.unwrap();
    assert_eq!(beyond.headers()["content-range"], "bytes */100000");
    assert_error_shape(beyond, 416, &path).await;
    let multi = app.get(&path).bearer_auth(&user).header("Range", "bytes=0-1,5-6").send().await.unwrap();
    assert_eq!(multi.status(), 200, "multi-range requests get the whole image");

    let stale = app
        .get(&path)
        .bearer_auth(&user)
        .header("Range", "bytes=0-9")
        .header("If-Range", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.unwrap().len(), 100_000);
    let fresh = app
        .get(&path)
        .bearer_auth(&user)
        .header("Range", "bytes=0-9")
        .header("If-Range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 206);
    let cached = app.get(&path).bearer_auth(&user).header("If-None-Match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), 304);

    let head = app.client.head(app.url(&path)).bearer_auth(&user).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "100000");
    assert_eq!(head.headers()["etag"].to_str().unwrap(), etag);
    assert!(head.bytes().await.unwrap().is_empty());

    assert_error_shape(app.get(&path).send().await.unwrap(), 401, &path).await;
    admin_json(
        &app,
        reqwest::Method::POST,
        &format!("/v1/admin/firmware/{id}/revoke"),
        json!({"reason": "bad"}),
    )
    .await;
    assert_error_shape(app.get(&path).bearer_auth(&user).send().await.unwrap(), 404, &path).await;
}

#[tokio::test]
async fn a_download_cut_halfway_resumes_with_a_range_and_ends_with_the_exact_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let bytes = image_bytes(4, 3_000_000);
    let rel = upload_ok(&app, "1.0.0", &["nw-s1"], bytes.clone()).await;
    let id = rel["id"].as_str().unwrap();
    publish(&app, id, json!({"channel": "stable"})).await;

    // A flaky link: read the headers and about half the body, then the connection drops.
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "GET /v1/firmware/{id}/download HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\r\n",
        app.user_token()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    while received.len() < 1_500_000 {
        let n = socket.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the server closed early");
        received.extend_from_slice(&buffer[..n]);
    }
    drop(socket);
    let header_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&received[..header_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut file = received[header_end..].to_vec();
    assert!(file.len() < bytes.len());

    // `curl -C -`: ask for the rest, guarded by the ETag.
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let rest = app
        .get(&format!("/v1/firmware/{id}/download"))
        .bearer_auth(app.user_token())
        .header("Range", format!("bytes={}-", file.len()))
        .header("If-Range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 206);
    file.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(file.len(), bytes.len());
    assert_eq!(sha256_hex(&file), sha256_hex(&bytes));
}

#[tokio::test]
async fn public_downloads_serve_keys_and_published_images_without_a_token() {
    let app = spawn_app_with(&[("NOWATCH_OTA__AUTH__PUBLIC_DOWNLOADS", "true")]).await;
    let rel = release(&app, "1.0.0", &["nw-s1"], 1, "stable").await;
    let draft = upload_ok(&app, "2.0.0", &["nw-s1"], image_bytes(9, 100)).await;
    assert_eq!(app.get("/v1/firmware/keys").send().await.unwrap().status(), 200);
    let public =
        app.get(&format!("/v1/firmware/{}/download", rel["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(public.status(), 200);
    assert_eq!(public.headers()["cache-control"], "public, max-age=31536000, immutable");
    let path = format!("/v1/firmware/{}/download", draft["id"].as_str().unwrap());
    assert_error_shape(app.get(&path).send().await.unwrap(), 404, &path).await;
}

#[tokio::test]
async fn reports_are_idempotent_move_forward_and_update_the_device() {
    use sea_orm::EntityTrait;
    let app = spawn_app().await;
    let rel = release(&app, "1.1.0", &["nw-s1"], 1, "stable").await;
    let id = rel["id"].as_str().unwrap();
    let path = format!("/v1/firmware/{id}/report");
    let send = |body: Value| {
        let request = app.post(&path).bearer_auth(app.user_token()).json(&body);
        async move { request.send().await.unwrap() }
    };
    let first = send(json!({"device_id": "watch-7", "status": "downloading", "from_version": "1.0.0", "channel": "stable"})).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["report_count"], 1);
    assert!(first["rollout_id"].is_string());
    let again: Value =
        send(json!({"device_id": "watch-7", "status": "downloading"})).await.json().await.unwrap();
    assert_eq!(again["report_count"], 1, "the same report twice changes nothing");
    let installing: Value =
        send(json!({"device_id": "watch-7", "status": "installing"})).await.json().await.unwrap();
    assert_eq!(installing["report_count"], 2);
    let backwards = send(json!({"device_id": "watch-7", "status": "downloaded"})).await;
    assert_error_shape(backwards, 409, &path).await;
    assert_eq!(send(json!({"device_id": "watch-7", "status": "installed"})).await.status(), 200);
    assert_error_shape(
        send(json!({"device_id": "watch-7", "status": "failed", "error": "late"})).await,
        409,
        &path,
    )
    .await;

    let device = nowatch_ota::db::entities::device::Entity::find_by_id("watch-7".to_owned())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (device.hardware.as_str(), device.version.as_str(), device.channel.as_deref()),
        ("nw-s1", "1.1.0", Some("stable"))
    );

    let failed: Value = send(json!({"device_id": "watch-8", "status": "failed", "error": "E_FLASH_WRITE", "from_version": "1.0.0"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failed["error"], "E_FLASH_WRITE");
    assert_eq!(
        send(json!({"device_id": "watch-8", "status": "downloading"})).await.status(),
        200,
        "a failed device may retry"
    );
    let rollout: Value = app
        .get(&format!("/v1/admin/rollouts/{}", first["rollout_id"].as_str().unwrap()))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rollout["counts"]["installed"], 1);
    assert_eq!(rollout["counts"]["downloading"], 1);

    for (body, field) in [
        (json!({"device_id": "watch-9", "status": "rebooting"}), "status"),
        (json!({"device_id": "watch 9", "status": "installed"}), "device_id"),
        (json!({"device_id": "watch-9", "status": "installed", "error": "x"}), "error"),
        (json!({"device_id": "watch-9", "status": "installed", "hardware": "nw-s2"}), "hardware"),
        (json!({"device_id": "watch-9"}), "body"),
    ] {
        let body_text = body.to_string();
        let error = assert_error_shape(send(body).await, 400, &path).await;
        assert!(error["message"][0].as_str().unwrap().starts_with(field), "{body_text}: {error}");
    }
    let unknown = format!("/v1/firmware/{}/report", uuid::Uuid::new_v4());
    let response = app
        .post(&unknown)
        .bearer_auth(app.user_token())
        .json(&json!({"device_id": "w", "status": "installed"}))
        .send()
        .await
        .unwrap();
    assert_error_shape(response, 404, &unknown).await;
}

#[tokio::test]
async fn end_to_end_upload_publish_check_download_by_ranges_verify_and_report() {
    let app = spawn_app().await;
    let bytes = image_bytes(11, (5 << 20) + 777);
    let rel = upload_ok(&app, "2.4.1", &["nw-s1"], bytes.clone()).await;
    publish(&app, rel["id"].as_str().unwrap(), json!({"channel": "stable"})).await;

    let offer: Value =
        check(&app, "hardware=nw-s1&version=2.4.0&device_id=watch-42").await.json().await.unwrap();
    verify_manifest_independently(&app, &offer["manifest"]).await;
    let signed = &offer["manifest"]["signed"];
    let url = offer["download_url"].as_str().unwrap();
    let mut image = Vec::new();
    let size = signed["size"].as_u64().unwrap() as usize;
    while image.len() < size {
        let end = (image.len() + (1 << 20)).min(size) - 1;
        let part = app
            .client
            .get(url)
            .bearer_auth(app.user_token())
            .header("Range", format!("bytes={}-{end}", image.len()))
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        image.extend_from_slice(&part.bytes().await.unwrap());
    }
    assert_eq!(sha256_hex(&image), signed["sha256"].as_str().unwrap());
    assert_eq!(image, bytes);

    let report = app
        .post(&format!("/v1/firmware/{}/report", signed["firmware_id"].as_str().unwrap()))
        .bearer_auth(app.user_token())
        .json(&json!({"device_id": "watch-42", "status": "installed", "from_version": "2.4.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    assert_eq!(offered(&app, "nw-s1", "2.4.1", "stable").await, None);
}

/// What the update check reads from the catalog, in a stable order, to compare two snapshots.
fn catalog_summary(app: &TestApp) -> Vec<String> {
    let snapshot = app.state.catalog.snapshot();
    let mut hardware: Vec<&String> = snapshot.by_hardware.keys().collect();
    hardware.sort();
    let mut out = Vec::new();
    for h in hardware {
        for offered in &snapshot.by_hardware[h] {
            let mut manifests: Vec<String> =
                offered.manifests.iter().map(|((h, rank), m)| format!("{h}/{rank}: {}", m.json)).collect();
            manifests.sort();
            out.push(format!(
                "{h} {} {} gates {:?} ranks {:?} public {} manifests {manifests:?}",
                offered.id, offered.version, offered.gates, offered.channel_ranks, offered.public_json
            ));
        }
    }
    let mut by_id: Vec<String> = snapshot.by_id.keys().map(|id| id.to_string()).collect();
    by_id.sort();
    out.push(format!("by id {by_id:?}"));
    out
}

#[tokio::test]
async fn single_release_updates_of_the_catalog_match_a_full_rebuild() {
    let app = spawn_app().await;
    let a = release(&app, "1.0.0", &["nw-s1"], 1, "stable").await;
    let b = release(&app, "1.2.0", &["nw-s1", "nw-s2"], 2, "beta").await;
    let c = upload_ok(&app, "1.1.0", &["nw-s1"], image_bytes(3, 4000)).await;
    let staged = publish(
        &app,
        c["id"].as_str().unwrap(),
        json!({"channel": "stable", "stages": [{"percent": 10}, {"percent": 100}]}),
    )
    .await;
    release(&app, "2.0.0", &["nw-s2"], 4, "stable").await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    admin_json(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/admin/firmware/{}", id(&a)),
        json!({"release_notes": "edited"}),
    )
    .await;
    admin_json(&app, reqwest::Method::POST, &format!("/v1/admin/rollouts/{}/pause", id(&staged)), json!({}))
        .await;
    admin_json(
        &app,
        reqwest::Method::POST,
        &format!("/v1/admin/firmware/{}/revoke", id(&b)),
        json!({"reason": "bad battery"}),
    )
    .await;

    let incremental = catalog_summary(&app);
    assert_eq!(incremental.len(), 4, "{incremental:#?}");
    app.state.catalog.refresh(&app.state.db, &app.state.signer, &app.state.settings).await.unwrap();
    assert_eq!(incremental, catalog_summary(&app));
}
