//! Device reports one account cannot forge: a device belongs to the account that first reports
//! it (or to the tokens that name it, with `auth.device_claim`); a rollout's health counts only
//! devices it admitted, reporting from a version it could be offered to, at most
//! `rollout.max_devices_per_owner` per account; a device that failed a release twice is not
//! offered it again.

use chrono::Utc;
use nowatch_ota::services::rollout_engine::tick;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error_shape, image_bytes, publish, spawn_app, spawn_app_with, token, upload_ok,
};

async fn staged(app: &TestApp, stages: Value, extra: Value) -> (String, String) {
    let release = upload_ok(app, "2.0.0", &["nw-s1"], image_bytes(2, 3000)).await;
    let id = release["id"].as_str().unwrap().to_owned();
    let mut body = json!({"channel": "stable", "stages": stages});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let rollout = publish(app, &id, body).await;
    (id, rollout["id"].as_str().unwrap().to_owned())
}

async fn send(app: &TestApp, token: &str, firmware: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/v1/firmware/{firmware}/report")).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn report_as(app: &TestApp, token: &str, firmware: &str, device: &str, status: &str) -> u16 {
    let body = json!({"device_id": device, "status": status, "from_version": "1.0.0",
        "error": (status == "failed").then_some("E_BOOT")});
    send(app, token, firmware, body).await.status().as_u16()
}

async fn rollout(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/admin/rollouts/{id}"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn offered(app: &TestApp, device: &str) -> Option<String> {
    crate::helpers::offered_version(app, &format!("hardware=nw-s1&version=1.0.0&device_id={device}")).await
}

#[tokio::test]
async fn made_up_failures_from_one_token_do_not_halt_a_rollout() {
    let app = spawn_app().await;
    let (firmware, r) =
        staged(&app, json!([{"percent": 1}, {"percent": 100}]), json!({"min_reports": 20})).await;
    let attacker = app.user_token();
    for i in 0..20 {
        assert_eq!(report_as(&app, &attacker, &firmware, &format!("made-up-{i}"), "failed").await, 200);
    }
    tick(&app.state, Utc::now()).await.unwrap();
    let view = rollout(&app, &r).await;
    assert_eq!(view["state"], "active", "20 forged failures halted it: {view}");
    assert!(view["counts"]["failed"].as_u64().unwrap() <= 3, "{view}");
    let kept = view["uncounted"]["failed"].as_u64().unwrap() + view["counts"]["failed"].as_u64().unwrap();
    assert_eq!(kept, 20, "reports that do not count are kept and shown apart: {view}");
}

#[tokio::test]
async fn made_up_successes_from_one_token_do_not_hide_real_failures() {
    let app = spawn_app().await;
    let (firmware, r) = staged(
        &app,
        json!([{"percent": 100, "min_duration_s": 86400}]),
        json!({"min_reports": 20, "max_failure_rate": 0.05}),
    )
    .await;
    // The real fleet: 19 installed, 2 failed (9.5 %), each watch its owner's.
    for i in 0..21 {
        let device = format!("real-{i}");
        let status = if i < 2 { "failed" } else { "installed" };
        assert_eq!(report_as(&app, &app.owner_token(&device), &firmware, &device, status).await, 200);
    }
    let attacker = app.user_token();
    for i in 0..100 {
        assert_eq!(report_as(&app, &attacker, &firmware, &format!("mask-{i}"), "installed").await, 200);
    }
    tick(&app.state, Utc::now()).await.unwrap();
    let view = rollout(&app, &r).await;
    assert_eq!(view["state"], "halted", "100 forged successes hid 9.5 % failures: {view}");
    assert_eq!(view["counts"]["installed"], 19 + 3, "{view}");
    assert_eq!(view["uncounted"]["installed"], 97);
}

#[tokio::test]
async fn another_account_cannot_report_for_a_device_nor_learn_its_status() {
    use sea_orm::EntityTrait;
    let app = spawn_app().await;
    let (firmware, _) = staged(&app, json!([{"percent": 100}]), json!({})).await;
    let owner = token(json!({"sub": "alice"}));
    let body =
        json!({"device_id": "watch-1", "status": "installed", "from_version": "1.0.0", "channel": "stable"});
    assert_eq!(send(&app, &owner, &firmware, body).await.status(), 200);

    let mallory = token(json!({"sub": "mallory"}));
    let path = format!("/v1/firmware/{firmware}/report");
    for body in [
        json!({"device_id": "watch-1", "status": "failed", "error": "E_FAKE", "from_version": "0.1.0", "channel": "alpha", "hardware": "nw-s1"}),
        json!({"device_id": "watch-1", "status": "downloading"}),
        json!({"device_id": "watch-1", "status": "installed"}),
    ] {
        let refused = assert_error_shape(send(&app, &mallory, &firmware, body).await, 403, &path).await;
        let said = refused.to_string();
        assert!(!said.contains("installed") && !said.contains("stable"), "a refusal reveals nothing: {said}");
    }
    let device = nowatch_ota::db::entities::device::Entity::find_by_id("watch-1".to_owned())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (device.version.as_str(), device.channel.as_deref(), device.owner.as_deref()),
        ("2.0.0", Some("stable"), Some("alice"))
    );
    let report = nowatch_ota::db::entities::device_report::Entity::find_by_id((
        "watch-1".to_owned(),
        uuid::Uuid::parse_str(&firmware).unwrap(),
    ))
    .one(&app.state.db)
    .await
    .unwrap()
    .unwrap();
    assert_eq!((report.status.as_str(), report.error), ("installed", None));
}

/// The first of `prefix-0`, `prefix-1`, ... that the update check offers the release to (or not).
async fn first_device(app: &TestApp, prefix: &str, offered_to: bool) -> String {
    for i in 0..200 {
        let device = format!("{prefix}-{i}");
        if offered(app, &device).await.is_some() == offered_to {
            return device;
        }
    }
    panic!("none of 200 devices is {}admitted", if offered_to { "" } else { "not " });
}

#[tokio::test]
async fn a_device_the_rollout_did_not_admit_or_could_not_be_offered_to_does_not_count() {
    let app = spawn_app().await;
    let (firmware, r) = staged(&app, json!([{"percent": 10}, {"percent": 100}]), json!({})).await;
    let not_admitted = first_device(&app, "w", false).await;
    assert_eq!(
        report_as(&app, &app.owner_token(&not_admitted), &firmware, &not_admitted, "failed").await,
        200
    );
    let admitted = first_device(&app, "v", true).await;
    // Already on the release's version: it could not have been offered it.
    let body = json!({"device_id": admitted, "status": "failed", "error": "E", "from_version": "2.0.0"});
    assert_eq!(send(&app, &app.owner_token(&admitted), &firmware, body).await.status(), 200);

    let view = rollout(&app, &r).await;
    assert_eq!(view["counts"]["failed"], 0, "{view}");
    assert_eq!(view["uncounted"]["failed"], 2, "{view}");
}

#[tokio::test]
async fn with_a_device_claim_the_token_decides_which_devices_it_may_report_for() {
    let app = spawn_app_with(&[("NOWATCH_OTA__AUTH__DEVICE_CLAIM", "devices")]).await;
    let (firmware, _) = staged(&app, json!([{"percent": 100}]), json!({})).await;
    let phone = token(json!({"sub": "u1", "devices": ["w-1", "w-2"]}));
    let single = token(json!({"sub": "u2", "devices": "w-3"}));
    let none = token(json!({"sub": "u3"}));
    let path = format!("/v1/firmware/{firmware}/report");
    assert_eq!(report_as(&app, &phone, &firmware, "w-1", "downloading").await, 200);
    assert_eq!(report_as(&app, &single, &firmware, "w-3", "downloading").await, 200);
    for (t, device) in [(&phone, "w-3"), (&single, "w-1"), (&none, "w-4")] {
        let body = json!({"device_id": device, "status": "downloading"});
        assert_error_shape(send(&app, t, &firmware, body).await, 403, &path).await;
    }
    // A watch sold to another account: the new owner's token names it, and that decides.
    let buyer = token(json!({"sub": "u9", "devices": ["w-1"]}));
    assert_eq!(report_as(&app, &buyer, &firmware, "w-1", "installed").await, 200);
}

#[tokio::test]
async fn an_admin_sees_a_device_and_releases_its_owner_and_that_is_audited() {
    use sea_orm::EntityTrait;
    let app = spawn_app().await;
    let (firmware, _) = staged(&app, json!([{"percent": 100}]), json!({})).await;
    let alice = token(json!({"sub": "alice"}));
    let bob = token(json!({"sub": "bob"}));
    assert_eq!(report_as(&app, &alice, &firmware, "watch-1", "installed").await, 200);
    let shown: Value = app
        .get("/v1/admin/devices/watch-1")
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&shown["owner"], &shown["hardware"], &shown["version"]),
        (&json!("alice"), &json!("nw-s1"), &json!("2.0.0"))
    );
    assert_eq!(shown["reports"][0]["status"], "installed");
    assert_eq!(shown["reports"][0]["counted"], true);
    let path = "/v1/admin/devices/watch-1";
    assert_error_shape(app.get(path).bearer_auth(&alice).send().await.unwrap(), 403, path).await;
    let unknown = "/v1/admin/devices/nobody";
    assert_error_shape(app.get(unknown).bearer_auth(app.admin_token()).send().await.unwrap(), 404, unknown)
        .await;

    assert_eq!(
        report_as(&app, &bob, &firmware, "watch-1", "downloading").await,
        403,
        "sold, not yet released"
    );
    let released = app
        .client
        .delete(app.url("/v1/admin/devices/watch-1/owner"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(released.status(), 200);
    assert_eq!(released.json::<Value>().await.unwrap()["owner"], Value::Null);
    let audit = nowatch_ota::db::entities::admin_audit::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].action.as_str(), audit[0].subject.as_str()),
        ("release-bot", "device.owner_released", "device/watch-1")
    );
    assert_eq!(audit[0].detail["previous_owner"], "alice");
    let second = upload_ok(&app, "2.1.0", &["nw-s1"], image_bytes(3, 3000)).await;
    publish(&app, second["id"].as_str().unwrap(), json!({"channel": "stable"})).await;
    assert_eq!(
        report_as(&app, &bob, second["id"].as_str().unwrap(), "watch-1", "downloading").await,
        200,
        "the next account owns it"
    );
}

#[tokio::test]
async fn a_device_that_failed_a_release_twice_is_not_offered_it_again_until_an_admin_clears_it() {
    let app = spawn_app().await;
    let previous = upload_ok(&app, "1.5.0", &["nw-s1"], image_bytes(1, 3000)).await;
    publish(&app, previous["id"].as_str().unwrap(), json!({"channel": "stable"})).await;
    let (firmware, _) = staged(&app, json!([{"percent": 100}]), json!({"min_reports": 1000})).await;
    let watch = app.owner_token("watch-1");
    assert_eq!(offered(&app, "watch-1").await.as_deref(), Some("2.0.0"));
    assert_eq!(report_as(&app, &watch, &firmware, "watch-1", "failed").await, 200);
    assert_eq!(offered(&app, "watch-1").await.as_deref(), Some("2.0.0"), "one failure: it may retry");
    assert_eq!(report_as(&app, &watch, &firmware, "watch-1", "downloading").await, 200);
    assert_eq!(report_as(&app, &watch, &firmware, "watch-1", "failed").await, 200);
    assert_eq!(offered(&app, "watch-1").await.as_deref(), Some("1.5.0"), "two failures: the next best");
    assert_eq!(offered(&app, "watch-2").await.as_deref(), Some("2.0.0"), "other devices are not affected");

    // What another instance learns from the database at its next rebuild.
    app.state.catalog_changed().await;
    assert_eq!(offered(&app, "watch-1").await.as_deref(), Some("1.5.0"));

    let cleared = app
        .client
        .delete(app.url("/v1/admin/devices/watch-1/failures"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(cleared.json::<Value>().await.unwrap()["reports"][0]["failures"], 0);
    assert_eq!(offered(&app, "watch-1").await.as_deref(), Some("2.0.0"));
}

#[tokio::test]
async fn an_account_that_makes_up_devices_is_cut_at_its_daily_allowance_and_nothing_is_created() {
    use sea_orm::EntityTrait;
    let app = spawn_app_with(&[("NOWATCH_OTA__LIMITS__NEW_DEVICES_PER_ACCOUNT_PER_DAY", "2")]).await;
    let (firmware, _) = staged(&app, json!([{"percent": 100}]), json!({})).await;
    let account = app.user_token();
    assert_eq!(report_as(&app, &account, &firmware, "w-1", "downloading").await, 200);
    assert_eq!(report_as(&app, &account, &firmware, "w-2", "downloading").await, 200);
    let body = json!({"device_id": "w-3", "status": "downloading"});
    let refused = send(&app, &account, &firmware, body).await;
    assert!(refused.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_error_shape(refused, 429, &format!("/v1/firmware/{firmware}/report")).await;
    let w3 = nowatch_ota::db::entities::device::Entity::find_by_id("w-3".to_owned())
        .one(&app.state.db)
        .await
        .unwrap();
    assert!(w3.is_none(), "a refused report creates no device");
    assert_eq!(
        report_as(&app, &account, &firmware, "w-1", "installed").await,
        200,
        "its known devices still report"
    );
    assert_eq!(
        report_as(&app, &app.owner_token("w-9"), &firmware, "w-9", "downloading").await,
        200,
        "other accounts are not affected"
    );
}
