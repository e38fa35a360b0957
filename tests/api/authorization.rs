//! Every documented route × (no token, bad token, user token, admin token). The decision table
//! below must name every route of the OpenAPI document (which another test ties to the mounted
//! routes), so a route added without an authorization decision fails here.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::helpers::{image_bytes, publish, spawn_app, upload_ok};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    /// Anyone.
    Public,
    /// Any valid token; a bad one is refused.
    Caller,
    /// A token is optional (public downloads may be switched on) but, here, needed.
    CallerByDefault,
    /// An admin token.
    Admin,
}

fn decisions() -> BTreeMap<(&'static str, &'static str), Policy> {
    use Policy::*;
    BTreeMap::from([
        (("get", "/healthz"), Public),
        (("get", "/readyz"), Public),
        (("get", "/metrics"), Public), // unless `metrics.token` is set: metrics.rs
        (("get", "/v1/firmware/check"), Caller),
        (("get", "/v1/firmware"), Caller),
        (("get", "/v1/firmware/{id}"), Caller),
        (("get", "/v1/firmware/{id}/manifest"), Caller),
        (("get", "/v1/firmware/keys"), CallerByDefault),
        (("get", "/v1/firmware/root"), CallerByDefault),
        (("get", "/v1/firmware/root/{version}"), CallerByDefault),
        (("post", "/v1/firmware/{id}/report"), Caller),
        (("get", "/v1/firmware/{id}/download"), CallerByDefault),
        (("head", "/v1/firmware/{id}/download"), CallerByDefault),
        (("get", "/v1/firmware/{id}/delta/{from_sha256}"), CallerByDefault),
        (("head", "/v1/firmware/{id}/delta/{from_sha256}"), CallerByDefault),
        (("get", "/v1/firmware/{id}/chunks"), CallerByDefault),
        (("head", "/v1/firmware/{id}/chunks"), CallerByDefault),
        (("post", "/v1/admin/firmware"), Admin),
        (("get", "/v1/admin/firmware"), Admin),
        (("get", "/v1/admin/firmware/{id}"), Admin),
        (("patch", "/v1/admin/firmware/{id}"), Admin),
        (("delete", "/v1/admin/firmware/{id}"), Admin),
        (("post", "/v1/admin/firmware/{id}/publish"), Admin),
        (("post", "/v1/admin/firmware/{id}/revoke"), Admin),
        (("get", "/v1/admin/firmware/{id}/deltas"), Admin),
        (("post", "/v1/admin/firmware/{id}/deltas/rebuild"), Admin),
        (("get", "/v1/admin/hardware/{hardware}/floor"), Admin),
        (("put", "/v1/admin/hardware/{hardware}/floor"), Admin),
        (("get", "/v1/admin/rollouts"), Admin),
        (("get", "/v1/admin/rollouts/{id}"), Admin),
        (("get", "/v1/admin/rollouts/{id}/preview"), Admin),
        (("get", "/v1/admin/rollouts/{id}/timeline"), Admin),
        (("post", "/v1/admin/rollouts/{id}/pause"), Admin),
        (("post", "/v1/admin/rollouts/{id}/resume"), Admin),
        (("post", "/v1/admin/rollouts/{id}/advance"), Admin),
        (("post", "/v1/admin/rollouts/{id}/abort"), Admin),
        (("get", "/v1/admin/devices/{device_id}"), Admin),
        (("delete", "/v1/admin/devices/{device_id}/owner"), Admin),
        (("delete", "/v1/admin/devices/{device_id}/failures"), Admin),
    ])
}

#[tokio::test]
async fn every_route_answers_each_kind_of_caller_as_its_policy_says() {
    let app = spawn_app().await;
    let release = upload_ok(&app, "1.0.0", &["nw-s1"], image_bytes(1, 1000)).await;
    let id = release["id"].as_str().unwrap().to_owned();
    let rollout = publish(&app, &id, serde_json::json!({"channel": "stable"})).await;
    let rollout_id = rollout["id"].as_str().unwrap().to_owned();
    let spec: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();

    let table = decisions();
    let mut documented = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    for (method, path) in &documented {
        assert!(
            table.contains_key(&(method.as_str(), path.as_str())),
            "no authorization decision for {method} {path}"
        );
    }
    assert_eq!(documented.len(), table.len(), "the table names routes that do not exist");

    let user = app.user_token();
    let admin = app.admin_token();
    let forged = crate::helpers::token(serde_json::json!({"sub": "x", "isAdmin": true, "exp": 1}));
    for (&(method, template), &policy) in &table {
        let path = template
            .replace("{hardware}", "nw-s1")
            .replace("{device_id}", "d1")
            .replace("{version}", "1")
            .replace("{from_sha256}", &"ab".repeat(32))
            .replace("{id}", if template.contains("rollouts") { &rollout_id } else { &id });
        let path = match template {
            "/v1/firmware/check" => format!("{path}?hardware=nw-s1&version=0.1.0&device_id=d1"),
            "/v1/firmware" => format!("{path}?hardware=nw-s1"),
            _ => path,
        };
        let request = |token: Option<&str>| {
            let mut r = app.client.request(method.to_uppercase().parse().unwrap(), app.url(&path));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            async move { r.send().await.unwrap().status().as_u16() }
        };
        let (none, bad, as_user, as_admin) = (
            request(None).await,
            request(Some(&forged)).await,
            request(Some(&user)).await,
            request(Some(&admin)).await,
        );
        let what = format!("{method} {template}: none={none} bad={bad} user={as_user} admin={as_admin}");
        match policy {
            Policy::Public => assert!(none < 400 || none == 503, "{what}"),
            Policy::Caller | Policy::CallerByDefault => {
                assert_eq!((none, bad), (401, 401), "{what}");
                assert!(![401, 403].contains(&as_user) && ![401, 403].contains(&as_admin), "{what}");
            }
            Policy::Admin => {
                assert_eq!((none, bad, as_user), (401, 401, 403), "{what}");
                assert!(![401, 403].contains(&as_admin), "{what}");
            }
        }
    }
}
