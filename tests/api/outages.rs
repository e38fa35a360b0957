//! Fast checks of the outage and stalled-client settings; the faults themselves (PostgreSQL
//! stopped, S3 killed, bodies that stall) are in `tests/reliability`.

use std::collections::HashMap;

use nowatch_ota::config::Settings;

use crate::helpers::{assert_error_shape, spawn_app};

fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
    let env: HashMap<String, String> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Settings::load_from(env).map_err(|e| e.to_string())
}

#[test]
fn the_timeouts_default_to_fail_fast_values_and_zero_is_refused_naming_the_key() {
    let settings = load(&[]).unwrap();
    assert_eq!(settings.database.acquire_timeout_s, 2);
    assert_eq!(settings.firmware.upload_idle_timeout_s, 30);
    assert_eq!(settings.firmware.download_idle_timeout_s, 60);
    assert_eq!(settings.server.shutdown_grace_s, 30);
    for (variable, key) in [
        ("NOWATCH_OTA__DATABASE__ACQUIRE_TIMEOUT_S", "database.acquire_timeout_s"),
        ("NOWATCH_OTA__FIRMWARE__UPLOAD_IDLE_TIMEOUT_S", "firmware.upload_idle_timeout_s"),
        ("NOWATCH_OTA__FIRMWARE__DOWNLOAD_IDLE_TIMEOUT_S", "firmware.download_idle_timeout_s"),
    ] {
        let message = load(&[(variable, "0")]).unwrap_err();
        assert!(message.contains(key), "{message}");
    }
    let message = load(&[("NOWATCH_OTA__FIRMWARE__DOWNLOAD_IDLE_TIMEOUT_S", "100000")]).unwrap_err();
    assert!(message.contains("firmware.download_idle_timeout_s"), "{message}");
}

#[tokio::test]
async fn database_unavailable_asks_the_client_to_retry_and_readyz_says_why() {
    let app = spawn_app().await;
    app.state.db.clone().close().await.unwrap();
    let response = app.get("/v1/admin/firmware").bearer_auth(app.admin_token()).send().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "5");
    let body = assert_error_shape(response, 503, "/v1/admin/firmware").await;
    assert_eq!(body["message"], serde_json::json!(["database unavailable"]));

    let response = app.get("/readyz").send().await.unwrap();
    let body = assert_error_shape(response, 503, "/readyz").await;
    assert_eq!(body["message"], serde_json::json!(["database unreachable: connection pool closed"]));
}
