//! Relay progress in reports (issue 22, item 3): a phone that relays an update to the watch says
//! how far it got and how many chunks the watch rejected; the rollout view sums them per status;
//! figures a device could not have are refused with a 400 naming the field, and keep nothing.

use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_error_shape, image_bytes, publish, report_as_owner, spawn_app, upload_ok,
};

const HW: &str = "nw-s1";

/// A report from a device that says, as phones do, which version it updates from (a device that
/// does not say is kept apart from the rollout's counts, and from its relay sums).
async fn report(app: &TestApp, firmware: &str, device: &str, mut body: Value) -> reqwest::Response {
    body["from_version"] = json!("0.9.0");
    report_as_owner(app, firmware, device, body).await
}

async fn rollout(app: &TestApp, id: &str) -> Value {
    crate::helpers::admin_get(app, &format!("/v1/admin/rollouts/{id}")).await.json().await.unwrap()
}

fn relay(bytes: u64, rejected: u64) -> Value {
    json!({"via": "phone", "bytes_delivered": bytes, "chunks_rejected": rejected})
}

#[tokio::test]
async fn the_rollout_view_sums_what_phones_say_of_their_relays() {
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &[HW], image_bytes(1, 100_000)).await;
    let id = release["id"].as_str().unwrap();
    let rollout_id = publish(&app, id, json!({"channel": "stable"})).await["id"].as_str().unwrap().to_owned();

    let first = report(&app, id, "w-1", json!({"status": "downloading", "relay": relay(4096, 0)})).await;
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["relay"], relay(4096, 0));
    // The same status with new figures is progress, recorded.
    let more = report(&app, id, "w-1", json!({"status": "downloading", "relay": relay(40_960, 2)})).await;
    assert_eq!(more.json::<Value>().await.unwrap()["relay"], relay(40_960, 2));
    report(&app, id, "w-2", json!({"status": "downloading", "relay": relay(100_000, 1)})).await;
    report(&app, id, "w-2", json!({"status": "installed"})).await;
    // A watch on Wi-Fi: no relay, not summed.
    report(&app, id, "w-3", json!({"status": "downloading"})).await;

    let view = rollout(&app, &rollout_id).await;
    let sums = &view["relay"];
    assert_eq!(sums["devices"], 2, "{view}");
    assert_eq!(sums["bytes_delivered"], 140_960);
    assert_eq!(sums["chunks_rejected"], 3);
    assert_eq!(sums["by_status"]["downloading"], 1);
    assert_eq!(sums["by_status"]["installed"], 1, "the figures stay with the later status");
    assert_eq!(sums["by_status"]["failed"], 0);
}

#[tokio::test]
async fn one_account_cannot_fill_the_relay_sums_past_the_devices_that_count() {
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &[HW], image_bytes(4, 10_000)).await;
    let id = release["id"].as_str().unwrap();
    let rollout_id = publish(&app, id, json!({"channel": "stable"})).await["id"].as_str().unwrap().to_owned();
    let account = crate::helpers::token(json!({"sub": "one-account"}));
    for device in 0..6 {
        let relay = relay(10_000, 9);
        let body = json!({"device_id": format!("w-{device}"), "status": "downloading", "from_version": "0.9.0", "relay": relay});
        let response = app
            .post(&format!("/v1/firmware/{id}/report"))
            .bearer_auth(&account)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let view = rollout(&app, &rollout_id).await;
    // rollout.max_devices_per_owner (3) of its devices count, as in `counts`.
    assert_eq!(view["relay"]["devices"], 3, "{view}");
    assert_eq!(view["relay"]["chunks_rejected"], 27);
    assert_eq!(view["counts"]["downloading"], 3);
}

#[tokio::test]
async fn relay_figures_a_device_could_not_have_are_a_400_naming_the_field() {
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &[HW], image_bytes(2, 50_000)).await;
    let id = release["id"].as_str().unwrap();
    let rollout_id = publish(&app, id, json!({"channel": "stable"})).await["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/firmware/{id}/report");
    let cases = [
        (relay(50_001, 0), "relay.bytes_delivered"),
        (relay(u64::MAX, 0), "relay.bytes_delivered"),
        (relay(10, 1 << 40), "relay.chunks_rejected"),
        (json!({"via": "carrier-pigeon", "bytes_delivered": 1, "chunks_rejected": 0}), "relay"),
        (json!({"via": "phone", "bytes_delivered": -1, "chunks_rejected": 0}), "relay"),
        (json!({"via": "phone", "bytes_delivered": 1}), "relay"),
        (json!({"via": "phone", "bytes_delivered": 1, "chunks_rejected": 0, "extra": 1}), "relay"),
    ];
    for (figures, field) in cases {
        let response = report(&app, id, "w-1", json!({"status": "downloading", "relay": figures})).await;
        let body = assert_error_shape(response, 400, &path).await;
        assert!(body["message"][0].as_str().unwrap().contains(field), "{figures}: {body}");
    }
    let view = rollout(&app, &rollout_id).await;
    assert_eq!(view["relay"]["devices"], 0, "nothing kept: {view}");
    assert_eq!(view["counts"]["downloading"], 0, "nothing kept: {view}");
}

/// Progress reports of many devices at once, several per device (two instances' worth of
/// requests on one database in the PostgreSQL run): every answer is 200, each device's row holds
/// one of the figures it sent, and the rollout's sums equal a recount of the rows.
#[tokio::test]
async fn a_storm_of_progress_reports_sums_to_a_recount_of_the_rows() {
    use nowatch_ota::db::entities::device_report;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &[HW], image_bytes(3, 1_000_000)).await;
    let id = release["id"].as_str().unwrap().to_owned();
    let rollout_id =
        publish(&app, &id, json!({"channel": "stable"})).await["id"].as_str().unwrap().to_owned();
    let sends = (0..16).flat_map(|device| (0..6).map(move |step| (device, step)));
    let storm = sends.map(|(device, step)| {
        let (app, id) = (&app, &id);
        async move {
            let figures = relay(step * 100_000 + device, step % 3);
            let status = if step == 5 && device % 4 == 0 { "downloaded" } else { "downloading" };
            report(app, id, &format!("w-{device}"), json!({"status": status, "relay": figures}))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(storm).await;
    // A `downloading` that lands after its device's `downloaded` goes backwards: 409, as ever.
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    let rows = device_report::Entity::find()
        .filter(device_report::Column::RolloutId.eq(uuid::Uuid::parse_str(&rollout_id).unwrap()))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 16);
    for row in &rows {
        let device: u64 = row.device_id.trim_start_matches("w-").parse().unwrap();
        let bytes = row.relay_bytes_delivered.unwrap() as u64;
        assert_eq!(bytes % 100_000, device, "{row:?}: one of the figures this device sent");
        assert_eq!(
            row.relay_chunks_rejected.unwrap() as u64,
            (bytes / 100_000) % 3,
            "{row:?}: sent together"
        );
    }
    let view = rollout(&app, &rollout_id).await;
    let recount: i64 = rows.iter().map(|r| r.relay_bytes_delivered.unwrap()).sum();
    let rejected: i64 = rows.iter().map(|r| r.relay_chunks_rejected.unwrap()).sum();
    assert_eq!(view["relay"]["devices"], 16);
    assert_eq!(view["relay"]["bytes_delivered"], recount);
    assert_eq!(view["relay"]["chunks_rejected"], rejected);
    let downloaded = rows.iter().filter(|r| r.status.as_str() == "downloaded").count();
    assert_eq!(view["relay"]["by_status"]["downloaded"], downloaded as u64);
}
