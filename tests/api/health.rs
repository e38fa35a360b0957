use crate::helpers::{assert_error_shape, spawn_app, spawn_app_with};
use crate::upstream::start_upstream;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_database_and_storage_ready() {
    let app = spawn_app().await;
    let response = app.get("/readyz").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["storage"], "ok");
    assert_eq!(body["status"], "ready");
    assert!(body.get("upstream").is_none(), "no upstream is configured: {body}");
}

async fn readiness_with_upstream(upstream: &str) -> serde_json::Value {
    let app = spawn_app_with(&[("NOWATCH_OTA__PROXY__UPSTREAM", upstream)]).await;
    let response = app.get("/readyz").send().await.unwrap();
    assert_eq!(response.status(), 200, "the upstream is not a condition of readiness");
    response.json().await.unwrap()
}

#[tokio::test]
async fn readyz_stays_200_and_says_whether_the_upstream_answers() {
    let upstream = start_upstream().await;
    let body = readiness_with_upstream(&upstream.url).await;
    assert_eq!(body["upstream"], "ok", "{body}");
    assert_eq!(body["status"], "ready");
    assert!(upstream.requests() >= 1, "the probe reached the upstream");

    let closed = crate::helpers::free_port();
    let body = readiness_with_upstream(&format!("http://127.0.0.1:{closed}")).await;
    assert_eq!(body["upstream"], "unreachable", "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["database"], "ok");

    // A listener that never accepts: the kernel completes the connection, nothing ever answers.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hanging.local_addr().unwrap().port();
    let body = readiness_with_upstream(&format!("http://127.0.0.1:{port}")).await;
    assert_eq!(body["upstream"], "timeout", "{body}");
    assert_eq!(body["status"], "degraded");
}

#[tokio::test]
async fn readyz_is_503_with_the_reason_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.state.db.clone().close().await.unwrap();
    let response = app.get("/readyz").send().await.unwrap();
    let body = assert_error_shape(response, 503, "/readyz").await;
    assert!(body["message"][0].as_str().unwrap().contains("database unreachable"), "{body}");
}

#[tokio::test]
async fn readyz_is_503_when_the_blob_store_is_gone() {
    let app = spawn_app().await;
    if app.state.store.backend_name() == "fs" {
        std::fs::remove_dir_all(app.dir.path().join("blobs")).unwrap();
    } else {
        // Point a second instance at a bucket that does not exist.
        return readyz_is_503_when_the_bucket_is_missing().await;
    }
    let response = app.get("/readyz").send().await.unwrap();
    let body = assert_error_shape(response, 503, "/readyz").await;
    assert!(body["message"][0].as_str().unwrap().contains("blob storage unreachable"), "{body}");
}

async fn readyz_is_503_when_the_bucket_is_missing() {
    let bucket = format!("missing-{}", uuid::Uuid::new_v4().simple());
    let env: Vec<(String, String)> = crate::helpers::s3_env(&bucket).into_iter().collect();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = crate::helpers::spawn_app_with(&pairs).await;
    let response = app.get("/readyz").send().await.unwrap();
    let body = assert_error_shape(response, 503, "/readyz").await;
    assert!(body["message"][0].as_str().unwrap().contains("s3 blob storage unreachable"), "{body}");
}
