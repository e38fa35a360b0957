//! A catalogue of bad input over every endpoint that takes any: each gets its 4xx in the NOWATCH
//! shape, and the database is exactly as it was before.

use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::helpers::{TestApp, image_bytes, publish, spawn_app, upload_ok};

async fn row_counts(app: &TestApp) -> [u64; 7] {
    use nowatch_ota::db::entities::*;
    let db = &app.state.db;
    [
        firmware::Entity::find().count(db).await.unwrap(),
        firmware_hardware::Entity::find().count(db).await.unwrap(),
        rollout::Entity::find().count(db).await.unwrap(),
        rollout_event::Entity::find().count(db).await.unwrap(),
        device_report::Entity::find().count(db).await.unwrap(),
        device::Entity::find().count(db).await.unwrap(),
        hardware_floor::Entity::find().count(db).await.unwrap(),
    ]
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_a_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 1000)).await;
    let id = release["id"].as_str().unwrap().to_owned();
    let rollout = publish(&app, &id, json!({"channel": "stable"})).await;
    let rid = rollout["id"].as_str().unwrap().to_owned();
    let before = row_counts(&app).await;
    let admin = app.admin_token();
    let user = app.user_token();

    let long = "x".repeat(70_000);
    let json_cases: Vec<(&str, String, &str, String, u16)> = vec![
        ("POST", format!("/v1/admin/firmware/{id}/publish"), &admin, "{".into(), 400),
        ("POST", format!("/v1/admin/firmware/{id}/publish"), &admin, "[]".into(), 400),
        ("POST", format!("/v1/admin/firmware/{id}/publish"), &admin, r#""stable""#.into(), 400),
        ("POST", format!("/v1/admin/firmware/{id}/publish"), &admin, r#"{"channel": 5}"#.into(), 400),
        (
            "POST",
            format!("/v1/admin/firmware/{id}/publish"),
            &admin,
            r#"{"channel": "beta", "stages": [{"percent": "ten"}]}"#.into(),
            400,
        ),
        (
            "POST",
            format!("/v1/admin/firmware/{id}/publish"),
            &admin,
            r#"{"channel": "beta", "stages": [{"percent": 1e400}]}"#.into(),
            400,
        ),
        (
            "POST",
            format!("/v1/admin/firmware/{id}/publish"),
            &admin,
            r#"{"channel": "b\u0000eta"}"#.into(),
            400,
        ),
        (
            "POST",
            format!("/v1/admin/firmware/{id}/publish"),
            &admin,
            r#"{"channel": "beta", "min_reports": -1}"#.into(),
            400,
        ),
        (
            "POST",
            format!("/v1/admin/firmware/{id}/revoke"),
            &admin,
            json!({"reason": long.clone()}).to_string(),
            413,
        ),
        (
            "POST",
            format!("/v1/admin/firmware/{id}/revoke"),
            &admin,
            json!({"reason": "x".repeat(5000)}).to_string(),
            400,
        ),
        ("POST", format!("/v1/admin/firmware/{id}/revoke"), &admin, json!({"reason": null}).to_string(), 400),
        ("PATCH", format!("/v1/admin/firmware/{id}"), &admin, json!({"mandatory": "yes"}).to_string(), 400),
        (
            "PATCH",
            format!("/v1/admin/firmware/{id}"),
            &admin,
            json!({"min_from_version": "1.0"}).to_string(),
            400,
        ),
        (
            "PUT",
            "/v1/admin/hardware/nw-s1/floor".into(),
            &admin,
            json!({"min_version": "1.0.0.0"}).to_string(),
            400,
        ),
        (
            "PUT",
            "/v1/admin/hardware/nw-s1/floor".into(),
            &admin,
            json!({"min_version": "1.0.0", "x": 1}).to_string(),
            400,
        ),
        (
            "PUT",
            "/v1/admin/hardware/n%C3%BC-s1/floor".into(),
            &admin,
            json!({"min_version": "1.0.0"}).to_string(),
            400,
        ),
        (
            "PUT",
            "/v1/admin/hardware/..%2F..%2Fetc/floor".into(),
            &admin,
            json!({"min_version": "1.0.0"}).to_string(),
            400,
        ),
        (
            "POST",
            format!("/v1/firmware/{id}/report"),
            &user,
            json!({"device_id": "w\u{0}1", "status": "installed"}).to_string(),
            400,
        ),
        (
            "POST",
            format!("/v1/firmware/{id}/report"),
            &user,
            json!({"device_id": "wätch", "status": "installed"}).to_string(),
            400,
        ),
        (
            "POST",
            format!("/v1/firmware/{id}/report"),
            &user,
            json!({"device_id": "x".repeat(200), "status": "installed"}).to_string(),
            400,
        ),
        (
            "POST",
            format!("/v1/firmware/{id}/report"),
            &user,
            json!({"device_id": "w1", "status": "installed", "from_version": "🙂"}).to_string(),
            400,
        ),
        (
            "POST",
            format!("/v1/firmware/{id}/report"),
            &user,
            json!({"device_id": "w1", "status": "failed", "error": "e".repeat(3000)}).to_string(),
            400,
        ),
        (
            "POST",
            format!("/v1/firmware/{id}/report"),
            &user,
            json!({"device_id": ["w1"], "status": "installed"}).to_string(),
            400,
        ),
        (
            "POST",
            "/v1/firmware/..%2Fadmin/report".into(),
            &user,
            json!({"device_id": "w1", "status": "installed"}).to_string(),
            400,
        ),
        (
            "POST",
            "/v1/firmware/%00/report".into(),
            &user,
            json!({"device_id": "w1", "status": "installed"}).to_string(),
            400,
        ),
        ("POST", format!("/v1/admin/rollouts/{rid}x/pause"), &admin, String::new(), 400),
    ];
    for (method, path, token, body, expected) in &json_cases {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(token)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, *expected, "{method} {path} {}", &body[..body.len().min(80)]);
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["statusCode"], *expected, "{method} {path}: {error}");
        assert!(error["message"][0].is_string());
    }

    // Wrong content type, bodies that are not JSON at all.
    let response = app
        .post(&format!("/v1/admin/firmware/{id}/publish"))
        .bearer_auth(&admin)
        .header("Content-Type", "text/plain")
        .body(r#"{"channel":"beta"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    // Query strings: types, unknown keys, control characters, ranges.
    for query in [
        "hardware=nw-s1&version=1.0.0&device_id=d&device_id=e",
        "hardware=nw-s1&version=%FF&device_id=d",
        "hardware=nw-s1&version=1.0.0&device_id=d%0A",
        "hardware=&version=1.0.0&device_id=d",
    ] {
        let status =
            app.get(&format!("/v1/firmware/check?{query}")).bearer_auth(&user).send().await.unwrap().status();
        assert_eq!(status, 400, "{query}");
    }
    for range in [
        "bytes=abc",
        "bytes=5-1",
        "bytes=0-1,2-3",
        "chunks=0-10",
        "bytes=-",
        "bytes=99999999999999999999999-",
    ] {
        let status = app
            .get(&format!("/v1/firmware/{id}/download"))
            .bearer_auth(&user)
            .header("Range", range)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "an unusable Range is ignored: {range}");
    }
    let status = app
        .get(&format!("/v1/firmware/{id}/download"))
        .bearer_auth(&user)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 416);

    // Multipart: truncated, nested, without a boundary.
    let boundary = "b0undary";
    let truncated = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{{\"version\":\"2.0.0\",\"hardware\":[\"nw-s1\"]}}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc"
    );
    let nested = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n--inner\r\n\r\nx\r\n--inner--\r\n--{boundary}--\r\n"
    );
    for (content_type, body) in [
        (format!("multipart/form-data; boundary={boundary}"), truncated),
        (format!("multipart/form-data; boundary={boundary}"), nested),
        ("multipart/form-data".to_owned(), "garbage".to_owned()),
    ] {
        let response = app
            .post("/v1/admin/firmware")
            .bearer_auth(&admin)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }

    // Huge headers are refused before any handler runs.
    let huge = app.get("/healthz").header("x-padding", "p".repeat(200_000)).send().await;
    assert!(
        huge.map(|r| r.status().is_client_error()).unwrap_or(true),
        "a 200 KB header must not be accepted"
    );

    assert_eq!(row_counts(&app).await, before, "bad input changed the database");
    assert!(crate::helpers::stored_keys(&app, "staging/").await.is_empty());
}
