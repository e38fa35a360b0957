use crate::helpers::{assert_error_shape, spawn_app};

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
