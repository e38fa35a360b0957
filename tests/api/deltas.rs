//! Delta updates: the patches the service builds to a release from the versions devices run,
//! checked against the reference implementation (Python `detools` 0.53.0) on the real firmware
//! pairs its source distribution carries, and the rules around them: offers, downloads, the
//! full image after a failure on a patch, the admin list, claims under concurrency, cleaning.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nowatch_ota::db;
use nowatch_ota::db::entities::firmware_delta;
use nowatch_ota::domain::DeltaState;
use nowatch_ota::services::deltas::builder::build_next;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, publish, sha256_hex, spawn_app, spawn_app_with, upload_ok};

const HW: &str = "nw-s1";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The detools 0.53.0 source distribution (downloaded with pip once; nothing committed).
fn detools_files() -> PathBuf {
    let out =
        Command::new(repo().join("tests/delta/detools-files")).output().expect("tests/delta/detools-files");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("tests/files")
}

/// MicroPython for the ESP8266, v1.9.4 and v1.10: the pair the size goal is about.
fn esp8266_pair() -> (Vec<u8>, Vec<u8>) {
    let dir = detools_files().join("micropython");
    let from = std::fs::read(dir.join("esp8266-20180511-v1.9.4.bin")).unwrap();
    let to = std::fs::read(dir.join("esp8266-20190125-v1.10.bin")).unwrap();
    (from, to)
}

async fn report(app: &TestApp, firmware: &str, device: &str, body: Value) -> reqwest::Response {
    crate::helpers::report_as_owner(app, firmware, device, body).await
}

async fn check(app: &TestApp, device: &str, version: &str) -> Value {
    let response = app
        .get(&format!("/v1/firmware/check?hardware={HW}&version={version}&device_id={device}"))
        .bearer_auth(app.owner_token(device))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn deltas(app: &TestApp, id: &str) -> Value {
    let response = app
        .get(&format!("/v1/admin/firmware/{id}/deltas"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits until every planned patch of `id` has left `pending`/`building` (the background
/// builders run on their own); the list then.
async fn settled(app: &TestApp, id: &str) -> Value {
    for _ in 0..600 {
        let list = deltas(app, id).await;
        let items = list["items"].as_array().unwrap();
        if !items.is_empty() && items.iter().all(|d| d["state"] != "pending" && d["state"] != "building") {
            // The builder swaps a ready patch into this instance's catalog just after it
            // commits the row: wait for that too, or a check right after may not offer it yet.
            let ready = items.iter().any(|d| d["state"] == "ready");
            if !ready || catalog_offers_a_patch(app, id) {
                return list;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deltas of {id} did not settle: {}", deltas(app, id).await);
}

fn catalog_offers_a_patch(app: &TestApp, id: &str) -> bool {
    let id: uuid::Uuid = id.parse().unwrap();
    app.state.catalog.snapshot().by_id.get(&id).is_some_and(|release| !release.deltas.is_empty())
}

/// `old` published and installed by `devices`, then `new` published: the id of each.
async fn fleet_on_old(app: &TestApp, old: Vec<u8>, new: Vec<u8>, devices: &[&str]) -> (String, String) {
    let v1 = upload_ok(app, "1.0.0", &[HW], old).await["id"].as_str().unwrap().to_owned();
    publish(app, &v1, json!({"channel": "stable"})).await;
    for device in devices {
        assert_eq!(report(app, &v1, device, json!({"status": "installed"})).await.status(), 200);
    }
    let v2 = upload_ok(app, "1.1.0", &[HW], new).await["id"].as_str().unwrap().to_owned();
    publish(app, &v2, json!({"channel": "stable"})).await;
    (v1, v2)
}

async fn get_bytes(app: &TestApp, url: &str, device: &str) -> Vec<u8> {
    let response = app.client.get(url).bearer_auth(app.owner_token(device)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn the_patch_the_service_builds_and_serves_gives_the_new_image_with_detools_and_with_our_applier() {
    let app = spawn_app().await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&app, from.clone(), to.clone(), &["watch-1"]).await;
    let list = settled(&app, &v2).await;
    let item = &list["items"][0];
    assert_eq!(item["state"], "ready", "{list}");
    assert_eq!(item["from_version"], "1.0.0");
    assert_eq!(item["devices"], 1);
    assert_eq!(item["format"], "detools-sequential-heatshrink");

    let offer = check(&app, "watch-1", "1.0.0").await;
    assert_eq!(offer["firmware"]["version"], "1.1.0");
    let delta = &offer["delta"];
    assert_eq!(delta["from_version"], "1.0.0");
    assert_eq!(delta["from_sha256"], sha256_hex(&from));
    assert_eq!(delta["format"], "detools-sequential-heatshrink");
    assert!(offer["download_url"].as_str().unwrap().ends_with("/download"), "the full image stays offered");
    let patch = get_bytes(&app, delta["download_url"].as_str().unwrap(), "watch-1").await;
    assert_eq!(delta["size"], patch.len());
    assert_eq!(delta["sha256"], sha256_hex(&patch));
    // The goal: no larger than detools' own heatshrink patch of this pair.
    assert!(patch.len() <= 96_957, "patch of {} bytes", patch.len());
    assert_both_appliers_give(&from, &patch, &to);
}

/// Python detools (the reference) and our streaming applier, fed the patch in BLE-sized
/// pieces, both turn `from` into `to` with `patch`.
fn assert_both_appliers_give(from: &[u8], patch: &[u8], to: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let (from_file, patch_file, to_file) =
        (dir.path().join("from.bin"), dir.path().join("patch"), dir.path().join("to.bin"));
    std::fs::write(&from_file, from).unwrap();
    std::fs::write(&patch_file, patch).unwrap();
    std::fs::write(&to_file, to).unwrap();
    let python = Command::new(repo().join("tests/delta/python-applies"))
        .args([&from_file, &patch_file, &to_file])
        .output()
        .unwrap();
    assert!(python.status.success(), "detools: {}", String::from_utf8_lossy(&python.stderr));
    let mut applier = nowatch_ota::delta::Applier::<256>::new();
    let mut image = Vec::new();
    for piece in patch.chunks(20) {
        applier
            .push(piece, &mut &from[..], &mut |bytes: &[u8]| {
                image.extend_from_slice(bytes);
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap();
    }
    assert_eq!(applier.finish().unwrap(), to.len() as u64);
    assert!(image == to, "our applier's image differs");
}

#[tokio::test]
async fn the_patches_served_for_the_pybv11_pairs_give_the_new_image_with_detools_and_with_our_applier() {
    let dir = detools_files().join("pybv11");
    let image = |build: &str| std::fs::read(dir.join(build).join("firmware1.bin")).unwrap();
    for old in ["v1.10", "1f5d945af"] {
        let app = spawn_app().await;
        let (from, to) = (image(old), image("1f5d945af-dirty"));
        let (_, v2) = fleet_on_old(&app, from.clone(), to.clone(), &["watch-1"]).await;
        let list = settled(&app, &v2).await;
        assert_eq!(list["items"][0]["state"], "ready", "{old}: {list}");
        let offer = check(&app, "watch-1", "1.0.0").await;
        let patch = get_bytes(&app, offer["delta"]["download_url"].as_str().unwrap(), "watch-1").await;
        assert!(patch.len() < to.len() / 5, "{old}: a patch of {} bytes", patch.len());
        assert_both_appliers_give(&from, &patch, &to);
    }
}

#[tokio::test]
async fn behind_nginx_a_delta_download_is_handed_off_like_the_image() {
    // accel hands files to nginx: the filesystem store, whatever the suite's store is.
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__FIRMWARE__DOWNLOAD_MODE", "accel"),
        ("NOWATCH_OTA__STORAGE__BACKEND", "fs"),
    ])
    .await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&app, from, to, &["watch-1"]).await;
    settled(&app, &v2).await;
    let offer = check(&app, "watch-1", "1.0.0").await;
    let response = app
        .client
        .get(offer["delta"]["download_url"].as_str().unwrap())
        .bearer_auth(app.owner_token("watch-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sha = offer["delta"]["sha256"].as_str().unwrap();
    assert_eq!(response.headers()["x-accel-redirect"], format!("/_nowatch_blobs/delta/{sha}").as_str());
    assert_eq!(response.headers()["etag"], format!("\"{sha}\"").as_str());
}

#[tokio::test]
async fn a_delta_download_resumes_with_range_and_if_range_like_the_image() {
    let app = spawn_app().await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&app, from, to, &["watch-1"]).await;
    settled(&app, &v2).await;
    let offer = check(&app, "watch-1", "1.0.0").await;
    let url = offer["delta"]["download_url"].as_str().unwrap().to_owned();
    let whole = get_bytes(&app, &url, "watch-1").await;
    let etag = format!("\"{}\"", offer["delta"]["sha256"].as_str().unwrap());

    let part = app
        .client
        .get(&url)
        .bearer_auth(app.owner_token("watch-1"))
        .header("Range", "bytes=1000-")
        .header("If-Range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["etag"], etag.as_str());
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 1000-{}/{}", whole.len() - 1, whole.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), whole[1000..]);

    let stale = app
        .client
        .get(&url)
        .bearer_auth(app.owner_token("watch-1"))
        .header("Range", "bytes=1000-")
        .header("If-Range", "\"another\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "a stale If-Range gets the whole patch");
    let cached = app
        .client
        .get(&url)
        .bearer_auth(app.owner_token("watch-1"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let head = app.client.head(&url).bearer_auth(app.owner_token("watch-1")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], whole.len().to_string().as_str());

    let anonymous = app.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let bad = app
        .get(&format!("/v1/firmware/{v2}/delta/not-a-digest"))
        .bearer_auth(app.owner_token("watch-1"))
        .send()
        .await
        .unwrap();
    assert_field_error(bad, &format!("/v1/firmware/{v2}/delta/not-a-digest"), "from_sha256").await;
    let unknown = app
        .get(&format!("/v1/firmware/{v2}/delta/{}", "ab".repeat(32)))
        .bearer_auth(app.owner_token("watch-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let metrics = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("nowatch_ota_deltas_built_total{outcome=\"ready\"} 1"), "{metrics}");
    let saved: u64 = metric(&metrics, "nowatch_ota_delta_bytes_saved_total");
    let image_size = offer["firmware"]["size"].as_u64().unwrap();
    // The two whole GETs and the ranged one that reached the end (not the 304, not the HEAD).
    assert_eq!(saved, 3 * (image_size - whole.len() as u64));
}

/// A 400 in the NOWATCH error shape whose message starts with `field`.
async fn assert_field_error(response: reqwest::Response, path: &str, field: &str) {
    let body = crate::helpers::assert_error_shape(response, 400, path).await;
    let message = body["message"][0].as_str().unwrap();
    assert!(message.starts_with(&format!("{field}: ")), "{body}");
}

fn metric(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_device_that_failed_on_a_delta_is_offered_the_full_image_and_the_rollout_counts_both() {
    let app = spawn_app().await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&app, from, to, &["watch-1", "watch-2"]).await;
    settled(&app, &v2).await;
    assert!(check(&app, "watch-1", "1.0.0").await.get("delta").is_some());
    let failed =
        report(&app, &v2, "watch-1", json!({"status": "failed", "error": "bad patch", "via": "delta"})).await;
    assert_eq!(failed.status(), 200);
    let after = check(&app, "watch-1", "1.0.0").await;
    assert_eq!(after["firmware"]["version"], "1.1.0");
    assert!(after.get("delta").is_none(), "{after}");
    // Another device is not affected, and the rule holds after a catalog rebuild (read from the rows).
    assert!(check(&app, "watch-2", "1.0.0").await.get("delta").is_some());
    app.state.catalog_changed().await;
    assert!(check(&app, "watch-1", "1.0.0").await.get("delta").is_none());
    assert!(check(&app, "watch-2", "1.0.0").await.get("delta").is_some());

    assert_eq!(
        report(&app, &v2, "watch-1", json!({"status": "downloading", "via": "full"})).await.status(),
        200
    );
    assert_eq!(
        report(&app, &v2, "watch-2", json!({"status": "downloading", "via": "delta"})).await.status(),
        200
    );
    let rollout = app
        .get("/v1/admin/rollouts?state=active")
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let id =
        rollout["items"].as_array().unwrap().iter().find(|r| r["firmware_id"] == v2.as_str()).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let view: Value = app
        .get(&format!("/v1/admin/rollouts/{id}"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["downloads"], json!({"delta": 1, "full": 1}), "{view}");

    let bogus = report(&app, &v2, "watch-2", json!({"status": "installing", "via": "carrier-pigeon"})).await;
    assert_field_error(bogus, &format!("/v1/firmware/{v2}/report"), "via").await;
}

#[tokio::test]
async fn a_patch_above_max_ratio_is_skipped_and_a_version_without_a_stored_image_is_listed_as_such() {
    let app = spawn_app().await;
    // Unrelated images: the patch is about as large as the image.
    let (_, v2) = fleet_on_old(
        &app,
        crate::helpers::image_bytes(1, 200_000),
        crate::helpers::image_bytes(2, 200_000),
        &["watch-1"],
    )
    .await;
    // A device on a version the service never stored.
    assert_eq!(
        report(&app, &v2, "watch-9", json!({"status": "downloading", "from_version": "0.9.0"}))
            .await
            .status(),
        200
    );
    db_plan(&app, &v2).await;
    let list = settled(&app, &v2).await;
    let by_version =
        |v: &str| list["items"].as_array().unwrap().iter().find(|d| d["from_version"] == v).unwrap().clone();
    let old = by_version("1.0.0");
    assert_eq!(old["state"], "skipped", "{list}");
    assert!(old["reason"].as_str().unwrap().contains("delta.max_ratio"), "{old}");
    let unknown = by_version("0.9.0");
    assert_eq!(unknown["state"], "skipped");
    assert!(unknown["reason"].as_str().unwrap().contains("no stored image of version 0.9.0"), "{unknown}");
    assert!(check(&app, "watch-1", "1.0.0").await.get("delta").is_none());
    let metrics = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("nowatch_ota_deltas_built_total{outcome=\"skipped\"} 1"), "{metrics}");
}

async fn db_plan(app: &TestApp, id: &str) {
    nowatch_ota::services::deltas::plan_release(&app.state, id.parse().unwrap()).await.unwrap();
}

#[tokio::test]
async fn rebuild_queues_the_patches_again_and_the_sweep_deletes_patches_nothing_refers_to() {
    let app = spawn_app().await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&app, from, to, &["watch-1"]).await;
    let first = settled(&app, &v2).await;
    let sha = first["items"][0]["sha256"].as_str().unwrap().to_owned();
    let rebuilt = app
        .post(&format!("/v1/admin/firmware/{v2}/deltas/rebuild"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(rebuilt.status(), 202);
    let again = settled(&app, &v2).await;
    assert_eq!(again["items"][0]["state"], "ready");
    assert_eq!(again["items"][0]["sha256"], sha.as_str(), "the same bytes, the same key");
    let forbidden = app
        .post(&format!("/v1/admin/firmware/{v2}/deltas/rebuild"))
        .bearer_auth(app.user_token())
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    assert_eq!(crate::helpers::stored_keys(&app, "delta/").await, vec![format!("delta/{sha}")]);
    nowatch_ota::services::sweep::run(&app.state, Duration::ZERO).await.unwrap();
    assert_eq!(crate::helpers::stored_keys(&app, "delta/").await.len(), 1, "a ready patch stays");
    let revoked = app
        .post(&format!("/v1/admin/firmware/{v2}/revoke"))
        .bearer_auth(app.admin_token())
        .json(&json!({"reason": "bad build"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    nowatch_ota::services::sweep::run(&app.state, Duration::ZERO).await.unwrap();
    assert!(crate::helpers::stored_keys(&app, "delta/").await.is_empty(), "a revoked release's patch goes");
}

/// Plans but builds no patch by itself: the tests below drive `build_next` and the rows.
async fn app_without_builders() -> TestApp {
    spawn_app_with(&[("NOWATCH_OTA__DELTA__CONCURRENCY", "0")]).await
}

#[tokio::test]
async fn many_builders_claiming_one_patch_at_once_build_it_once() {
    let app = app_without_builders().await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&app, from, to, &["watch-1"]).await;
    let rows = db::deltas::of_release(&app.state.db, v2.parse().unwrap()).await.unwrap();
    let row = rows[0].clone();
    assert_eq!(row.state, DeltaState::Pending, "this instance builds nothing by itself");
    let now = chrono::Utc::now();
    let claims = futures_util::future::join_all((0..32).map(|_| {
        let (db, row) = (app.state.db.clone(), row.clone());
        async move {
            db::deltas::claim(&db, &row, uuid::Uuid::new_v4(), now, chrono::Duration::seconds(600))
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| **c).count(), 1, "{claims:?}");
}

#[tokio::test]
async fn a_build_whose_instance_died_is_taken_over_once_its_lease_runs_out() {
    let app = app_without_builders().await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&app, from, to, &["watch-1"]).await;
    let row = db::deltas::of_release(&app.state.db, v2.parse().unwrap()).await.unwrap().remove(0);
    // An instance claimed it and died: its lease is still running, then it has run out.
    let mut held = row.clone().into_active_model();
    held.state = Set(DeltaState::Building);
    held.claim = Set(Some(uuid::Uuid::new_v4()));
    held.lease_until = Set(Some(chrono::Utc::now() + chrono::Duration::seconds(600)));
    held.size = Set(None);
    held.sha256 = Set(None);
    held.update(&app.state.db).await.unwrap();
    assert!(!build_next(&app.state).await.unwrap(), "a running lease is left alone");
    // Only the claim's holder renews it.
    let later = chrono::Utc::now() + chrono::Duration::seconds(1200);
    assert!(!db::deltas::renew(&app.state.db, &row, uuid::Uuid::new_v4(), later).await.unwrap());
    let mut expired = firmware_delta::Entity::find_by_id((
        row.firmware_id,
        row.from_version.clone(),
        row.from_sha256.clone(),
    ))
    .one(&app.state.db)
    .await
    .unwrap()
    .unwrap()
    .into_active_model();
    expired.lease_until = Set(Some(chrono::Utc::now() - chrono::Duration::seconds(1)));
    expired.update(&app.state.db).await.unwrap();
    assert!(build_next(&app.state).await.unwrap());
    let list = deltas(&app, &v2).await;
    assert_eq!(list["items"][0]["state"], "ready", "{list}");
}

#[tokio::test]
async fn verify_applies_a_served_patch_as_a_watch_does_and_refuses_a_corrupted_or_truncated_one() {
    let app = spawn_app().await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&app, from.clone(), to.clone(), &["watch-1"]).await;
    settled(&app, &v2).await;
    let offer = check(&app, "watch-1", "1.0.0").await;
    let patch = get_bytes(&app, offer["delta"]["download_url"].as_str().unwrap(), "watch-1").await;
    let keys: Value = app
        .get("/v1/firmware/keys")
        .bearer_auth(app.user_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = keys["keys"][0]["public_key"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let manifest = write("manifest.json", offer["manifest"].to_string().as_bytes());
    let old = write("old.bin", &from);
    let verify = |patch: &str, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_nowatch-ota"))
            .args(["verify", "--manifest", &manifest, "--image", out, "--delta", patch, "--from", &old])
            .args(["--public-key", &key, "--hardware", HW, "--current-version", "1.0.0"])
            .output()
            .unwrap()
    };

    let good = write("good.patch", &patch);
    let out = dir.path().join("new.bin");
    let ok = verify(&good, out.to_str().unwrap());
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK:"));
    assert!(std::fs::read(&out).unwrap() == to, "the image written is the release's");

    // A byte changed in the middle: the applier cannot tell (the format has no checksum), the
    // manifest's SHA-256 can.
    let mut flipped = patch.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let out = dir.path().join("flipped.bin");
    let refused = verify(&write("flipped.patch", &flipped), out.to_str().unwrap());
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(stderr.contains("SHA-256") || stderr.contains("delta:"), "{stderr}");

    // With the chunk table, the patch's output is checked chunk by chunk as it is produced: the
    // bad patch is refused at its first bad chunk, and nothing of it is left.
    let id = offer["firmware"]["id"].as_str().unwrap();
    let table = get_bytes(&app, &app.url(&format!("/v1/firmware/{id}/chunks")), "watch-1").await;
    let table = write("table.bin", &table);
    let with_table = |patch: &str, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_nowatch-ota"))
            .args(["verify", "--manifest", &manifest, "--image", out, "--delta", patch, "--from", &old])
            .args(["--public-key", &key, "--hardware", HW, "--current-version", "1.0.0", "--chunks", &table])
            .output()
            .unwrap()
    };
    let out = dir.path().join("chunked.bin");
    let ok = with_table(&good, out.to_str().unwrap());
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("chunks: 151 of 4096 bytes"),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let out = dir.path().join("flipped-chunked.bin");
    let refused = with_table(&write("flipped.patch", &flipped), out.to_str().unwrap());
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success());
    assert!(
        stderr.contains("chunk: the chunk's SHA-256 is not its table entry (in the patch's output)"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing half-written stays behind");

    let out = dir.path().join("truncated.bin");
    let truncated = verify(&write("truncated.patch", &patch[..patch.len() / 2]), out.to_str().unwrap());
    assert!(!truncated.status.success());
    assert!(String::from_utf8_lossy(&truncated.stderr).contains("delta:"));
    assert!(!out.exists(), "nothing half-written stays behind");
}

#[tokio::test]
async fn patches_planned_by_an_instance_that_stopped_are_built_by_the_next_one_on_the_same_database() {
    let first = app_without_builders().await;
    let (from, to) = esp8266_pair();
    let (_, v2) = fleet_on_old(&first, from, to, &["watch-1"]).await;
    assert_eq!(deltas(&first, &v2).await["items"][0]["state"], "pending");
    // A second instance (builders on) on the same database and store, as after a restart.
    let settings = &first.state.settings;
    let url = settings.database.url.clone();
    let root = settings.storage.fs.root.display().to_string();
    let bucket = settings.storage.s3.bucket.clone();
    let mut overrides =
        vec![("NOWATCH_OTA__DATABASE__URL", url.as_str()), ("NOWATCH_OTA__STORAGE__FS__ROOT", root.as_str())];
    if !bucket.is_empty() {
        overrides.push(("NOWATCH_OTA__STORAGE__S3__BUCKET", bucket.as_str()));
    }
    let second = spawn_app_with(&overrides).await;
    let list = settled(&second, &v2).await;
    assert_eq!(list["items"][0]["state"], "ready", "{list}");
    // The first instance offers it too once its catalog is rebuilt (every firmware.catalog_refresh_s).
    first.state.catalog_changed().await;
    assert!(check(&first, "watch-1", "1.0.0").await.get("delta").is_some());
}
