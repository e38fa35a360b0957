//! kill -9 in the middle of an upload and of publishes, then a restart: nothing half-written.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{base_env, image_bytes, token};
use crate::service::{files_under, get_json, start_binary as start, upload_at};

#[tokio::test]
async fn a_service_killed_mid_upload_leaves_no_release_and_its_staging_object_is_swept() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(&dir).await;
    env.insert("NOWATCH_OTA__STORAGE__STAGING_TTL_S".into(), "1".into());
    env.insert("NOWATCH_OTA__STORAGE__SWEEP_INTERVAL_S".into(), "1".into());
    let service = start(&env);
    let admin = token(json!({"sub": "ci", "isAdmin": true}));

    // 256 MiB announced; the service is killed once a quarter of it has arrived.
    const SIZE: u64 = 256 << 20;
    let chunk = bytes::Bytes::from(image_bytes(1, 1 << 20));
    let chunks =
        futures_util::stream::iter((0..SIZE >> 20).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(json!({"version": "1.0.0", "hardware": ["nw-s1"]}).to_string()),
        )
        .part(
            "file",
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(chunks), SIZE)
                .file_name("fw.bin"),
        );
    let upload = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{}/v1/admin/firmware", service.base))
            .bearer_auth(&admin)
            .multipart(form)
            .send(),
    );
    let staging = dir.path().join("blobs/staging");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written: u64 = std::fs::read_dir(&staging)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        if written >= 64 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    service.kill9();
    assert!(upload.await.unwrap().is_err(), "the client sees the connection die");
    assert_eq!(files_under(&staging).len(), 1, "the partial upload is on disk, as a staging object only");
    assert!(files_under(&dir.path().join("blobs/firmware")).is_empty());

    let service = start(&env);
    let list =
        get_json(&reqwest::Client::new(), &format!("{}/v1/admin/firmware", service.base), &admin).await;
    assert_eq!(list["total"], 0, "no release row");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !files_under(&staging).is_empty() {
        assert!(Instant::now() < deadline, "the sweep did not remove the staging object");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(files_under(&dir.path().join("blobs/firmware")).is_empty(), "no servable image");
    service.kill9();
}

#[tokio::test]
async fn a_service_killed_during_publishes_and_advances_restarts_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(&dir).await;
    let service = start(&env);
    let admin = token(json!({"sub": "ci", "isAdmin": true}));
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..12u8 {
        let release =
            upload_at(&client, &service.base, &admin, &format!("1.0.{i}"), image_bytes(i, 2000)).await;
        ids.push(release["id"].as_str().unwrap().to_owned());
    }
    // Publish everything on two channels and push rollouts forward, all at once; kill the
    // service while those requests are in flight.
    let stages = json!([{"percent": 10, "min_duration_s": 60}, {"percent": 50, "min_duration_s": 60}, {"percent": 100}]);
    let mut inflight = Vec::new();
    for id in &ids {
        for channel in ["stable", "beta"] {
            let request = client
                .post(format!("{}/v1/admin/firmware/{id}/publish", service.base))
                .bearer_auth(&admin)
                .json(&json!({"channel": channel, "stages": stages}));
            let client = client.clone();
            let (base, admin) = (service.base.clone(), admin.clone());
            inflight.push(tokio::spawn(async move {
                let Ok(response) = request.send().await else { return };
                let Ok(rollout) = response.json::<Value>().await else { return };
                if let Some(rid) = rollout["id"].as_str() {
                    for action in ["advance", "pause", "advance", "resume"] {
                        let _ = client
                            .post(format!("{base}/v1/admin/rollouts/{rid}/{action}"))
                            .bearer_auth(&admin)
                            .send()
                            .await;
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    service.kill9();
    for task in inflight {
        let _ = task.await;
    }

    let service = start(&env);
    let rollouts = get_json(&client, &format!("{}/v1/admin/rollouts", service.base), &admin).await;
    let mut with_rollout = std::collections::HashSet::new();
    for summary in rollouts["items"].as_array().unwrap() {
        let id = summary["id"].as_str().unwrap();
        let rollout = get_json(&client, &format!("{}/v1/admin/rollouts/{id}", service.base), &admin).await;
        assert_eq!(rollout["chain_valid"], true, "rollout {id} has a broken chain after the crash");
        assert_eq!(rollout["events"][0]["kind"], "created");
        with_rollout.insert(rollout["firmware_id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let release = get_json(&client, &format!("{}/v1/admin/firmware/{id}", service.base), &admin).await;
        let published = release["state"] == "published";
        assert_eq!(
            published,
            with_rollout.contains(id),
            "release {id} is {} but has rollouts: {}",
            release["state"],
            with_rollout.contains(id)
        );
    }
    service.kill9();
}
