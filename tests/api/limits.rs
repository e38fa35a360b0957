//! Per-instance request limits (issue 17): a flood of reports or update checks is cut with 429,
//! `Retry-After` and the NOWATCH error shape naming the limit. The harness turns every limit off;
//! each test here turns on the one it is about.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error_shape, image_bytes, publish, spawn_app_with, token, upload_ok};

/// A published release that reports can name; returns its report path.
async fn report_path(app: &TestApp) -> String {
    let release = upload_ok(app, "1.1.0", &["nw-s1"], image_bytes(1, 5000)).await;
    let id = release["id"].as_str().unwrap();
    publish(app, id, json!({"channel": "stable"})).await;
    format!("/v1/firmware/{id}/report")
}

async fn report(app: &TestApp, path: &str, sub: &str, device: &str) -> reqwest::Response {
    app.post(path)
        .bearer_auth(token(json!({"sub": sub})))
        .json(&json!({"device_id": device, "status": "downloading", "from_version": "1.0.0"}))
        .send()
        .await
        .unwrap()
}

async fn check(app: &TestApp, device: &str, version: &str) -> reqwest::Response {
    let query = format!("hardware=nw-s1&version={version}&device_id={device}");
    app.get(&format!("/v1/firmware/check?{query}")).bearer_auth(app.user_token()).send().await.unwrap()
}

/// The whole seconds of `Retry-After`, asserting it is there and at least 1.
fn retry_after(response: &reqwest::Response) -> u64 {
    let value = response.headers().get("retry-after").expect("a 429 says when to come back");
    let seconds: u64 = value.to_str().unwrap().parse().unwrap();
    assert!(seconds >= 1, "Retry-After {seconds}");
    seconds
}

/// Asserts a 429 in the NOWATCH shape whose message names `limit`; returns `Retry-After`.
async fn assert_limited(response: reqwest::Response, path: &str, limit: &str) -> u64 {
    assert_eq!(response.status(), 429, "limited by {limit}");
    let seconds = retry_after(&response);
    let body: Value = assert_error_shape(response, 429, path).await;
    assert_eq!(body["error"], "Too Many Requests");
    let message = body["message"][0].as_str().unwrap();
    assert!(message.contains(limit), "{message}");
    assert!(message.contains(&format!("retry after {seconds} s")), "{message}");
    seconds
}

#[tokio::test]
async fn a_flood_of_reports_from_one_account_is_cut_with_429_and_retry_after() {
    let app = spawn_app_with(&[("NOWATCH_OTA__LIMITS__REPORTS_PER_ACCOUNT_PER_MINUTE", "3")]).await;
    let path = report_path(&app).await;
    for device in ["flood-1", "flood-2", "flood-3"] {
        assert_eq!(report(&app, &path, "uid_flood", device).await.status(), 200);
    }

    let fourth = report(&app, &path, "uid_flood", "flood-4").await;
    let seconds = assert_limited(fourth, &path, "limits.reports_per_account_per_minute").await;
    assert!(seconds <= 60, "Retry-After {seconds} for a per-minute limit");
    assert_eq!(
        report(&app, &path, "uid_other", "other-1").await.status(),
        200,
        "another account keeps its own allowance"
    );
}

#[tokio::test]
async fn a_flood_of_reports_for_one_device_is_cut_with_429_and_retry_after() {
    let app = spawn_app_with(&[("NOWATCH_OTA__LIMITS__REPORTS_PER_DEVICE_PER_MINUTE", "3")]).await;
    let path = report_path(&app).await;
    for _ in 0..3 {
        assert_eq!(report(&app, &path, "uid_user", "chatty-1").await.status(), 200);
    }

    let fourth = report(&app, &path, "uid_user", "chatty-1").await;
    let seconds = assert_limited(fourth, &path, "limits.reports_per_device_per_minute").await;
    assert!(seconds <= 60, "Retry-After {seconds} for a per-minute limit");
    assert_eq!(
        report(&app, &path, "uid_user", "quiet-1").await.status(),
        200,
        "another device of the same account is not limited"
    );
}

#[tokio::test]
async fn a_device_checking_again_within_the_interval_is_told_when_to_come_back() {
    let app = spawn_app_with(&[("NOWATCH_OTA__FIRMWARE__MIN_CHECK_INTERVAL_S", "60")]).await;
    let path = "/v1/firmware/check";
    assert_eq!(check(&app, "watch-1", "1.0.0").await.status(), 204);

    let again = check(&app, "watch-1", "1.0.0").await;
    let seconds = assert_limited(again, path, "firmware.min_check_interval_s").await;
    assert!(seconds <= 60, "Retry-After {seconds} for an interval of 60 s");
    assert_eq!(check(&app, "watch-2", "1.0.0").await.status(), 204, "another device is unaffected");
    assert_error_shape(check(&app, "watch-1", "not-a-version").await, 400, path).await;
}

#[tokio::test]
async fn another_account_checking_with_a_device_id_does_not_spend_that_device_s_allowance() {
    let app = spawn_app_with(&[("NOWATCH_OTA__FIRMWARE__MIN_CHECK_INTERVAL_S", "60")]).await;
    let query = "/v1/firmware/check?hardware=nw-s1&version=1.0.0&device_id=watch-1";
    let mallory = crate::helpers::token(serde_json::json!({"sub": "mallory"}));
    assert_eq!(app.get(query).bearer_auth(&mallory).send().await.unwrap().status(), 204);
    let own = app.get(query).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(own.status(), 204, "a device id sent by another token kept the watch from checking");
}

#[tokio::test]
async fn a_device_told_to_come_back_is_answered_again_after_the_interval() {
    let app = spawn_app_with(&[("NOWATCH_OTA__FIRMWARE__MIN_CHECK_INTERVAL_S", "1")]).await;
    // Two checks in a row are normally well within a second; on a loaded machine they may not
    // be, so keep checking until the limit answers rather than assume it did the first time.
    let mut limited = None;
    for _ in 0..50 {
        let response = check(&app, "watch-1", "1.0.0").await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 204);
    }
    let limited = limited.expect("a device checking back to back is told to come back");
    assert_eq!(retry_after(&limited), 1, "an interval of 1 s rounds up to 1");

    // Polled, not timed: the point is that the device is answered again, not how soon.
    let mut answered = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = check(&app, "watch-1", "1.0.0").await.status();
        if status == 204 {
            answered = true;
            break;
        }
        assert_eq!(status, 429);
    }
    assert!(answered, "the device is answered again once the interval has passed");
}
