//! `/metrics`: what a client can add to it (nothing that grows it).

use crate::helpers::spawn_app;

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
