//! Staged rollouts: admission by bucket, manual control, automatic advance and halt with a test
//! clock, the preview, and the tamper-evident event chain.

use chrono::{Duration, Utc};
use nowatch_ota::services::rollout_engine::tick;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error_shape, image_bytes, publish, spawn_app, upload_ok};

async fn offered_to(app: &TestApp, device: &str, version: &str) -> Option<String> {
    crate::helpers::offered_version(app, &format!("hardware=nw-s1&version={version}&device_id={device}"))
        .await
}

async fn admitted(app: &TestApp, devices: &[String]) -> Vec<bool> {
    let mut out = Vec::new();
    for d in devices {
        out.push(offered_to(app, d, "1.0.0").await.as_deref() == Some("2.0.0"));
    }
    out
}

async fn staged(app: &TestApp, stages: Value, extra: Value) -> (String, Value) {
    let release = upload_ok(app, "2.0.0", &["nw-s1"], image_bytes(2, 3000)).await;
    let id = release["id"].as_str().unwrap().to_owned();
    let mut body = json!({"channel": "stable", "stages": stages});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    (id.clone(), publish(app, &id, body).await)
}

async fn control(app: &TestApp, rollout: &Value, action: &str) -> reqwest::Response {
    app.post(&format!("/v1/admin/rollouts/{}/{action}", rollout["id"].as_str().unwrap()))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
}

async fn rollout(app: &TestApp, rollout: &Value) -> Value {
    app.get(&format!("/v1/admin/rollouts/{}", rollout["id"].as_str().unwrap()))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn report(app: &TestApp, firmware: &str, device: &str, status: &str) {
    let response = app
        .post(&format!("/v1/firmware/{firmware}/report"))
        .bearer_auth(app.owner_token(device))
        .json(&json!({"device_id": device, "status": status, "channel": "stable", "from_version": "1.0.0", "error": (status == "failed").then_some("E_BOOT")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

fn devices(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("watch-{i:05}")).collect()
}

#[tokio::test]
async fn a_stage_admits_about_its_percent_and_raising_it_keeps_everyone_in() {
    let app = spawn_app().await;
    let (_, r) = staged(&app, json!([{"percent": 20, "min_duration_s": 3600}, {"percent": 60, "min_duration_s": 3600}, {"percent": 100}]), json!({})).await;
    assert_eq!(r["percent"], 20.0);
    let fleet = devices(400);
    let at_20 = admitted(&app, &fleet).await;
    let share = at_20.iter().filter(|x| **x).count();
    assert!((50..=110).contains(&share), "{share} of 400 admitted at 20%");

    assert_eq!(control(&app, &r, "advance").await.status(), 200);
    let at_60 = admitted(&app, &fleet).await;
    assert!(
        at_20.iter().zip(&at_60).all(|(before, after)| !before || *after),
        "a device in at 20% is in at 60%"
    );
    let share = at_60.iter().filter(|x| **x).count();
    assert!((200..=280).contains(&share), "{share} of 400 admitted at 60%");
}

#[tokio::test]
async fn stages_advance_and_complete_by_themselves_when_their_time_has_passed() {
    let app = spawn_app().await;
    let (_, r) = staged(&app, json!([{"percent": 10, "min_duration_s": 3600}, {"percent": 50, "min_duration_s": 600}, {"percent": 100, "min_duration_s": 60}]), json!({})).await;
    let start = Utc::now();
    assert_eq!(tick(&app.state, start + Duration::seconds(3500)).await.unwrap(), 0);
    assert_eq!(tick(&app.state, start + Duration::seconds(3601)).await.unwrap(), 1);
    let now = rollout(&app, &r).await;
    assert_eq!(
        (now["stage"].as_i64(), now["percent"].as_f64(), now["state"].as_str()),
        (Some(1), Some(50.0), Some("active"))
    );
    // The stage clock restarts at the advance, on the evaluation's clock.
    assert_eq!(tick(&app.state, start + Duration::seconds(3601 + 599)).await.unwrap(), 0);
    assert_eq!(tick(&app.state, start + Duration::seconds(3601 + 600)).await.unwrap(), 1);
    assert_eq!(rollout(&app, &r).await["percent"], 100.0);
    assert_eq!(offered_to(&app, "anyone-at-all", "1.0.0").await.as_deref(), Some("2.0.0"));
    assert_eq!(tick(&app.state, start + Duration::seconds(4201 + 60)).await.unwrap(), 1);
    let done = rollout(&app, &r).await;
    assert_eq!(done["state"], "completed");
    let kinds: Vec<&str> =
        done["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "advanced", "advanced", "completed"]);
    assert!(done["events"].as_array().unwrap()[1..].iter().all(|e| e["actor"] == "system"));
    assert_eq!(done["chain_valid"], true);
    assert_eq!(
        tick(&app.state, Utc::now() + Duration::days(30)).await.unwrap(),
        0,
        "completed rollouts rest"
    );
}

#[tokio::test]
async fn a_failing_rollout_halts_by_itself_and_devices_fall_back_to_the_previous_release() {
    let app = spawn_app().await;
    let old = upload_ok(&app, "1.5.0", &["nw-s1"], image_bytes(1, 3000)).await;
    publish(&app, old["id"].as_str().unwrap(), json!({"channel": "stable"})).await;
    assert_eq!(tick(&app.state, Utc::now()).await.unwrap(), 1, "the old release's rollout completes");
    let (firmware, r) = staged(
        &app,
        json!([{"percent": 100, "min_duration_s": 86400}]),
        json!({"max_failure_rate": 0.25, "min_reports": 8}),
    )
    .await;
    assert_eq!(offered_to(&app, "watch-a", "1.0.0").await.as_deref(), Some("2.0.0"));

    for i in 0..5 {
        report(&app, &firmware, &format!("ok-{i}"), "installed").await;
    }
    for i in 0..2 {
        report(&app, &firmware, &format!("bad-{i}"), "failed").await;
    }
    assert_eq!(tick(&app.state, Utc::now()).await.unwrap(), 0, "2/7 failed, but fewer than 8 outcomes");
    report(&app, &firmware, "bad-2", "failed").await;
    assert_eq!(tick(&app.state, Utc::now()).await.unwrap(), 1, "3/8 = 37.5% > 25%");

    let halted = rollout(&app, &r).await;
    assert_eq!(halted["state"], "halted");
    assert_eq!(halted["failure_rate"], 0.375);
    let event = halted["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(event["kind"], "halted");
    assert_eq!(event["actor"], "system");
    assert_eq!(
        (event["detail"]["installed"].as_u64(), event["detail"]["failed"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(event["detail"]["failure_rate_ppm"], 375_000);
    assert_eq!(event["detail"]["max_failure_rate_ppm"], 250_000);

    assert_eq!(offered_to(&app, "watch-a", "1.0.0").await.as_deref(), Some("1.5.0"), "falls back at once");
    let download = app
        .get(&format!("/v1/firmware/{firmware}/download"))
        .bearer_auth(app.user_token())
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200, "a download already under way may finish");

    // An admin who judged the failures unrelated resumes it; that is recorded with the actor.
    let resumed: Value = control(&app, &r, "resume").await.json().await.unwrap();
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["events"].as_array().unwrap().last().unwrap()["actor"], "release-bot");
    assert_eq!(offered_to(&app, "watch-a", "1.0.0").await.as_deref(), Some("2.0.0"));
}

/// POSTs a report and returns the status code, without asserting it.
async fn report_status(app: &TestApp, firmware: &str, device: &str, status: &str) -> u16 {
    app.post(&format!("/v1/firmware/{firmware}/report"))
        .bearer_auth(app.owner_token(device))
        .json(&json!({"device_id": device, "status": status, "channel": "stable", "from_version": "1.0.0", "error": (status == "failed").then_some("E_BOOT")}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn counts_of(view: &Value) -> [u64; 5] {
    ["downloading", "downloaded", "installing", "installed", "failed"]
        .map(|s| view["counts"][s].as_u64().unwrap_or_else(|| panic!("no count for {s}: {view}")))
}

#[tokio::test]
async fn the_counts_follow_each_device_through_its_statuses_once() {
    let app = spawn_app().await;
    let (firmware, r) = staged(&app, json!([{"percent": 100}]), json!({})).await;
    assert_eq!(counts_of(&rollout(&app, &r).await), [0, 0, 0, 0, 0]);

    // [downloading, downloaded, installing, installed, failed] after each report.
    let steps = [
        ("a", "downloading", 200, [1, 0, 0, 0, 0]),
        ("b", "downloading", 200, [2, 0, 0, 0, 0]),
        ("a", "downloading", 200, [2, 0, 0, 0, 0]), // the same status again counts once
        ("a", "installing", 200, [1, 0, 1, 0, 0]),
        ("a", "downloaded", 409, [1, 0, 1, 0, 0]), // backwards is refused and changes nothing
        ("a", "failed", 200, [1, 0, 0, 0, 1]),
        ("a", "downloading", 200, [2, 0, 0, 0, 0]), // a failed device starts again
        ("b", "installed", 200, [1, 0, 0, 1, 0]),
        ("b", "failed", 409, [1, 0, 0, 1, 0]),
        ("a", "installed", 200, [0, 0, 0, 2, 0]),
        ("c", "failed", 200, [0, 0, 0, 2, 1]),
    ];
    for (device, status, code, expected) in steps {
        assert_eq!(report_status(&app, &firmware, device, status).await, code, "{device} {status}");
        let view = rollout(&app, &r).await;
        assert_eq!(counts_of(&view), expected, "after {device} {status}");
    }
    assert_eq!(rollout(&app, &r).await["failure_rate"].as_f64(), Some(1.0 / 3.0));
}

#[tokio::test]
async fn manual_controls_follow_the_state_machine_and_the_check_honours_every_state() {
    let app = spawn_app().await;
    let (_, r) =
        staged(&app, json!([{"percent": 50, "min_duration_s": 60}, {"percent": 100}]), json!({})).await;
    let fleet = devices(60);
    let before = admitted(&app, &fleet).await;
    assert!(before.iter().any(|x| *x) && !before.iter().all(|x| *x));

    let paused: Value = control(&app, &r, "pause").await.json().await.unwrap();
    assert_eq!(paused["state"], "paused");
    assert_eq!(admitted(&app, &fleet).await, before, "pausing keeps the current devices in");
    assert_eq!(
        tick(&app.state, Utc::now() + Duration::hours(1)).await.unwrap(),
        0,
        "paused rollouts do not ramp"
    );
    let path = format!("/v1/admin/rollouts/{}/pause", r["id"].as_str().unwrap());
    assert_error_shape(control(&app, &r, "pause").await, 409, &path).await;

    assert_eq!(control(&app, &r, "resume").await.status(), 200);
    assert_eq!(control(&app, &r, "advance").await.status(), 200);
    assert!(admitted(&app, &fleet).await.iter().all(|x| *x), "100% admits everyone");

    let aborted: Value = control(&app, &r, "abort").await.json().await.unwrap();
    assert_eq!(aborted["state"], "aborted");
    assert!(admitted(&app, &fleet).await.iter().all(|x| !*x), "aborted offers it to no one");
    for action in ["resume", "pause", "advance", "abort"] {
        assert_eq!(control(&app, &r, action).await.status(), 409, "{action} after abort");
    }
    let events: Vec<String> = aborted["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["created", "paused", "resumed", "advanced", "aborted"]);
    assert_eq!(aborted["chain_valid"], true);

    let listed: Value = app
        .get("/v1/admin/rollouts?state=aborted")
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], r["id"]);
    let none: Value = app
        .get("/v1/admin/rollouts?state=active")
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["total"], 0);
    assert_error_shape(
        app.get("/v1/admin/rollouts?state=gone").bearer_auth(app.admin_token()).send().await.unwrap(),
        400,
        "/v1/admin/rollouts",
    )
    .await;
}

#[tokio::test]
async fn a_completed_rollout_is_final_and_stays_offered() {
    let app = spawn_app().await;
    let (_, r) = staged(&app, json!([{"percent": 50}, {"percent": 100}]), json!({})).await;
    assert_eq!(control(&app, &r, "advance").await.status(), 200);
    let completed: Value = control(&app, &r, "advance").await.json().await.unwrap();
    assert_eq!(completed["state"], "completed");
    for action in ["advance", "pause", "resume", "abort"] {
        let path = format!("/v1/admin/rollouts/{}/{action}", r["id"].as_str().unwrap());
        let body = assert_error_shape(control(&app, &r, action).await, 409, &path).await;
        assert!(body["message"][0].as_str().unwrap().contains("completed"), "{body}");
    }
    assert!(admitted(&app, &devices(50)).await.iter().all(|x| *x), "revoke, not abort, withdraws it");
}

#[tokio::test]
async fn the_preview_counts_known_devices_per_stage() {
    let app = spawn_app().await;
    let old = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 3000)).await;
    let old_id = old["id"].as_str().unwrap();
    publish(&app, old_id, json!({"channel": "stable"})).await;
    for device in devices(200) {
        report(&app, old_id, &device, "installed").await;
    }
    let (_, r) = staged(&app, json!([{"percent": 10, "min_duration_s": 60}, {"percent": 50, "min_duration_s": 60}, {"percent": 100}]), json!({})).await;
    let preview: Value = app
        .get(&format!("/v1/admin/rollouts/{}/preview", r["id"].as_str().unwrap()))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preview["known_devices"], 200);
    let counts: Vec<u64> =
        preview["stages"].as_array().unwrap().iter().map(|s| s["devices"].as_u64().unwrap()).collect();
    assert_eq!(counts[2], 200);
    assert!(
        counts[0] <= counts[1] && (5..=40).contains(&counts[0]) && (70..=130).contains(&counts[1]),
        "{counts:?}"
    );
    // The preview is exactly what the check does at stage 0.
    let live = admitted(&app, &devices(200)).await.iter().filter(|x| **x).count() as u64;
    assert_eq!(live, counts[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_read_while_events_are_appended_always_shows_a_sound_chain() {
    let app = std::sync::Arc::new(spawn_app().await);
    let (_, r) =
        staged(&app, json!([{"percent": 10, "min_duration_s": 60}, {"percent": 100}]), json!({})).await;
    // Pauses and resumes append events while the rollout is read: each read must see the row and
    // the events from the same moment (before the fix about 1 read in 3 could see a new event
    // without the row's anchor for it, and call the chain broken).
    let writer = {
        let (app, r) = (app.clone(), r.clone());
        tokio::spawn(async move {
            for _ in 0..40 {
                assert_eq!(control(&app, &r, "pause").await.status(), 200);
                assert_eq!(control(&app, &r, "resume").await.status(), 200);
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let view = rollout(&app, &r).await;
        assert_eq!(view["chain_valid"], true, "read {reads}: {view}");
        reads += 1;
    }
    writer.await.unwrap();
    let view = rollout(&app, &r).await;
    assert_eq!(view["chain_valid"], true);
    assert_eq!(view["events"].as_array().unwrap().len(), 81);
    assert!(reads > 0);
}

#[tokio::test]
async fn the_event_chain_detects_edited_and_deleted_events() {
    use nowatch_ota::db::entities::rollout_event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
    let app = spawn_app().await;
    let (_, r) =
        staged(&app, json!([{"percent": 10, "min_duration_s": 60}, {"percent": 100}]), json!({})).await;
    for action in ["pause", "resume", "advance"] {
        assert_eq!(control(&app, &r, action).await.status(), 200);
    }
    assert_eq!(rollout(&app, &r).await["chain_valid"], true);
    let rollout_id = uuid::Uuid::parse_str(r["id"].as_str().unwrap()).unwrap();
    let events = rollout_event::Entity::find()
        .filter(rollout_event::Column::RolloutId.eq(rollout_id))
        .order_by_asc(rollout_event::Column::Seq)
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(events.len(), 4);

    // Edit one event's actor: detected.
    let mut edited: rollout_event::ActiveModel = events[1].clone().into();
    edited.actor = Set("someone-else".into());
    rollout_event::Entity::update(edited).exec(&app.state.db).await.unwrap();
    assert_eq!(rollout(&app, &r).await["chain_valid"], false);
    let mut restored: rollout_event::ActiveModel = events[1].clone().into();
    restored.actor = Set(events[1].actor.clone());
    rollout_event::Entity::update(restored).exec(&app.state.db).await.unwrap();
    assert_eq!(rollout(&app, &r).await["chain_valid"], true);

    // Delete the newest event: detected through the anchor in the rollout row.
    rollout_event::Entity::delete_by_id(events[3].id).exec(&app.state.db).await.unwrap();
    assert_eq!(rollout(&app, &r).await["chain_valid"], false);
    let chain = nowatch_ota::db::rollout_events::list(&app.state.db, rollout_id).await.unwrap();
    let row = nowatch_ota::db::entities::rollout::Entity::find_by_id(rollout_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        nowatch_ota::db::rollout_events::verify_chain(&chain, &row),
        Err(nowatch_ota::db::rollout_events::ChainError::Truncated)
    );
    // Delete one in the middle: detected as a gap.
    rollout_event::Entity::delete_by_id(events[1].id).exec(&app.state.db).await.unwrap();
    let chain = nowatch_ota::db::rollout_events::list(&app.state.db, rollout_id).await.unwrap();
    assert_eq!(
        nowatch_ota::db::rollout_events::verify_chain(&chain, &row),
        Err(nowatch_ota::db::rollout_events::ChainError::Gap(2))
    );
}

#[tokio::test]
async fn ticks_of_two_instances_at_once_move_a_rollout_once() {
    let app = spawn_app().await;
    let (_, r) = staged(
        &app,
        json!([{"percent": 10, "min_duration_s": 1}, {"percent": 100, "min_duration_s": 60}]),
        json!({}),
    )
    .await;
    let later = Utc::now() + Duration::seconds(5);
    let (a, b) = tokio::join!(tick(&app.state, later), tick(&app.state, later));
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let view = rollout(&app, &r).await;
    assert_eq!(view["stage"], 1);
    let kinds: Vec<&str> =
        view["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "advanced"]);
}

/// Reverts `name` and every migration after it: the schema an older version ran.
async fn migrate_down_to_before(app: &TestApp, name: &str) {
    use migration::MigratorTrait;
    let names: Vec<String> = migration::Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    let at = names.iter().position(|n| n == name).expect("a migration of that name");
    let steps = u32::try_from(names.len() - at).unwrap();
    migration::Migrator::down(&app.state.db, Some(steps)).await.unwrap();
}

#[tokio::test]
async fn the_migration_that_adds_the_counts_fills_them_from_the_reports_already_there() {
    use migration::MigratorTrait;
    let app = spawn_app().await;
    let (firmware, r) = staged(&app, json!([{"percent": 100}]), json!({})).await;
    for (device, status) in [("a", "installed"), ("b", "installed"), ("c", "failed"), ("d", "downloading")] {
        report(&app, &firmware, device, status).await;
    }
    let before = counts_of(&rollout(&app, &r).await);
    assert_eq!(before, [1, 0, 0, 2, 1]);

    // Back to the schema before the counts existed, then forward again.
    migrate_down_to_before(&app, "m20261124_000003_create_rollout_report_count").await;
    migration::Migrator::up(&app.state.db, None).await.unwrap();
    assert_eq!(counts_of(&rollout(&app, &r).await), before);
}

#[tokio::test]
async fn the_migration_to_one_live_rollout_per_channel_aborts_duplicates_and_recounts() {
    use migration::MigratorTrait;
    use nowatch_ota::db::entities::{rollout as rollout_row, rollout_report_count};
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};
    let app = spawn_app().await;
    let (firmware, r) = staged(&app, json!([{"percent": 100}]), json!({})).await;
    for (device, status) in [("a", "installed"), ("b", "failed")] {
        report(&app, &firmware, device, status).await;
    }
    // Back to the schema an older version ran, and what its races could leave there: a second
    // live rollout on the channel and counters that went wrong.
    migrate_down_to_before(&app, "m20261201_000004_one_live_rollout_per_channel").await;
    let original = uuid::Uuid::parse_str(r["id"].as_str().unwrap()).unwrap();
    let mut twin = rollout_row::Entity::find_by_id(original).one(&app.state.db).await.unwrap().unwrap();
    twin.id = uuid::Uuid::new_v4();
    twin.created_at += Duration::milliseconds(5);
    twin.event_count = 0;
    twin.chain_head = String::new();
    rollout_row::ActiveModel::from(twin.clone()).insert(&app.state.db).await.unwrap();
    nowatch_ota::db::rollout_events::append(
        &app.state.db,
        twin.id,
        "release-bot",
        nowatch_ota::domain::rollout::EventKind::Created,
        json!({}),
        Utc::now(),
    )
    .await
    .unwrap();
    rollout_report_count::Entity::update_many()
        .col_expr(rollout_report_count::Column::Devices, sea_orm::sea_query::Expr::value(-3))
        .filter(rollout_report_count::Column::RolloutId.eq(original))
        .exec(&app.state.db)
        .await
        .unwrap();

    migration::Migrator::up(&app.state.db, None).await.unwrap();
    let kept = rollout(&app, &r).await;
    assert_eq!(kept["state"], "active");
    assert_eq!(counts_of(&kept), [0, 0, 0, 1, 1], "recounted from the reports");
    let twin = rollout(&app, &json!({"id": twin.id.to_string()})).await;
    assert_eq!(twin["state"], "aborted");
    assert_eq!(twin["chain_valid"], true, "{twin}");
    let last = twin["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((&last["kind"], &last["actor"]), (&json!("aborted"), &json!("migration")));
    assert!(last["detail"]["reason"].as_str().unwrap().contains(r["id"].as_str().unwrap()), "{last}");

    // From now on the database itself refuses a second live rollout on the channel.
    let mut third = rollout_row::Entity::find_by_id(original).one(&app.state.db).await.unwrap().unwrap();
    third.id = uuid::Uuid::new_v4();
    let refused = rollout_row::ActiveModel::from(third).insert(&app.state.db).await;
    assert!(refused.is_err(), "the partial unique index holds");
}
