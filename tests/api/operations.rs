//! What operators see: Prometheus metrics and logs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{image_bytes, publish, spawn_app, upload_ok};

fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.split(',').all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_bytes_checks_and_rollout_states() {
    let app = spawn_app().await;
    let bytes = image_bytes(1, 12_345);
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], bytes).await;
    let id = release["id"].as_str().unwrap();
    publish(&app, id, json!({"channel": "stable"})).await;
    let token = app.user_token();
    for _ in 0..2 {
        let r = app.get(&format!("/v1/firmware/{id}/download")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 12_345);
    }
    let check = "/v1/firmware/check?hardware=nw-s1&device_id=d1&version=";
    assert_eq!(app.get(&format!("{check}0.9.0")).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(app.get(&format!("{check}1.0.0")).bearer_auth(&token).send().await.unwrap().status(), 204);
    app.get("/nope/123").send().await.unwrap();

    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert_eq!(
        metric(
            &text,
            "nowatch_ota_http_requests_total",
            r#"route="/v1/firmware/{id}/download",status="200""#
        ),
        2.0
    );
    assert!(!text.contains(id), "raw paths never become labels");
    assert_eq!(metric(&text, "nowatch_ota_http_requests_total", r#"route="unmatched",status="404""#), 1.0);
    assert!(
        metric(&text, "nowatch_ota_http_request_duration_seconds_count", r#"route="/v1/firmware/check""#)
            >= 2.0
    );
    assert_eq!(metric(&text, "nowatch_ota_upload_bytes_total", ""), 12_345.0);
    assert_eq!(metric(&text, "nowatch_ota_download_bytes_total", ""), 24_690.0);
    assert_eq!(metric(&text, "nowatch_ota_update_checks_total", r#"outcome="offered""#), 1.0);
    assert_eq!(metric(&text, "nowatch_ota_update_checks_total", r#"outcome="none""#), 1.0);
    assert_eq!(metric(&text, "nowatch_ota_rollouts", r#"state="active""#), 1.0);
    assert_eq!(metric(&text, "nowatch_ota_rollouts", r#"state="halted""#), 0.0);
}

/// Runs the real binary with JSON logs, drives a full flow through it, and reads what it logged.
#[tokio::test]
async fn logs_are_json_carry_the_request_id_and_never_contain_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = crate::helpers::base_env(&dir).await;
    env.insert("NOWATCH_OTA__LOG__FORMAT".into(), "json".into());
    env.insert("NOWATCH_OTA__LOG__LEVEL".into(), "info".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_nowatch-ota"))
        .arg("serve")
        .env_clear()
        .envs(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logged = Vec::new();
    let port = loop {
        let line = lines_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the service started");
        let parsed: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        logged.push(line);
        if let Some(port) = parsed["port"].as_u64() {
            break port;
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let admin = crate::helpers::token(json!({"sub": "release-bot", "isAdmin": true}));
    let user = crate::helpers::token(json!({"sub": "uid_user"}));
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(json!({"version": "1.0.0", "hardware": ["nw-s1"]}).to_string()),
        )
        .part("file", reqwest::multipart::Part::bytes(image_bytes(3, 2048)).file_name("fw.bin"));
    let release: Value = client
        .post(format!("{base}/v1/admin/firmware"))
        .bearer_auth(&admin)
        .header("x-request-id", "upload-req-1")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = release["id"].as_str().unwrap();
    client
        .post(format!("{base}/v1/admin/firmware/{id}/publish"))
        .bearer_auth(&admin)
        .json(&json!({"channel": "stable"}))
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/v1/firmware/check?hardware=nw-s1&version=0.1.0&device_id=w1"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/v1/firmware/check?hardware=nw-s1&version=not-semver&device_id=w1"))
        .bearer_auth(&user)
        .header("x-request-id", "bad-check-1")
        .send()
        .await
        .unwrap();
    client.get(format!("{base}/v1/firmware/{id}/download")).bearer_auth(&user).send().await.unwrap();
    // Forwarded (here: 503, no upstream is configured), logged by the proxy's own line writer.
    client.get(format!("{base}/v1/user?q=%22x%22")).header("x-request-id", "proxied-1").send().await.unwrap();
    client.get(format!("{base}/v1/admin/firmware")).bearer_auth(format!("{user}x")).send().await.unwrap();
    // A graceful stop (SIGTERM), as an orchestrator does: the log writer's queue is written out.
    let stopped = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    child.wait().unwrap();
    while let Ok(line) = lines_rx.recv_timeout(std::time::Duration::from_secs(2)) {
        logged.push(line);
    }

    let all = logged.join("\n");
    for secret in [admin.as_str(), user.as_str(), nowatch_ota::config::DEV_HS_SECRET] {
        assert!(!all.contains(secret), "a token or secret was logged");
    }
    let request_lines: Vec<&String> = logged.iter().filter(|l| l.contains("request finished")).collect();
    assert!(request_lines.len() >= 5, "{all}");
    for line in &request_lines {
        let parsed: Value = serde_json::from_str(line).unwrap();
        let id = parsed["span"]["request_id"].as_str().or(parsed["request_id"].as_str()).unwrap_or_default();
        assert!(!id.is_empty(), "a request line without its request id: {line}");
    }
    // Successful update checks are logged at debug (a fleet polls all day); failed ones at info.
    let check_lines: Vec<Value> = request_lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["path"] == "/v1/firmware/check" || l["span"]["path"] == "/v1/firmware/check")
        .collect();
    assert_eq!(check_lines.len(), 1, "{check_lines:?}");
    assert_eq!(
        (check_lines[0]["status"].as_u64(), check_lines[0]["request_id"].as_str()),
        (Some(400), Some("bad-check-1"))
    );
    let proxied: Vec<Value> = request_lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["request_id"] == "proxied-1")
        .collect();
    assert_eq!(
        proxied,
        vec![json!({
            "timestamp": proxied.first().map(|l| l["timestamp"].clone()),
            "level": "INFO",
            "message": "request finished",
            "request_id": "proxied-1",
            "method": "GET",
            "path": "/v1/user",
            "status": 503,
        })]
    );
    let upload_lines: Vec<&String> =
        logged.iter().filter(|l| l.contains(id) && l.contains("upload")).collect();
    assert!(!upload_lines.is_empty(), "{all}");
    assert!(
        upload_lines.iter().all(|l| l.contains("upload-req-1")),
        "the upload's own lines carry its request id"
    );
}
