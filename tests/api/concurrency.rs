//! Storms: many requests at once on one rollout, one release or one device, on SQLite and (with
//! `TEST_DATABASE_URL`) PostgreSQL at READ COMMITTED. After each storm the invariants a release
//! engineer relies on are checked: the answers match what stuck, the chain is valid and replays
//! (each event starts where the one before ended), its last event is the final state, counters
//! equal a recount of the reports and are never negative, one live rollout per (release,
//! channel), and an aborted release is offered to no one.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use futures_util::future::join_all;
use nowatch_ota::db::entities::{device_report, rollout, rollout_report_count, rollout_uncounted_count};
use nowatch_ota::services::rollout_engine::tick;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_error_shape, image_bytes, publish, spawn_app, upload_ok};

/// How many times each race is run: enough that the code before row locks lost it every run.
const TRIALS: u8 = 8;

async fn release(app: &TestApp, trial: u8) -> String {
    let body = upload_ok(app, &format!("2.0.{trial}"), &["nw-s1"], image_bytes(trial, 2000)).await;
    body["id"].as_str().unwrap().to_owned()
}

async fn view(app: &TestApp, rollout_id: &str) -> Value {
    app.get(&format!("/v1/admin/rollouts/{rollout_id}"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn control(app: &TestApp, rollout_id: &str, action: &str) -> (u16, Value) {
    let response = app
        .post(&format!("/v1/admin/rollouts/{rollout_id}/{action}"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Checks the chain of a rollout view and returns its event kinds: valid, every event after
/// `created` starts where the one before ended, and the last one ends in the rollout's state.
fn replay(view: &Value) -> Vec<String> {
    assert_eq!(view["chain_valid"], true, "{view}");
    let events = view["events"].as_array().unwrap();
    assert_eq!(events[0]["kind"], "created");
    let (mut state, mut stage) = (json!("active"), json!(0));
    for event in &events[1..] {
        let detail = &event["detail"];
        assert_eq!(
            (&detail["from_state"], &detail["from_stage"]),
            (&state, &stage),
            "{event} after {state} {stage}"
        );
        state = detail["to_state"].clone();
        stage = detail["to_stage"].clone();
    }
    assert_eq!((&view["state"], &view["stage"]), (&state, &stage), "the last event is the rollout's state");
    events.iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

/// Devices whose update check offers `version`, among `n` made-up ones.
async fn offered_to_any(app: &TestApp, version: &str, n: usize) -> usize {
    let mut offered = 0;
    for i in 0..n {
        let query = format!("hardware=nw-s1&version=1.0.0&device_id=probe-{i}");
        if crate::helpers::offered_version(app, &query).await.as_deref() == Some(version) {
            offered += 1;
        }
    }
    offered
}

#[tokio::test]
async fn an_abort_amid_advances_a_pause_and_the_engine_sticks_and_the_chain_says_so() {
    let app = spawn_app().await;
    for trial in 0..TRIALS {
        let firmware = release(&app, trial).await;
        let stages = json!([{"percent": 5}, {"percent": 10}, {"percent": 20}, {"percent": 30}, {"percent": 50}, {"percent": 100}]);
        let r = publish(&app, &firmware, json!({"channel": "stable", "stages": stages})).await;
        let id = r["id"].as_str().unwrap();
        let later = Utc::now() + Duration::seconds(5);
        let actions = ["advance", "abort", "advance", "pause", "advance", "advance"];
        let calls = join_all(actions.iter().map(|a| control(&app, id, a)));
        let (answers, ticked) = tokio::join!(calls, tick(&app.state, later));
        ticked.unwrap();

        let (abort_status, abort_body) = &answers[1];
        assert_eq!(*abort_status, 200, "trial {trial}: {abort_body}");
        for ((status, body), action) in answers.iter().zip(actions) {
            assert!(*status == 200 || *status == 409, "trial {trial}: {action} answered {status}: {body}");
        }
        let view = view(&app, id).await;
        assert_eq!(view["state"], "aborted", "trial {trial}: the abort answered 200, so it must stick");
        let kinds = replay(&view);
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("aborted"),
            "trial {trial}: nothing after the abort"
        );
        let granted = |action: &str| {
            answers.iter().zip(actions).filter(|((s, _), a)| *s == 200 && *a == action).count()
        };
        assert_eq!(count(&kinds, "paused"), granted("pause"), "trial {trial}: {kinds:?}");
        let admin_advances = view["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "advanced" && e["actor"] == "release-bot")
            .count();
        assert_eq!(admin_advances, granted("advance"), "trial {trial}: every 200 is one stage: {kinds:?}");
        assert_eq!(
            offered_to_any(&app, &format!("2.0.{trial}"), 20).await,
            0,
            "trial {trial}: offered after abort"
        );
    }
}

#[tokio::test]
async fn concurrent_advances_each_move_one_stage() {
    let app = spawn_app().await;
    for trial in 0..TRIALS {
        let firmware = release(&app, trial).await;
        let stages: Vec<Value> = [1, 2, 5, 10, 20, 50, 100].iter().map(|p| json!({"percent": p})).collect();
        let r = publish(&app, &firmware, json!({"channel": "stable", "stages": stages})).await;
        let id = r["id"].as_str().unwrap();
        let answers = join_all((0..4).map(|_| control(&app, id, "advance"))).await;
        assert!(answers.iter().all(|(s, _)| *s == 200), "trial {trial}: {answers:?}");
        let view = view(&app, id).await;
        assert_eq!(view["stage"], 4, "trial {trial}: four advances that answered 200 move four stages");
        assert_eq!(count(&replay(&view), "advanced"), 4);
    }
}

#[tokio::test]
async fn a_revoke_amid_resumes_and_advances_aborts_for_good() {
    let app = spawn_app().await;
    for trial in 0..TRIALS {
        let firmware = release(&app, trial).await;
        let stages = json!([{"percent": 10}, {"percent": 50}, {"percent": 100}]);
        let r = publish(&app, &firmware, json!({"channel": "stable", "stages": stages})).await;
        let id = r["id"].as_str().unwrap();
        assert_eq!(control(&app, id, "pause").await.0, 200);
        let revoke = app
            .post(&format!("/v1/admin/firmware/{firmware}/revoke"))
            .bearer_auth(app.admin_token())
            .json(&json!({"reason": "bricks watches"}))
            .send();
        let others = join_all(["resume", "advance", "advance", "pause"].map(|a| control(&app, id, a)));
        let (revoked, _) = tokio::join!(revoke, others);
        assert_eq!(revoked.unwrap().status(), 200);
        let view = view(&app, id).await;
        assert_eq!(view["state"], "aborted", "trial {trial}");
        assert_eq!(replay(&view).last().map(String::as_str), Some("aborted"));
        assert_eq!(offered_to_any(&app, &format!("2.0.{trial}"), 20).await, 0);
    }
}

#[tokio::test]
async fn concurrent_publishes_of_one_release_on_one_channel_make_one_live_rollout() {
    let app = spawn_app().await;
    for trial in 0..TRIALS {
        let firmware = release(&app, trial).await;
        let publishes = join_all((0..4).map(|_| {
            app.post(&format!("/v1/admin/firmware/{firmware}/publish"))
                .bearer_auth(app.admin_token())
                .json(&json!({"channel": "beta"}))
                .send()
        }))
        .await;
        let statuses: Vec<u16> = publishes.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "trial {trial}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "trial {trial}: {statuses:?}");
        let firmware_id = Uuid::parse_str(&firmware).unwrap();
        let rows = rollout::Entity::find()
            .filter(rollout::Column::FirmwareId.eq(firmware_id))
            .all(&app.state.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "trial {trial}: rollouts in the database");
    }
}

type ByStatus = BTreeMap<(bool, String), i64>;

/// The counters of a rollout as stored (counted towards its health or kept apart, by status),
/// next to a recount of its reports.
async fn counters_and_recount(app: &TestApp, rollout_id: Uuid) -> (ByStatus, ByStatus) {
    let counted = rollout_report_count::Entity::find()
        .filter(rollout_report_count::Column::RolloutId.eq(rollout_id))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| ((true, c.status), c.devices));
    let uncounted = rollout_uncounted_count::Entity::find()
        .filter(rollout_uncounted_count::Column::RolloutId.eq(rollout_id))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| ((false, c.status), c.devices));
    let stored = counted.chain(uncounted).filter(|(_, n)| *n != 0).collect();
    let mut recount = BTreeMap::new();
    for report in device_report::Entity::find()
        .filter(device_report::Column::RolloutId.eq(rollout_id))
        .all(&app.state.db)
        .await
        .unwrap()
    {
        *recount.entry((report.counted, report.status.to_string())).or_insert(0) += 1;
    }
    (stored, recount)
}

#[tokio::test]
async fn a_storm_of_reports_for_the_same_devices_is_counted_exactly() {
    let app = spawn_app().await;
    let firmware = release(&app, 1).await;
    let r = publish(&app, &firmware, json!({"channel": "stable"})).await;
    let rollout_id = Uuid::parse_str(r["id"].as_str().unwrap()).unwrap();
    let statuses = [
        "downloading",
        "failed",
        "downloaded",
        "installing",
        "failed",
        "downloading",
        "installed",
        "failed",
        "installing",
        "downloaded",
    ];
    for round in 0..TRIALS {
        let calls = (0..4).flat_map(|d| {
            let device = format!("storm-{round}-{d}");
            statuses.map(|status| (device.clone(), status))
        });
        let answers = join_all(calls.map(|(device, status)| {
            app.post(&format!("/v1/firmware/{firmware}/report"))
                .bearer_auth(app.owner_token(&device))
                .json(&json!({"device_id": device, "status": status, "from_version": "1.0.0", "error": (status == "failed").then_some("E_FLASH")}))
                .send()
        }))
        .await;
        for answer in answers {
            let answer = answer.unwrap();
            let status = answer.status().as_u16();
            assert!(
                status == 200 || status == 409,
                "round {round}: {status} {}",
                answer.text().await.unwrap()
            );
        }
        let (stored, recount) = counters_and_recount(&app, rollout_id).await;
        assert!(stored.values().all(|n| *n >= 0), "round {round}: a negative counter: {stored:?}");
        assert_eq!(stored, recount, "round {round}: counters against a recount of device_report");
    }
}

#[tokio::test]
async fn stages_that_round_to_no_basis_point_are_refused_naming_the_stage() {
    let app = spawn_app().await;
    let firmware = release(&app, 1).await;
    let response = app
        .post(&format!("/v1/admin/firmware/{firmware}/publish"))
        .bearer_auth(app.admin_token())
        .json(&json!({"channel": "stable", "stages": [{"percent": 0.001}, {"percent": 100}]}))
        .send()
        .await
        .unwrap();
    let body = assert_error_shape(response, 400, &format!("/v1/admin/firmware/{firmware}/publish")).await;
    let message = body["message"][0].as_str().unwrap();
    assert!(message.starts_with("stages: stage 0:"), "{message}");
    let rows = rollout::Entity::find().all(&app.state.db).await.unwrap();
    assert!(rows.is_empty(), "nothing half-written: {rows:?}");
}

#[tokio::test]
async fn an_unreadable_rollout_is_skipped_and_shown_and_the_others_are_still_evaluated() {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let app = spawn_app().await;
    let broken_release = release(&app, 1).await;
    let broken = publish(
        &app,
        &broken_release,
        json!({"channel": "stable", "stages": [{"percent": 10}, {"percent": 100}]}),
    )
    .await;
    let broken_id = broken["id"].as_str().unwrap().to_owned();
    // What an older version stored for `0.001`: a stage that reads back as 0 percent.
    let row = rollout::Entity::find_by_id(Uuid::parse_str(&broken_id).unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut row = row.into_active_model();
    row.stages = Set(json!([{"percent": 0.0, "min_duration_s": 0}, {"percent": 100.0, "min_duration_s": 0}]));
    row.update(&app.state.db).await.unwrap();

    let failing_release = release(&app, 2).await;
    let failing = publish(
        &app,
        &failing_release,
        json!({"channel": "beta", "min_reports": 6, "max_failure_rate": 0.05, "stages": [{"percent": 100, "min_duration_s": 3600}]}),
    )
    .await;
    for (i, status) in
        ["installed", "installed", "installed", "installed", "installed", "failed"].iter().enumerate()
    {
        let response = app
            .post(&format!("/v1/firmware/{failing_release}/report"))
            .bearer_auth(app.owner_token(&format!("w-{i}")))
            .json(&json!({"device_id": format!("w-{i}"), "status": status, "channel": "beta", "from_version": "1.0.0"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(tick(&app.state, Utc::now() + Duration::seconds(5)).await.unwrap(), 1);
    let failing = view(&app, failing["id"].as_str().unwrap()).await;
    assert_eq!(failing["state"], "halted", "16.7 % failures against 5 %: {failing}");

    let shown = view(&app, &broken_id).await;
    assert_eq!(shown["state"], "active");
    assert!(shown["problem"].as_str().unwrap().contains("cannot be evaluated"), "{shown}");
    let preview = app
        .get(&format!("/v1/admin/rollouts/{broken_id}/preview"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_error_shape(preview, 409, &format!("/v1/admin/rollouts/{broken_id}/preview")).await;
    let (status, body) = control(&app, &broken_id, "advance").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(control(&app, &broken_id, "pause").await.0, 200);
    let (status, body) = control(&app, &broken_id, "abort").await;
    assert_eq!((status, &body["state"]), (200, &json!("aborted")), "{body}");
}

#[tokio::test]
async fn a_delete_racing_a_publish_never_removes_a_published_release() {
    let app = spawn_app().await;
    let token = app.admin_token();
    for trial in 0..TRIALS {
        let id = release(&app, 100 + trial).await;
        let publish = app
            .post(&format!("/v1/admin/firmware/{id}/publish"))
            .bearer_auth(&token)
            .json(&json!({"channel": "stable"}))
            .send();
        let delete =
            app.client.delete(app.url(&format!("/v1/admin/firmware/{id}"))).bearer_auth(&token).send();
        let (published, deleted) = futures_util::join!(publish, delete);
        let (published, deleted) = (published.unwrap().status().as_u16(), deleted.unwrap().status().as_u16());
        let after = app.get(&format!("/v1/admin/firmware/{id}")).bearer_auth(&token).send().await.unwrap();
        let after_status = after.status().as_u16();
        match (published, deleted) {
            // Published first: the delete is refused and the release stays, published.
            (201, 409) => {
                assert_eq!(after_status, 200);
                assert_eq!(after.json::<Value>().await.unwrap()["state"], "published");
            }
            // Deleted first: the publish finds nothing, and nothing is left.
            (404, 204) => assert_eq!(after_status, 404),
            other => {
                panic!("trial {trial}: publish and delete answered {other:?}, release now {after_status}")
            }
        }
    }
}
