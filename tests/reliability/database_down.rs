//! PostgreSQL down: a request that needs the database fails fast (`database.acquire_timeout_s`,
//! 2 s by default, instead of the 10 s the pool used to wait) with a 503 worth retrying, in the
//! NOWATCH shape and with `Retry-After`; `/readyz` says why without naming the database's URL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{base_env, image_bytes, token};
use crate::postgres_restart::Cluster;
use crate::service::{publish_at, start_binary, upload_at};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_requests_fail_fast_with_503_and_retry_after_and_readyz_says_why() {
    let cluster = Cluster::create();
    let dir = tempfile::tempdir().unwrap();
    let mut env: HashMap<String, String> = base_env(&dir).await;
    env.insert("NOWATCH_OTA__DATABASE__URL".into(), cluster.url());
    let service = start_binary(&env);
    let base = service.base.clone();
    let admin = token(json!({"sub": "ci", "isAdmin": true}));
    let user = token(json!({"sub": "watch-app"}));
    let setup = reqwest::Client::new();
    let release = upload_at(&setup, &base, &admin, "1.0.0", image_bytes(3, 64 << 10)).await;
    let id = release["id"].as_str().unwrap().to_owned();
    publish_at(&setup, &base, &admin, &id, json!({"channel": "stable"})).await;

    tokio::task::block_in_place(|| cluster.stop());
    // A client that gives up after 8 s: four times the default acquire timeout, and less than
    // the 10 s every request waited for a connection before its 503 until now.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(8)).build().unwrap();
    // Several in a row: the first may meet a pooled connection PostgreSQL closed (which fails at
    // once); the others wait for a new connection, which is what the timeout bounds.
    for device in 0..5 {
        let path = format!("/v1/firmware/{id}/report");
        let sent = Instant::now();
        let response = client
            .post(format!("{base}{path}"))
            .bearer_auth(&user)
            .json(&json!({"device_id": format!("watch-{device}"), "status": "installed"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("no answer within the client's 8 s: {e}"));
        println!("database down: report {device} answered {} after {:?}", response.status(), sent.elapsed());
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let retry_after: u64 = retry_after.expect("a Retry-After header").parse().unwrap();
        assert!(retry_after >= 1, "Retry-After: {retry_after}");
        let body = crate::helpers::assert_error_shape(response, 503, &path).await;
        assert_eq!(body["message"], json!(["database unavailable"]));
    }
    let admin_read =
        client.get(format!("{base}/v1/admin/firmware")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(admin_read.status(), 503);
    assert!(admin_read.headers().contains_key("retry-after"));

    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    let ready = crate::helpers::assert_error_shape(ready, 503, "/readyz").await;
    let reason = ready["message"][0].as_str().unwrap();
    println!("database down: /readyz says {reason:?}");
    let why = reason.strip_prefix("database unreachable: ").unwrap_or_else(|| panic!("{ready}"));
    assert!(!why.is_empty(), "{ready}");
    assert!(!reason.contains("postgres") && !reason.contains("127.0.0.1"), "no URL: {reason}");

    // Back: no restart of the service needed.
    tokio::task::block_in_place(|| cluster.start());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = client.get(format!("{base}/readyz")).send().await.unwrap();
        if probe.status() == 200 {
            let body: Value = probe.json().await.unwrap();
            assert_eq!(body["database"], "ok");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service.kill9();
}
