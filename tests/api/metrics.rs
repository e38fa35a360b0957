//! `/metrics`: what a client can add to it (nothing that grows it) and who may read it.

use crate::helpers::{assert_error_shape, spawn_app, spawn_app_with};

/// A request with a method no standard names, as anyone can send one.
async fn made_up_method(app: &crate::helpers::TestApp, method: &str, path: &str) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    app.client.request(method, app.url(path)).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn made_up_methods_add_no_lines_to_metrics() {
    let app = spawn_app().await;
    let scrape = || async { app.get("/metrics").send().await.unwrap().text().await.unwrap() };
    scrape().await; // the scrape's own series, in every later scrape
    for path in ["/nope", "/v1/user/profile"] {
        made_up_method(&app, "INFLATE0", path).await;
    }
    let before = scrape().await;
    for i in 1..=200 {
        for path in ["/nope", "/v1/user/profile"] {
            made_up_method(&app, &format!("INFLATE{i}"), path).await;
        }
    }
    let after = scrape().await;

    assert_eq!(after.lines().count(), before.lines().count(), "400 requests with new methods added lines");
    assert!(!after.contains("INFLATE"), "a client's method became a label");
    let other = |route: &str| {
        after
            .lines()
            .filter(|l| l.starts_with("nowatch_ota_http_requests_total{"))
            .filter(|l| l.contains(r#"method="other""#) && l.contains(&format!(r#"route="{route}""#)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    // Forwarded paths with no upstream configured are answered here (503), as `unmatched` too.
    assert_eq!(other("unmatched"), 402);
}

#[tokio::test]
async fn the_standard_methods_keep_their_own_label() {
    let app = spawn_app().await;
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        made_up_method(&app, method, "/nope").await;
    }
    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let label = format!(r#"method="{method}",route="unmatched""#);
        assert!(
            text.lines().any(|l| l.starts_with("nowatch_ota_http_requests_total{") && l.contains(&label))
        );
    }
}

const TOKEN: &str = "scrape-0f6ab0a43c414d55-9b8e7b1f";

#[tokio::test]
async fn metrics_need_the_bearer_token_when_metrics_token_is_set() {
    let app = spawn_app_with(&[("NOWATCH_OTA__METRICS__TOKEN", TOKEN)]).await;
    let user = app.user_token();
    let admin = app.admin_token();
    let near_miss = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    for authorization in [
        None,
        Some(format!("Bearer {near_miss}")),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {user}")),
        Some(format!("Bearer {admin}")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
    ] {
        let mut request = app.get("/metrics");
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.headers().get("www-authenticate").map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{authorization:?}"
        );
        let body = assert_error_shape(response, 401, "/metrics").await;
        assert!(!body.to_string().contains(TOKEN), "{body}");
    }
    let response = app.get("/metrics").bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"nowatch_ota_http_requests_total{method="GET",route="/metrics",status="401"} 7"#),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_are_open_without_a_metrics_token() {
    let app = spawn_app().await;
    assert_eq!(app.get("/metrics").send().await.unwrap().status(), 200);
}
