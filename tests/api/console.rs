//! The release console's data and files: a rollout's timeline (reports by status per interval,
//! the failure rate so far, when each stage was entered), a release's rollouts, and the console's
//! own files (no token, strict CSP, ETags, nothing from outside). The browser tests are
//! `tests/console`.

use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use serde_json::{Value, json};

use crate::helpers::{TestApp, admin_get, assert_error_shape, image_bytes, publish, spawn_app, upload_ok};

async fn report(app: &TestApp, firmware: &str, device: &str, status: &str) {
    let body =
        json!({"status": status, "from_version": "1.0.0", "error": (status == "failed").then_some("E_BOOT")});
    let response = crate::helpers::report_as_owner(app, firmware, device, body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn released(app: &TestApp, version: &str, body: Value) -> (String, String) {
    let release = upload_ok(app, version, &["nw-s1"], image_bytes(version.len() as u8 + 7, 2000)).await;
    let firmware = release["id"].as_str().unwrap().to_owned();
    let rollout = publish(app, &firmware, body).await;
    (firmware, rollout["id"].as_str().unwrap().to_owned())
}

fn sum(timeline: &Value, status: &str) -> u64 {
    timeline["buckets"].as_array().unwrap().iter().map(|b| b["counts"][status].as_u64().unwrap()).sum()
}

#[tokio::test]
async fn the_timeline_counts_reports_by_status_with_the_failure_rate_so_far() {
    let app = spawn_app().await;
    let (firmware, rollout) =
        released(&app, "2.0.0", json!({"channel": "stable", "max_failure_rate": 0.3, "min_reports": 50}))
            .await;
    for (device, status) in
        [("w-1", "installed"), ("w-2", "installed"), ("w-3", "installed"), ("w-4", "failed")]
    {
        report(&app, &firmware, device, status).await;
    }
    report(&app, &firmware, "w-5", "downloading").await;

    let response = admin_get(&app, &format!("/v1/admin/rollouts/{rollout}/timeline?step=30")).await;
    assert_eq!(response.status(), 200);
    let timeline: Value = response.json().await.unwrap();
    assert_eq!(timeline["rollout_id"], rollout.as_str());
    assert_eq!(timeline["step"], 30);
    assert_eq!(timeline["max_failure_rate"], 0.3);
    assert_eq!(timeline["min_reports"], 50);
    let buckets = timeline["buckets"].as_array().unwrap();
    assert!(!buckets.is_empty() && buckets.len() <= 2, "{timeline}");
    assert_eq!(buckets[0]["start"], timeline["started_at"]);
    assert_eq!(
        (sum(&timeline, "installed"), sum(&timeline, "failed"), sum(&timeline, "downloading")),
        (3, 1, 1)
    );
    assert_eq!(sum(&timeline, "installing"), 0, "every status is listed, 0 when none");
    assert_eq!(buckets.last().unwrap()["failure_rate"], 0.25);
    let stage = &timeline["stages"][0];
    assert_eq!(
        (&stage["stage"], &stage["percent"], &stage["min_duration_s"]),
        (&json!(0), &json!(100.0), &json!(0))
    );
    let entered: chrono::DateTime<Utc> = serde_json::from_value(stage["entered_at"].clone()).unwrap();
    let started: chrono::DateTime<Utc> = serde_json::from_value(timeline["started_at"].clone()).unwrap();
    assert!((entered - started).num_milliseconds().abs() < 1000, "stage 1 entered as the rollout started");
    assert_eq!(timeline["stages"].as_array().unwrap().len(), 1);

    let view: Value = admin_get(&app, &format!("/v1/admin/rollouts/{rollout}")).await.json().await.unwrap();
    assert_eq!(view["failure_rate"], 0.25, "the last interval's rate is the rollout's");
}

#[tokio::test]
async fn each_report_falls_into_the_interval_of_its_time() {
    use nowatch_ota::db::entities::{device_report, rollout};
    let app = spawn_app().await;
    let (firmware, rollout_id) = released(&app, "2.0.0", json!({"channel": "stable"})).await;
    for device in ["w-1", "w-2", "w-3", "w-4"] {
        report(&app, &firmware, device, if device == "w-3" { "failed" } else { "installed" }).await;
    }
    // The rollout started 5 minutes ago; its devices reported 10 s, 70 s, 75 s and 250 s in.
    let id = uuid::Uuid::parse_str(&rollout_id).unwrap();
    let start = Utc::now() - Duration::seconds(300);
    let mut row =
        rollout::Entity::find_by_id(id).one(&app.state.db).await.unwrap().unwrap().into_active_model();
    row.created_at = Set(start);
    row.update(&app.state.db).await.unwrap();
    for (device, offset) in [("w-1", 10), ("w-2", 70), ("w-3", 75), ("w-4", 250)] {
        let key = (device.to_owned(), uuid::Uuid::parse_str(&firmware).unwrap());
        let report = device_report::Entity::find_by_id(key).one(&app.state.db).await.unwrap().unwrap();
        let mut report = report.into_active_model();
        report.updated_at = Set(start + Duration::milliseconds(offset * 1000 + 500));
        report.update(&app.state.db).await.unwrap();
    }

    let timeline: Value = admin_get(&app, &format!("/v1/admin/rollouts/{rollout_id}/timeline?step=60"))
        .await
        .json()
        .await
        .unwrap();
    let buckets = timeline["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 6, "5 whole minutes and the one running");
    let per_bucket: Vec<(u64, u64)> = buckets
        .iter()
        .map(|b| (b["counts"]["installed"].as_u64().unwrap(), b["counts"]["failed"].as_u64().unwrap()))
        .collect();
    assert_eq!(per_bucket, [(1, 0), (1, 1), (0, 0), (0, 0), (1, 0), (0, 0)]);
    let rates: Vec<Value> = buckets.iter().map(|b| b["failure_rate"].clone()).collect();
    assert_eq!(
        rates,
        [json!(0.0), json!(1.0 / 3.0), json!(1.0 / 3.0), json!(1.0 / 3.0), json!(0.25), json!(0.25)]
    );
}

#[tokio::test]
async fn the_timeline_says_when_each_stage_was_entered() {
    let app = spawn_app().await;
    let stages = json!([{"percent": 10, "min_duration_s": 0}, {"percent": 50, "min_duration_s": 600}, {"percent": 100}]);
    let (_, rollout) = released(&app, "2.0.0", json!({"channel": "stable", "stages": stages})).await;
    let entered = |t: &Value| -> Vec<bool> {
        t["stages"].as_array().unwrap().iter().map(|s| !s["entered_at"].is_null()).collect()
    };
    let path = format!("/v1/admin/rollouts/{rollout}/timeline");
    let before: Value = admin_get(&app, &path).await.json().await.unwrap();
    assert_eq!(entered(&before), [true, false, false]);
    assert_eq!(before["step"], 60, "without a step: a minute for a young rollout");

    let later = Utc::now() + Duration::seconds(5);
    assert_eq!(nowatch_ota::services::rollout_engine::tick(&app.state, later).await.unwrap(), 1);
    let after: Value = admin_get(&app, &path).await.json().await.unwrap();
    assert_eq!(entered(&after), [true, true, false]);
    assert_eq!(after["stages"][1]["percent"], 50.0);
    assert_eq!(after["stages"][1]["min_duration_s"], 600);
    let at: chrono::DateTime<Utc> = serde_json::from_value(after["stages"][1]["entered_at"].clone()).unwrap();
    assert_eq!(at.timestamp(), later.timestamp(), "entered at the advance, on the evaluation's clock");
}

#[tokio::test]
async fn a_step_the_timeline_cannot_take_is_a_400_naming_step() {
    let app = spawn_app().await;
    let (_, rollout) = released(&app, "2.0.0", json!({"channel": "stable"})).await;
    for step in ["0", "-1", "abc", "86401", "1.5", ""] {
        let path = format!("/v1/admin/rollouts/{rollout}/timeline");
        let response = admin_get(&app, &format!("{path}?step={step}")).await;
        let body = assert_error_shape(response, 400, &path).await;
        assert!(body["message"][0].as_str().unwrap().starts_with("step: "), "{step:?}: {body}");
    }
    let path = format!("/v1/admin/rollouts/{rollout}/timeline");
    let response = admin_get(&app, &format!("{path}?steps=5")).await;
    assert_error_shape(response, 400, &path).await;
}

#[tokio::test]
async fn the_timeline_of_an_old_rollout_is_capped_at_a_thousand_intervals() {
    let app = spawn_app().await;
    let (_, rollout) = released(&app, "2.0.0", json!({"channel": "stable"})).await;
    let id = uuid::Uuid::parse_str(&rollout).unwrap();
    let row =
        nowatch_ota::db::entities::rollout::Entity::find_by_id(id).one(&app.state.db).await.unwrap().unwrap();
    let mut old = row.into_active_model();
    old.created_at = Set(Utc::now() - Duration::days(2));
    old.update(&app.state.db).await.unwrap();

    let path = format!("/v1/admin/rollouts/{rollout}/timeline");
    let body = assert_error_shape(admin_get(&app, &format!("{path}?step=60")).await, 400, &path).await;
    let message = body["message"][0].as_str().unwrap();
    assert!(
        message.starts_with("step: the rollout has run for 1728") && message.contains("at least 173 s"),
        "{message}"
    );
    let capped: Value = admin_get(&app, &path).await.json().await.unwrap();
    assert_eq!(capped["step"], 173);
    assert!(capped["buckets"].as_array().unwrap().len() <= 1000);
    let fits: Value = admin_get(&app, &format!("{path}?step=3600")).await.json().await.unwrap();
    assert_eq!(fits["buckets"].as_array().unwrap().len(), 49);
}

#[tokio::test]
async fn the_timeline_of_an_unknown_rollout_is_404_and_of_a_malformed_id_400() {
    let app = spawn_app().await;
    let unknown = format!("/v1/admin/rollouts/{}/timeline", uuid::Uuid::new_v4());
    assert_error_shape(admin_get(&app, &unknown).await, 404, &unknown).await;
    let body = assert_error_shape(
        admin_get(&app, "/v1/admin/rollouts/nope/timeline").await,
        400,
        "/v1/admin/rollouts/nope/timeline",
    )
    .await;
    assert!(body["message"][0].as_str().unwrap().starts_with("id: "), "{body}");
}

#[tokio::test]
async fn rollouts_can_be_listed_for_one_release() {
    let app = spawn_app().await;
    let (first, first_rollout) = released(&app, "2.0.0", json!({"channel": "stable"})).await;
    let (second, _) = released(&app, "2.1.0", json!({"channel": "beta"})).await;
    let list: Value =
        admin_get(&app, &format!("/v1/admin/rollouts?firmware_id={first}")).await.json().await.unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], first_rollout.as_str());
    assert_eq!(list["items"][0]["firmware_id"], first.as_str());
    let all: Value = admin_get(&app, "/v1/admin/rollouts").await.json().await.unwrap();
    assert_eq!(all["total"], 2, "{second}");
    let none: Value = admin_get(&app, &format!("/v1/admin/rollouts?firmware_id={}", uuid::Uuid::new_v4()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["total"], 0);
    let body = assert_error_shape(
        admin_get(&app, "/v1/admin/rollouts?firmware_id=x").await,
        400,
        "/v1/admin/rollouts",
    )
    .await;
    assert!(body["message"][0].as_str().unwrap().starts_with("firmware_id: "), "{body}");
}

#[tokio::test]
async fn the_console_loads_without_a_token_under_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirect = client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/console/");

    let page = app.get("/console/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'self'; script-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="app.js"></script>"#), "{html}");
    assert_eq!(html.matches("<script").count(), 1, "no inline script");

    for (name, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("rollout.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
        ("index.html", "text/html; charset=utf-8"),
    ] {
        let response = app.get(&format!("/console/{name}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["content-type"], content_type, "{name}");
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
        let body = response.text().await.unwrap();
        let outside = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !outside.contains("http://") && !outside.contains("https://") && !outside.contains("//cdn"),
            "{name} loads nothing from outside"
        );
        let again = app.get(&format!("/console/{name}")).header("If-None-Match", &etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{name}");
        assert_eq!(again.headers()["etag"], etag.as_str());
    }
    let missing = app.get("/console/nope.js").send().await.unwrap();
    assert_error_shape(missing, 404, "/console/nope.js").await;
}

#[tokio::test]
async fn the_console_never_puts_the_token_in_a_url_and_keeps_it_for_the_tab_only() {
    let app = spawn_app().await;
    let api = app.get("/console/api.js").send().await.unwrap().text().await.unwrap();
    assert!(api.contains("sessionStorage") && !api.contains("localStorage"), "{api}");
    assert!(api.contains("Authorization") && api.contains("Bearer"), "{api}");
    for name in ["app.js", "api.js", "releases.js", "release.js", "rollout.js", "upload.js", "device.js"] {
        let js = app.get(&format!("/console/{name}")).send().await.unwrap().text().await.unwrap();
        assert!(!js.contains("access_token=") && !js.contains("token="), "{name} puts no token in a URL");
        assert!(!js.contains("innerHTML") && !js.contains("eval("), "{name} builds the DOM from text only");
    }
}
