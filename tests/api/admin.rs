use serde_json::{Value, json};

use crate::helpers::{assert_error_shape, image_bytes, publish, spawn_app, upload_ok};

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_list_filters_by_hardware_and_state_and_paginates_newest_first() {
    let app = spawn_app().await;
    let a = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 1000)).await;
    let b = upload_ok(&app, "1.1.0", &["nw-s1", "nw-s2"], image_bytes(2, 1000)).await;
    let c = upload_ok(&app, "2.0.0", &["nw-s2"], image_bytes(3, 1000)).await;
    publish(&app, a["id"].as_str().unwrap(), json!({"channel": "stable"})).await;
    let token = app.admin_token();

    let all = json_of(app.get("/v1/admin/firmware").bearer_auth(&token).send().await.unwrap(), 200).await;
    assert_eq!(all["total"], 3);
    assert_eq!(all["page"], 1);
    let ids: Vec<&Value> = all["items"].as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&c["id"], &b["id"], &a["id"]]);

    let s2 =
        json_of(app.get("/v1/admin/firmware?hardware=nw-s2").bearer_auth(&token).send().await.unwrap(), 200)
            .await;
    assert_eq!(s2["total"], 2);
    let published =
        json_of(app.get("/v1/admin/firmware?state=published").bearer_auth(&token).send().await.unwrap(), 200)
            .await;
    assert_eq!(published["total"], 1);
    assert_eq!(published["items"][0]["channels"], json!(["stable"]));
    let page2 = json_of(
        app.get("/v1/admin/firmware?per_page=2&page=2").bearer_auth(&token).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["total"], 3);
    assert_eq!(page2["items"][0]["id"], a["id"]);

    for (query, field) in [
        ("state=live", "state"),
        ("per_page=0", "per_page"),
        ("page=0", "page"),
        ("hardware=a%20b", "hardware"),
        ("colour=red", "query"),
    ] {
        let response =
            app.get(&format!("/v1/admin/firmware?{query}")).bearer_auth(&token).send().await.unwrap();
        let body = assert_error_shape(response, 400, "/v1/admin/firmware").await;
        assert!(body["message"][0].as_str().unwrap().starts_with(field), "{query}: {body}");
    }
}

#[tokio::test]
async fn get_patch_and_delete_a_draft() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let release = upload_ok(&app, "1.2.0", &["nw-s1"], image_bytes(1, 1000)).await;
    let path = format!("/v1/admin/firmware/{}", release["id"].as_str().unwrap());
    assert_eq!(
        json_of(app.get(&path).bearer_auth(&token).send().await.unwrap(), 200).await["version"],
        "1.2.0"
    );

    let patched = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&token)
        .json(&json!({"release_notes": "Fixes", "mandatory": true, "min_from_version": "1.0.0"}))
        .send()
        .await
        .unwrap();
    let patched = json_of(patched, 200).await;
    assert_eq!(
        (
            patched["release_notes"].as_str(),
            patched["mandatory"].as_bool(),
            patched["min_from_version"].as_str()
        ),
        (Some("Fixes"), Some(true), Some("1.0.0"))
    );
    let cleared = json_of(
        app.client
            .patch(app.url(&path))
            .bearer_auth(&token)
            .json(&json!({"min_from_version": null}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(cleared["min_from_version"], Value::Null);
    assert_eq!(cleared["release_notes"], "Fixes", "fields not sent are kept");

    for (body, field) in
        [(json!({"min_from_version": "1.2.0"}), "min_from_version"), (json!({"version": "2.0.0"}), "version")]
    {
        let response = app.client.patch(app.url(&path)).bearer_auth(&token).json(&body).send().await.unwrap();
        let error = assert_error_shape(response, 400, &path).await;
        assert!(error["message"][0].as_str().unwrap().starts_with(field), "{error}");
    }

    assert_eq!(app.client.delete(app.url(&path)).bearer_auth(&token).send().await.unwrap().status(), 204);
    assert_error_shape(app.get(&path).bearer_auth(&token).send().await.unwrap(), 404, &path).await;
    assert_error_shape(
        app.get("/v1/admin/firmware/not-a-uuid").bearer_auth(&token).send().await.unwrap(),
        400,
        "/v1/admin/firmware/not-a-uuid",
    )
    .await;
}

#[tokio::test]
async fn the_sweep_removes_images_of_deleted_drafts_but_keeps_images_in_use() {
    let app = spawn_app().await;
    let kept = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 1000)).await;
    let gone = upload_ok(&app, "1.1.0", &["nw-s1"], image_bytes(2, 1000)).await;
    let path = format!("/v1/admin/firmware/{}", gone["id"].as_str().unwrap());
    assert_eq!(
        app.client.delete(app.url(&path)).bearer_auth(app.admin_token()).send().await.unwrap().status(),
        204
    );
    assert_eq!(
        crate::helpers::stored_keys(&app, "firmware/").await.len(),
        2,
        "the image waits for the sweep"
    );

    let report = nowatch_ota::services::sweep::run(&app.state, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(report.orphans, 1);
    assert_eq!(
        crate::helpers::stored_keys(&app, "firmware/").await,
        [format!("firmware/{}", kept["sha256"].as_str().unwrap())]
    );
}

#[tokio::test]
async fn publishing_creates_a_rollout_with_a_valid_event_chain_and_published_releases_cannot_be_deleted() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 1000)).await;
    let id = release["id"].as_str().unwrap();
    let rollout = publish(&app, id, json!({"channel": "beta"})).await;
    assert_eq!(rollout["firmware_id"], id);
    assert_eq!(rollout["channel"], "beta");
    assert_eq!(rollout["state"], "active");
    assert_eq!(rollout["percent"], 100.0);
    assert_eq!(rollout["salt"].as_str().unwrap().len(), 32);
    assert_eq!(rollout["chain_valid"], true);
    assert_eq!(rollout["events"][0]["kind"], "created");
    assert_eq!(rollout["events"][0]["actor"], "release-bot");
    assert_eq!(rollout["counts"]["installed"], 0);

    let fetched = json_of(
        app.get(&format!("/v1/admin/rollouts/{}", rollout["id"].as_str().unwrap()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(fetched["id"], rollout["id"]);
    let view =
        json_of(app.get(&format!("/v1/admin/firmware/{id}")).bearer_auth(&token).send().await.unwrap(), 200)
            .await;
    assert_eq!(view["state"], "published");
    assert!(view["published_at"].is_string());

    let publish_path = format!("/v1/admin/firmware/{id}/publish");
    let twice =
        app.post(&publish_path).bearer_auth(&token).json(&json!({"channel": "beta"})).send().await.unwrap();
    assert_error_shape(twice, 409, &publish_path).await;
    for (body, field) in [
        (json!({"channel": "nightly"}), "channel"),
        (json!({"channel": "Beta!"}), "channel"),
        (json!({"channel": "stable", "stages": [{"percent": 50, "min_duration_s": 0}]}), "stages"),
        (json!({"channel": "stable", "max_failure_rate": 2}), "max_failure_rate"),
        (json!({}), "body"),
    ] {
        let response = app.post(&publish_path).bearer_auth(&token).json(&body).send().await.unwrap();
        let error = assert_error_shape(response, 400, &publish_path).await;
        assert!(error["message"][0].as_str().unwrap().starts_with(field), "{body}: {error}");
    }
    let staged = publish(
        &app,
        id,
        json!({"channel": "stable", "stages": [{"percent": 5, "min_duration_s": 3600}, {"percent": 100}]}),
    )
    .await;
    assert_eq!(staged["percent"], 5.0);

    let path = format!("/v1/admin/firmware/{id}");
    assert_error_shape(
        app.client.delete(app.url(&path)).bearer_auth(&token).send().await.unwrap(),
        409,
        &path,
    )
    .await;
}

#[tokio::test]
async fn revoking_aborts_the_rollouts_and_blocks_publishing_and_editing() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 1000)).await;
    let id = release["id"].as_str().unwrap();
    let rollout = publish(&app, id, json!({"channel": "stable"})).await;
    let revoke_path = format!("/v1/admin/firmware/{id}/revoke");

    let empty =
        app.post(&revoke_path).bearer_auth(&token).json(&json!({"reason": " "})).send().await.unwrap();
    assert_error_shape(empty, 400, &revoke_path).await;
    let revoked = json_of(
        app.post(&revoke_path)
            .bearer_auth(&token)
            .json(&json!({"reason": "bricks rev2 boards"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(revoked["revoke_reason"], "bricks rev2 boards");
    assert_eq!(revoked["revoked_by"], "release-bot");

    let rollout = json_of(
        app.get(&format!("/v1/admin/rollouts/{}", rollout["id"].as_str().unwrap()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(rollout["state"], "aborted");
    assert_eq!(rollout["events"][1]["kind"], "aborted");
    assert_eq!(rollout["chain_valid"], true);

    assert_error_shape(
        app.post(&revoke_path).bearer_auth(&token).json(&json!({"reason": "again"})).send().await.unwrap(),
        409,
        &revoke_path,
    )
    .await;
    let publish_path = format!("/v1/admin/firmware/{id}/publish");
    assert_error_shape(
        app.post(&publish_path).bearer_auth(&token).json(&json!({"channel": "beta"})).send().await.unwrap(),
        409,
        &publish_path,
    )
    .await;
    let path = format!("/v1/admin/firmware/{id}");
    assert_error_shape(
        app.client
            .patch(app.url(&path))
            .bearer_auth(&token)
            .json(&json!({"mandatory": true}))
            .send()
            .await
            .unwrap(),
        409,
        &path,
    )
    .await;
}

#[tokio::test]
async fn hardware_floors_are_read_and_set_by_admins() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let path = "/v1/admin/hardware/nw-s1/floor";
    let none = json_of(app.get(path).bearer_auth(&token).send().await.unwrap(), 200).await;
    assert_eq!(
        none,
        json!({"hardware": "nw-s1", "min_version": null, "updated_by": null, "updated_at": null})
    );
    let set = json_of(
        app.client
            .put(app.url(path))
            .bearer_auth(&token)
            .json(&json!({"min_version": "v1.4.0"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        (set["hardware"].as_str(), set["min_version"].as_str(), set["updated_by"].as_str()),
        (Some("nw-s1"), Some("1.4.0"), Some("release-bot"))
    );
    let raised = json_of(
        app.client
            .put(app.url(path))
            .bearer_auth(&token)
            .json(&json!({"min_version": "1.5.0"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(raised["min_version"], "1.5.0");
    assert_eq!(
        json_of(app.get(path).bearer_auth(&token).send().await.unwrap(), 200).await["min_version"],
        "1.5.0"
    );

    let bad = app
        .client
        .put(app.url(path))
        .bearer_auth(&token)
        .json(&json!({"min_version": "1.5"}))
        .send()
        .await
        .unwrap();
    assert_error_shape(bad, 400, path).await;
    let bad_hw = "/v1/admin/hardware/bad%20hw/floor";
    let response = app.get(bad_hw).bearer_auth(&token).send().await.unwrap();
    let error = assert_error_shape(response, 400, "/v1/admin/hardware/bad%20hw/floor").await;
    assert!(error["message"][0].as_str().unwrap().starts_with("hardware"), "{error}");
    assert_error_shape(app.get(path).bearer_auth(app.user_token()).send().await.unwrap(), 403, path).await;
}

#[tokio::test]
async fn a_release_whose_image_is_missing_from_storage_is_not_published() {
    use nowatch_ota::domain::Sha256Digest;
    use nowatch_ota::storage::ObjectKey;
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 1000)).await;
    let id = release["id"].as_str().unwrap();
    let digest = Sha256Digest::parse(release["sha256"].as_str().unwrap()).unwrap();
    app.state.store.delete(&ObjectKey::Firmware(digest)).await.unwrap();
    let response = app
        .post(&format!("/v1/admin/firmware/{id}/publish"))
        .bearer_auth(app.admin_token())
        .json(&json!({"channel": "stable"}))
        .send()
        .await
        .unwrap();
    let body = assert_error_shape(response, 409, &format!("/v1/admin/firmware/{id}/publish")).await;
    assert!(body["message"][0].as_str().unwrap().contains("image is missing"), "{body}");
    let view: Value = app
        .get(&format!("/v1/admin/firmware/{id}"))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((&view["state"], &view["channels"]), (&json!("draft"), &json!([])), "nothing half-written");
}
