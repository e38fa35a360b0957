//! The sweep against an upload of the same bytes as an orphaned image: the sweep decides from a
//! listing, the upload moves the image into place and writes its row after that. The windows
//! are widened on both sides: thousands of orphans listed before the image (the sweep's), and
//! a lock held by the test that keeps the upload from committing its row (the upload's). The
//! image must survive: the release is offered and downloads whole.

use std::time::{Duration, Instant, SystemTime};

use sea_orm::{ConnectionTrait, DatabaseBackend, TransactionTrait};
use serde_json::json;

use crate::helpers::{image_bytes, publish, sha256_hex, spawn_app_with, upload};

/// Orphans listed before the image (content-addressed names sort by digest).
const ORPHANS: usize = 5000;

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

fn set_modified(path: &std::path::Path, when: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_claimed_by_an_upload_while_the_sweep_runs_survives_and_downloads() {
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__STORAGE__BACKEND", "fs"),
        ("NOWATCH_OTA__STORAGE__STAGING_TTL_S", "3600"),
        ("NOWATCH_OTA__STORAGE__SWEEP_INTERVAL_S", "86400"),
    ])
    .await;
    // The image: bytes whose digest sorts after every orphan's, so the sweep reaches it last.
    let bytes =
        (0..=255).map(|seed| image_bytes(seed, 4096)).find(|b| sha256_hex(b).starts_with('f')).unwrap();
    let sha = sha256_hex(&bytes);
    let metadata = |version: &str| json!({"version": version, "hardware": ["nw-s1"]});

    // Uploaded, then its draft deleted two hours ago: an orphan the sweep may delete.
    let first = upload(&app, &metadata("1.0.0"), bytes.clone()).await;
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/admin/firmware/{}", first["id"].as_str().unwrap())))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let firmware_dir = app.dir.path().join("blobs/firmware");
    let image = firmware_dir.join(&sha);
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    set_modified(&image, two_hours_ago);
    for n in 0..ORPHANS {
        let orphan = firmware_dir.join(format!("{n:064x}"));
        std::fs::write(&orphan, b"orphan").unwrap();
        set_modified(&orphan, two_hours_ago);
    }

    // The lock that keeps the upload between moving the image into place and committing its row.
    let url = app.state.settings.database.url.clone();
    let locker = sea_orm::Database::connect(&url).await.unwrap();
    let lock = locker.begin().await.unwrap();
    if locker.get_database_backend() == DatabaseBackend::Postgres {
        lock.execute_unprepared("LOCK TABLE firmware IN SHARE ROW EXCLUSIVE MODE").await.unwrap();
    } else {
        // SQLite: holding the write lock (a write in an open transaction) makes BEGIN IMMEDIATE
        // wait (the service's busy timeout is 10 s).
        lock.execute_unprepared("DELETE FROM firmware WHERE version = 'none'").await.unwrap();
    }

    let state = app.state.clone();
    let sweep =
        tokio::spawn(
            async move { nowatch_ota::services::sweep::run(&state, Duration::from_secs(3600)).await },
        );
    // The sweep has listed once it deletes the first orphan.
    let first_orphan = firmware_dir.join(format!("{:064x}", 0));
    let deadline = Instant::now() + Duration::from_secs(30);
    while first_orphan.exists() {
        assert!(Instant::now() < deadline, "the sweep did not start");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The same bytes again as another version: moved into place, then waiting for the lock.
    let second = {
        let (client, url, token, body) =
            (app.client.clone(), app.url("/v1/admin/firmware"), app.admin_token(), bytes.clone());
        let form = reqwest::multipart::Form::new()
            .part("metadata", reqwest::multipart::Part::text(metadata("2.0.0").to_string()))
            .part("file", reqwest::multipart::Part::bytes(body).file_name("fw.bin"));
        tokio::spawn(async move { client.post(url).bearer_auth(token).multipart(form).send().await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while modified(&image).is_some_and(|m| m <= two_hours_ago) {
        assert!(Instant::now() < deadline, "the upload did not move the image into place");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let swept = sweep.await.unwrap().unwrap();
    let left = std::fs::read_dir(&firmware_dir).unwrap().count();
    println!("sweep race: {swept:?}; {left} files left under firmware/ (the image, if it survived)");
    lock.rollback().await.unwrap();

    let second = second.await.unwrap().unwrap();
    assert_eq!(second.status(), 201, "{}", second.text().await.unwrap());
    let second: serde_json::Value = second.json().await.unwrap();
    let id = second["id"].as_str().unwrap();
    publish(&app, id, json!({"channel": "stable"})).await;
    let download =
        app.get(&format!("/v1/firmware/{id}/download")).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(download.status(), 200, "the image of a published release was swept");
    assert_eq!(sha256_hex(&download.bytes().await.unwrap()), sha);
}
