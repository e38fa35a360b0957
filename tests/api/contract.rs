//! The service answers as its OpenAPI document says (issue 20, item 7): the checks schemathesis
//! found wrong, one by one. The whole contract is checked from outside by tests/contract/run.

use serde_json::{Value, json};

use crate::helpers::{
    assert_error_shape, image_bytes, publish, spawn_app, spawn_app_with, upload, upload_ok,
};

async fn spec(app: &crate::helpers::TestApp) -> Value {
    app.get("/openapi.json").send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_version_that_is_not_semver_is_named_by_its_field_not_the_body() {
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 100)).await;
    let id = release["id"].as_str().unwrap();
    let admin = app.admin_token();
    let cases = [
        (
            "PATCH",
            format!("/v1/admin/firmware/{id}"),
            json!({"min_from_version": "1.x"}),
            "min_from_version: ",
        ),
        ("PUT", "/v1/admin/hardware/nw-s1/floor".to_owned(), json!({"min_version": "one"}), "min_version: "),
        (
            "POST",
            format!("/v1/admin/firmware/{id}/publish"),
            json!({"channel": "stable", "stages": [{"percent": "ten"}]}),
            "stages[0].percent: ",
        ),
        (
            "POST",
            format!("/v1/firmware/{id}/report"),
            json!({"device_id": "w-1", "status": "installed", "from_version": "0.x"}),
            "from_version: ",
        ),
    ];
    for (method, path, body, named) in cases {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let body = assert_error_shape(response, 400, &path).await;
        let message = body["message"][0].as_str().unwrap();
        assert!(message.starts_with(named), "{method} {path}: {message}");
    }
    let response = upload(&app, &json!({"version": "2.x", "hardware": ["nw-s1"]}), image_bytes(2, 10)).await;
    let body = assert_error_shape(response, 400, "/v1/admin/firmware").await;
    assert!(body["message"][0].as_str().unwrap().starts_with("metadata.version: "), "{body}");
}

/// An admin's PATCH of `path` with `body` sent as it is, as JSON.
async fn patch_raw(app: &crate::helpers::TestApp, path: &str, body: &'static str) -> reqwest::Response {
    app.client
        .patch(app.url(path))
        .bearer_auth(app.admin_token())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_json_body_must_be_an_object_not_an_array_of_its_fields() {
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 100)).await;
    let path = format!("/v1/admin/firmware/{}", release["id"].as_str().unwrap());
    // serde reads a struct from an array of its fields in order: this was a 200.
    for body in ["[null, null]", r#"["notes", true]"#] {
        let error = assert_error_shape(patch_raw(&app, &path, body).await, 400, &path).await;
        assert_eq!(error["message"][0], "body: must be a JSON object", "{body}");
    }
}

#[tokio::test]
async fn a_json_body_that_names_a_field_twice_is_refused_not_read_as_its_last_value() {
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 100)).await;
    let path = format!("/v1/admin/firmware/{}", release["id"].as_str().unwrap());
    // Two readers of one body must not disagree about it: with the body read through a
    // `serde_json::Value`, this was a 200 that kept "second".
    let body = r#"{"release_notes": "first", "release_notes": "second"}"#;
    let error = assert_error_shape(patch_raw(&app, &path, body).await, 400, &path).await;
    let message = error["message"][0].as_str().unwrap();
    assert!(message.contains("duplicate field `release_notes`"), "{message}");
    let stored: serde_json::Value =
        app.get(&path).bearer_auth(app.admin_token()).send().await.unwrap().json().await.unwrap();
    assert_eq!(stored["release_notes"], "", "nothing was written");
}

#[tokio::test]
async fn a_method_a_path_does_not_take_is_405_with_the_methods_it_does_take() {
    let app = spawn_app().await;
    let id = uuid::Uuid::new_v4();
    let cases = [
        ("DELETE", "/v1/firmware/check".to_owned(), "GET"),
        ("POST", format!("/v1/firmware/{id}/download"), "GET, HEAD"),
        ("PUT", format!("/v1/admin/firmware/{id}"), "DELETE, GET, PATCH"),
        ("HEAD", "/healthz".to_owned(), "GET"),
    ];
    for (method, path, allow) in cases {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(app.admin_token())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        if method == "HEAD" {
            assert_eq!(response.status(), 405);
        } else {
            assert_error_shape(response, 405, &path).await;
        }
    }
}

#[tokio::test]
async fn the_document_says_which_routes_need_a_token_under_these_settings() {
    for (public, anonymous) in [("false", false), ("true", true)] {
        let app = spawn_app_with(&[("NOWATCH_OTA__AUTH__PUBLIC_DOWNLOADS", public)]).await;
        let spec = spec(&app).await;
        for (path, method) in [
            ("/v1/firmware/keys", "get"),
            ("/v1/firmware/{id}/download", "get"),
            ("/v1/firmware/{id}/download", "head"),
            ("/v1/firmware/root", "get"),
            ("/v1/firmware/root/{version}", "get"),
        ] {
            let security = spec["paths"][path][method]["security"].as_array().unwrap();
            assert_eq!(
                security.contains(&json!({})),
                anonymous,
                "{method} {path} with public_downloads {public}"
            );
            assert!(security.contains(&json!({"bearer": []})), "{method} {path}");
            let response =
                app.get(&path.replace("{id}", &uuid::Uuid::new_v4().to_string()).replace("{version}", "1"));
            let status = response.send().await.unwrap().status();
            assert_eq!(status == 401, !anonymous, "{method} {path} anonymously: {status}");
        }
        let check = &spec["paths"]["/v1/firmware/check"]["get"]["security"];
        assert_eq!(check, &json!([{"bearer": []}]));
    }
}

#[tokio::test]
async fn the_document_lists_the_configured_channels_and_the_shapes_sent() {
    let app = spawn_app_with(&[("NOWATCH_OTA__FIRMWARE__CHANNELS", "stable,beta,nightly")]).await;
    let spec = spec(&app).await;
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["ChannelName"]["enum"], json!(["stable", "beta", "nightly"]));
    // As sent: the stages of a rollout are a list, the upload's parts come metadata first and
    // an image is bytes, not a list of numbers.
    let rollout = &schemas["RolloutView"]["allOf"][1]; // after the RolloutSummary it flattens
    assert_eq!(rollout["properties"]["stages"]["type"], "array", "{}", schemas["RolloutView"]);
    let raw = app.get("/openapi.json").send().await.unwrap().text().await.unwrap();
    let form = &raw[raw.find(r#""UploadForm":"#).unwrap()..];
    let form = &form[form.find(r#""properties":"#).unwrap()..];
    assert!(form.find(r#""metadata":"#).unwrap() < form.find(r#""file":"#).unwrap(), "{form}");
    let download = &spec["paths"]["/v1/firmware/{id}/download"]["get"]["responses"]["200"]["content"];
    assert_eq!(download["application/octet-stream"]["schema"]["$ref"], "#/components/schemas/Image");
    assert_eq!(schemas["Image"]["type"], "string");

    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(3, 100)).await;
    let rollout = publish(
        &app,
        release["id"].as_str().unwrap(),
        json!({"channel": "beta", "stages": [{"percent": 10}, {"percent": 100}]}),
    )
    .await;
    assert!(rollout["stages"].is_array(), "{rollout}");
}
