use crate::helpers::{assert_error_shape, spawn_app};

#[tokio::test]
async fn unknown_paths_are_404_in_the_nowatch_shape() {
    let app = spawn_app().await;
    let response = app.get("/v1/nothing-here?x=1").send().await.unwrap();
    let body = assert_error_shape(response, 404, "/v1/nothing-here").await;
    assert_eq!(body["error"], "Not Found");
    assert_eq!(body["message"][0], "Cannot GET /v1/nothing-here");
}

#[tokio::test]
async fn a_wrong_method_is_405_in_the_nowatch_shape() {
    let app = spawn_app().await;
    let response = app.client.delete(app.url("/healthz")).send().await.unwrap();
    let body = assert_error_shape(response, 405, "/healthz").await;
    assert_eq!(body["error"], "Method Not Allowed");
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_an_insane_one_replaced() {
    let app = spawn_app().await;
    let response = app.get("/healthz").header("x-request-id", "abc-123.x").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123.x");

    let response = app.get("/healthz").header("x-request-id", "bad id\twith\"junk").send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(generated, "bad id\twith\"junk");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    let first = app.get("/healthz").send().await.unwrap();
    let second = app.get("/healthz").send().await.unwrap();
    assert_ne!(first.headers()["x-request-id"], second.headers()["x-request-id"]);
}

#[tokio::test]
async fn error_responses_carry_the_request_id_too() {
    let app = spawn_app().await;
    let response = app.get("/nope").header("x-request-id", "trace-me").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me");
    assert_error_shape(response, 404, "/nope").await;
}

#[tokio::test]
async fn a_request_that_needs_a_lost_database_is_503_database_unavailable() {
    let app = spawn_app().await;
    app.state.db.clone().close().await.unwrap();
    let response = app.get("/v1/admin/firmware").bearer_auth(app.admin_token()).send().await.unwrap();
    let body = assert_error_shape(response, 503, "/v1/admin/firmware").await;
    assert_eq!(body["error"], "Service Unavailable");
    assert_eq!(body["message"], serde_json::json!(["database unavailable"]));
}
