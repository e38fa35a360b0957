//! Chunk tables (issue 22): every published image gets one, its manifests sign it and serve the
//! signed bytes as they were signed, `GET /v1/firmware/{id}/chunks` serves it like an image;
//! releases published before tables existed get one from the backfill; two builders of one
//! table record it once; the sweep keeps tables in use and deletes the others.

use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use nowatch_ota::chunks::chunk_table;
use nowatch_ota::db::entities::firmware;
use nowatch_ota::services::chunks;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error_shape, image_bytes, manifest_public_keys, publish, sha256_hex, spawn_app,
    stored_keys, upload_ok,
};

const HW: &str = "nw-s1";

async fn published(app: &TestApp, version: &str, image: Vec<u8>) -> String {
    let release = upload_ok(app, version, &[HW], image).await;
    let id = release["id"].as_str().unwrap().to_owned();
    publish(app, &id, json!({"channel": "stable"})).await;
    id
}

/// The manifest as served, byte for byte.
async fn manifest_text(app: &TestApp, id: &str) -> String {
    let response = app
        .get(&format!("/v1/firmware/{id}/manifest?hardware={HW}"))
        .bearer_auth(app.user_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn get_table(app: &TestApp, id: &str) -> reqwest::Response {
    app.get(&format!("/v1/firmware/{id}/chunks")).bearer_auth(app.user_token()).send().await.unwrap()
}

#[tokio::test]
async fn a_published_image_has_a_chunk_table_that_its_manifest_signs() {
    let app = spawn_app().await;
    let image = image_bytes(1, 1024 * 1024 + 123);
    let id = published(&app, "1.0.0", image.clone()).await;

    let response = get_table(&app, &id).await;
    assert_eq!(response.status(), 200);
    let expected = chunk_table(&image, 4096);
    assert_eq!(expected.len(), 257 * 32, "256 whole chunks and a short one");
    let etag = format!("\"{}\"", sha256_hex(&expected));
    assert_eq!(response.headers()["etag"], etag.as_str());
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    assert_eq!(response.bytes().await.unwrap().as_ref(), expected.as_slice());

    let manifest: Value = serde_json::from_str(&manifest_text(&app, &id).await).unwrap();
    let signed = &manifest["signed"];
    assert_eq!(signed["spec_version"], "1.1");
    assert_eq!(signed["chunk_size"], 4096);
    assert_eq!(signed["chunk_table_sha256"], sha256_hex(&expected));

    // The table resumes like an image: one range, If-Range, 304.
    let part = app
        .get(&format!("/v1/firmware/{id}/chunks"))
        .bearer_auth(app.user_token())
        .header("Range", "bytes=32-95")
        .header("If-Range", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 32-95/{}", expected.len()).as_str());
    assert_eq!(part.bytes().await.unwrap().as_ref(), &expected[32..96]);
    let cached = app
        .get(&format!("/v1/firmware/{id}/chunks"))
        .bearer_auth(app.user_token())
        .header("If-None-Match", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let head = app
        .client
        .head(app.url(&format!("/v1/firmware/{id}/chunks")))
        .bearer_auth(app.user_token())
        .send()
        .await;
    let head = head.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], expected.len().to_string().as_str());
}

#[tokio::test]
async fn the_manifest_is_served_with_the_very_bytes_its_signature_covers() {
    let app = spawn_app().await;
    let id = published(&app, "1.0.0", image_bytes(2, 10_000)).await;
    let text = manifest_text(&app, &id).await;
    // `{"signed":<S>,"signatures":[...]}`: S is taken as it stands, not re-serialised.
    let rest = text.strip_prefix("{\"signed\":").expect("signed first");
    let at = rest.find(",\"signatures\":").expect("then signatures");
    let signed = &rest[..at];
    let envelope: Value = serde_json::from_str(&text).unwrap();
    let canonical = nowatch_ota::signing::canonical_json(&envelope["signed"]).unwrap();
    assert_eq!(signed.as_bytes(), canonical.as_slice(), "the served bytes are canonical");

    let b64 = base64::engine::general_purpose::STANDARD;
    let key = manifest_public_keys(&app).await.remove(0);
    let key: [u8; 32] = b64.decode(key).unwrap().try_into().unwrap();
    let sig: [u8; 64] =
        b64.decode(envelope["signatures"][0]["sig"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = VerifyingKey::from_bytes(&key).unwrap();
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&sig))
        .expect("verifies over the served bytes");

    // The update check embeds the same bytes.
    let check = app
        .get(&format!("/v1/firmware/check?hardware={HW}&version=0.9.0&device_id=w-1"))
        .bearer_auth(app.user_token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(check.contains(&text), "the check carries the manifest as served");
}

#[tokio::test]
async fn the_chunk_table_of_a_draft_or_an_unknown_release_is_not_found_and_needs_a_token() {
    let app = spawn_app().await;
    let draft = upload_ok(&app, "1.0.0", &[HW], image_bytes(3, 5000)).await;
    let draft = draft["id"].as_str().unwrap();
    let path = format!("/v1/firmware/{draft}/chunks");
    let response = app.get(&path).bearer_auth(app.admin_token()).send().await.unwrap();
    let body = assert_error_shape(response, 404, &path).await;
    assert!(body["message"][0].as_str().unwrap().contains("no chunk table"), "{body}");
    let response = app.get(&path).bearer_auth(app.user_token()).send().await.unwrap();
    assert_error_shape(response, 404, &path).await;
    let response = app.get(&path).send().await.unwrap();
    assert_error_shape(response, 401, &path).await;
    let path = "/v1/firmware/not-an-id/chunks";
    let response = app.get(path).bearer_auth(app.user_token()).send().await.unwrap();
    assert_error_shape(response, 400, path).await;
}

/// Forgets release `id`'s table, as a row published before tables existed has none.
async fn forget_table(app: &TestApp, id: &str) {
    firmware::Entity::update_many()
        .col_expr(firmware::Column::ChunkSize, Expr::value(Option::<i32>::None))
        .col_expr(firmware::Column::ChunkTableSha256, Expr::value(Option::<String>::None))
        .filter(firmware::Column::Id.eq(uuid::Uuid::parse_str(id).unwrap()))
        .exec(&app.state.db)
        .await
        .unwrap();
    app.state.catalog_changed().await;
}

#[tokio::test]
async fn a_release_published_before_chunk_tables_keeps_a_1_0_manifest_until_the_backfill_builds_its_table() {
    let app = spawn_app().await;
    let image = image_bytes(4, 9000);
    let id = published(&app, "1.0.0", image.clone()).await;
    forget_table(&app, &id).await;

    let old: Value = serde_json::from_str(&manifest_text(&app, &id).await).unwrap();
    assert_eq!(old["signed"]["spec_version"], "1.0");
    assert!(old["signed"].get("chunk_size").is_none() && old["signed"].get("chunk_table_sha256").is_none());
    let path = format!("/v1/firmware/{id}/chunks");
    assert_error_shape(get_table(&app, &id).await, 404, &path).await;

    assert_eq!(chunks::backfill(&app.state).await.unwrap(), 1);
    assert_eq!(chunks::backfill(&app.state).await.unwrap(), 0, "nothing left to build");
    let new: Value = serde_json::from_str(&manifest_text(&app, &id).await).unwrap();
    assert_eq!(new["signed"]["spec_version"], "1.1");
    assert_eq!(new["signed"]["chunk_table_sha256"], sha256_hex(&chunk_table(&image, 4096)));
    assert_eq!(
        get_table(&app, &id).await.bytes().await.unwrap().as_ref(),
        chunk_table(&image, 4096).as_slice()
    );
}

#[tokio::test]
async fn builders_racing_for_one_table_record_it_once() {
    let app = spawn_app().await;
    let image = image_bytes(5, 200_000);
    let id = published(&app, "1.0.0", image.clone()).await;
    for round in 0..3 {
        forget_table(&app, &id).await;
        let uuid = uuid::Uuid::parse_str(&id).unwrap();
        let builds = (0..16).map(|_| chunks::ensure(&app.state, uuid));
        let set: Vec<bool> =
            futures_util::future::join_all(builds).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(set.iter().filter(|s| **s).count(), 1, "round {round}: exactly one records it: {set:?}");
        let row = firmware::Entity::find_by_id(uuid).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(row.chunk_table_sha256.as_deref(), Some(sha256_hex(&chunk_table(&image, 4096)).as_str()));
        assert_eq!(row.chunk_size, Some(4096));
    }
}

#[tokio::test]
async fn the_sweep_keeps_chunk_tables_in_use_and_deletes_the_others() {
    let app = spawn_app().await;
    let kept = published(&app, "1.0.0", image_bytes(6, 7000)).await;
    let gone = published(&app, "1.1.0", image_bytes(7, 7000)).await;
    assert_eq!(stored_keys(&app, "chunks/").await.len(), 2);
    forget_table(&app, &gone).await;
    let report = nowatch_ota::services::sweep::run(&app.state, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(report.orphans, 1, "{report:?}");
    let left = stored_keys(&app, "chunks/").await;
    let row = firmware::Entity::find_by_id(uuid::Uuid::parse_str(&kept).unwrap()).one(&app.state.db).await;
    let kept_sha = row.unwrap().unwrap().chunk_table_sha256.unwrap();
    assert_eq!(left, vec![format!("chunks/{kept_sha}")]);
}

#[tokio::test]
async fn verify_checks_each_chunk_against_the_signed_table_and_names_the_bad_one() {
    let app = spawn_app().await;
    let image = image_bytes(8, 1024 * 1024 + 123);
    let id = published(&app, "1.0.0", image.clone()).await;
    let key = manifest_public_keys(&app).await.remove(0);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let manifest = write("manifest.json", manifest_text(&app, &id).await.as_bytes());
    let table = get_table(&app, &id).await.bytes().await.unwrap().to_vec();
    let verify = |image: &str, table: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_nowatch-ota"))
            .args([
                "verify",
                "--manifest",
                &manifest,
                "--image",
                image,
                "--chunks",
                table,
                "--public-key",
                &key,
            ])
            .args(["--hardware", HW, "--current-version", "0.9.0"])
            .output()
            .unwrap()
    };
    let (good_image, good_table) = (write("fw.bin", &image), write("table.bin", &table));
    let ok = verify(&good_image, &good_table);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("chunks: 257 of 4096 bytes"));
    assert!(ok.stderr.is_empty(), "the manifest as served: no note");

    // The same manifest pretty-printed by a tool: checked in the served form, with a note.
    let served: Value = serde_json::from_str(&manifest_text(&app, &id).await).unwrap();
    std::fs::write(&manifest, serde_json::to_string_pretty(&served).unwrap()).unwrap();
    let noted = verify(&good_image, &good_table);
    assert!(noted.status.success(), "{}", String::from_utf8_lossy(&noted.stderr));
    assert!(String::from_utf8_lossy(&noted.stderr).contains("not the manifest as served"));

    let mut bad_table = table.clone();
    bad_table[40] ^= 1;
    let refused = verify(&good_image, &write("bad-table.bin", &bad_table));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("chunk_table:"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let mut bad_image = image.clone();
    bad_image[100 * 4096 + 7] ^= 1;
    let refused = verify(&write("bad.bin", &bad_image), &good_table);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("chunk: chunk 100 (bytes 409600..)"), "{stderr}");
}

#[tokio::test]
async fn a_recorded_table_gone_from_the_store_is_built_again_by_the_backfill() {
    let app = spawn_app().await;
    let image = image_bytes(13, 30_000);
    let id = published(&app, "1.0.0", image.clone()).await;
    let key = stored_keys(&app, "chunks/").await.remove(0);
    app.state.store.delete(&nowatch_ota::storage::ObjectKey::parse(&key).unwrap()).await.unwrap();
    assert_error_shape(get_table(&app, &id).await, 404, &format!("/v1/firmware/{id}/chunks")).await;

    assert_eq!(chunks::backfill(&app.state).await.unwrap(), 0, "nothing newly recorded");
    assert_eq!(stored_keys(&app, "chunks/").await, vec![key], "the same table under the same key");
    let response = get_table(&app, &id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), chunk_table(&image, 4096).as_slice());
}
