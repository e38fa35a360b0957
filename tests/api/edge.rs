//! The service's front door (issue 18): nothing a client writes in a forwarding header, a method,
//! an encoded path or an announced length gets past it; only trusted proxies may speak for a
//! client.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, image_bytes, publish, spawn_app_with, upload_ok};
use crate::upstream::start_upstream;

/// What a client that forges every forwarding header sends.
const FORGED: &[(&str, &str)] = &[
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("Forwarded", "for=198.51.100.9;proto=https;host=evil.example"),
    ("X-Real-IP", "192.0.2.66"),
];

fn header<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name].as_array().map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

async fn echo_of_forged(app: &TestApp) -> Value {
    let mut request = app.get("/v1/user");
    for (name, value) in FORGED {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Sends `raw` (a whole request head, and any body) and returns the answer's status, head and
/// body, waiting at most `within` for the server to answer and close.
async fn raw_exchange(app: &TestApp, raw: &[u8], within: Duration) -> (u16, String, String) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut answer = Vec::new();
    // The answer's head is enough; a server that keeps waiting for the body never sends one.
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|len| body.len() >= len) {
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer: {:?}", String::from_utf8_lossy(&answer));
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn forwarding_headers_from_a_client_are_replaced_not_passed_on() {
    let upstream = start_upstream().await;
    let app = spawn_app_with(&[("NOWATCH_OTA__PROXY__UPSTREAM", &upstream.url)]).await;
    let app_host = app.address.trim_start_matches("http://").to_owned();

    let echo = echo_of_forged(&app).await;
    assert_eq!(header(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header(&echo, "x-forwarded-host"), [app_host.as_str()]);
    assert_eq!(header(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(header(&echo, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(
        header(&echo, "forwarded"),
        [format!("for=127.0.0.1;proto=http;host=\"{app_host}\"").as_str()]
    );

    // Neither an absolute-form target nor a Host that smuggles list syntax speaks for the
    // connection.
    let raw =
        format!("GET https://ota.example/v1/user HTTP/1.1\r\nHost: {app_host}\r\nConnection: close\r\n\r\n");
    let (status, _, body) = raw_exchange(&app, raw.as_bytes(), Duration::from_secs(20)).await;
    assert_eq!(status, 200);
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(header(&echo, "x-forwarded-proto"), ["http"]);
    let raw = "GET /v1/user HTTP/1.1\r\nHost: evil.example,for=6.6.6.6\r\nConnection: close\r\n\r\n";
    let (status, head, body) = raw_exchange(&app, raw.as_bytes(), Duration::from_secs(20)).await;
    assert_eq!(status, 400, "{head}");
    assert!(body.contains("Host:"), "{body}");
}

#[tokio::test]
async fn a_trusted_proxy_speaks_for_its_client() {
    let upstream = start_upstream().await;
    let app = spawn_app_with(&[
        ("NOWATCH_OTA__PROXY__UPSTREAM", &upstream.url),
        ("NOWATCH_OTA__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1/32"),
    ])
    .await;

    // Here the test client is the trusted proxy: what it says of its client is believed, but
    // Forwarded and X-Real-IP are always rebuilt from the chain, never passed on.
    let echo = echo_of_forged(&app).await;
    assert_eq!(header(&echo, "x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(header(&echo, "x-forwarded-host"), ["evil.example"]);
    assert_eq!(header(&echo, "x-forwarded-proto"), ["https"]);
    assert_eq!(header(&echo, "x-real-ip"), ["203.0.113.7"]);
    assert_eq!(header(&echo, "forwarded"), [r#"for=203.0.113.7;proto=https;host="evil.example""#]);

    // A proxy that appends: the values it wrote are the last ones, and they win.
    let response = app
        .get("/v1/user")
        .header("X-Forwarded-For", "6.6.6.6, 198.51.100.4")
        .header("X-Forwarded-Host", "evil.example, ota.nowatch.example")
        .header("X-Forwarded-Proto", "gopher, https")
        .send()
        .await
        .unwrap();
    let echo: Value = response.json().await.unwrap();
    assert_eq!(header(&echo, "x-real-ip"), ["198.51.100.4"]);
    assert_eq!(header(&echo, "x-forwarded-host"), ["ota.nowatch.example"]);
    assert_eq!(header(&echo, "x-forwarded-proto"), ["https"]);
}

#[tokio::test]
async fn trusted_proxies_that_are_not_addresses_or_networks_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = crate::helpers::base_env(&dir).await;
    env.insert("NOWATCH_OTA__SERVER__TRUSTED_PROXIES".into(), "10.0.0.0/8,nginx".into());
    let error = nowatch_ota::config::Settings::load_from(env).unwrap_err().to_string();
    assert!(error.contains("server.trusted_proxies") && error.contains("nginx"), "{error}");
}

#[tokio::test]
async fn production_requires_a_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = crate::helpers::base_env(&dir).await;
    env.insert("NOWATCH_OTA_ENV".into(), "production".into());
    env.insert("NOWATCH_OTA__SIGNING__KEY_FILE".into(), "/run/secrets/signing.pem".into());
    env.insert("NOWATCH_OTA__AUTH__HS_SECRET".into(), "a-real-production-secret-of-enough-length".into());
    env.insert("NOWATCH_OTA__METRICS__TOKEN".into(), "a-real-metrics-token-for-the-scraper".into());
    let error = nowatch_ota::config::Settings::load_from(env.clone()).unwrap_err().to_string();
    assert!(error.contains("server.public_url"), "{error}");
    env.insert("NOWATCH_OTA__SERVER__PUBLIC_URL".into(), "https://ota.example.com".into());
    assert!(nowatch_ota::config::Settings::load_from(env).is_ok());
}

#[tokio::test]
async fn the_download_url_never_comes_from_a_forwarding_header() {
    let app = spawn_app_with(&[]).await;
    let release = upload_ok(&app, "2.0.0", &["nw-s1"], image_bytes(1, 4096)).await;
    publish(&app, release["id"].as_str().unwrap(), serde_json::json!({"channel": "stable"})).await;

    let mut request = app
        .get("/v1/firmware/check?hardware=nw-s1&version=1.0.0&device_id=watch-edge-1")
        .bearer_auth(app.user_token());
    for (name, value) in FORGED {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let offer: Value = response.json().await.unwrap();
    let url = offer["download_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/v1/firmware/", app.address)), "{url}");

    let public = spawn_app_with(&[("NOWATCH_OTA__SERVER__PUBLIC_URL", "https://ota.nowatch.example/")]).await;
    let release = upload_ok(&public, "2.0.0", &["nw-s1"], image_bytes(1, 4096)).await;
    publish(&public, release["id"].as_str().unwrap(), serde_json::json!({"channel": "stable"})).await;
    let offer: Value = public
        .get("/v1/firmware/check?hardware=nw-s1&version=1.0.0&device_id=watch-edge-1")
        .bearer_auth(public.user_token())
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(offer["download_url"].as_str().unwrap().starts_with("https://ota.nowatch.example/v1/firmware/"));
}

#[tokio::test]
async fn only_the_usual_methods_are_forwarded_the_rest_are_405() {
    let upstream = start_upstream().await;
    let app = spawn_app_with(&[("NOWATCH_OTA__PROXY__UPSTREAM", &upstream.url)]).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    for method in ["TRACE", "CONNECT", "PROPFIND", "FOO"] {
        let raw = format!(
            "{method} /v1/user HTTP/1.1\r\nHost: {host}\r\nCookie: session=s3cr3t\r\nConnection: close\r\n\r\n"
        );
        let (status, head, body) = raw_exchange(&app, raw.as_bytes(), Duration::from_secs(20)).await;
        assert_eq!(status, 405, "{method}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("allow: get, head, post, put, patch, delete, options"),
            "{head}"
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["statusCode"], 405, "{body}");
        assert!(body["message"][0].as_str().unwrap().starts_with("method:"), "{body}");
    }
    assert_eq!(upstream.requests(), 0);
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.client.request(method.clone(), app.url("/v1/user")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{method}");
    }
    assert_eq!(upstream.requests(), 7);
}

#[tokio::test]
async fn encoded_dot_segments_are_400_however_deep_or_disguised() {
    let upstream = start_upstream().await;
    let app = spawn_app_with(&[("NOWATCH_OTA__PROXY__UPSTREAM", &upstream.url)]).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    for target in [
        "/v1/user/%2525252e%2525252e/admin/firmware",
        "/v1/user/%252525252525252e%252525252525252e/admin",
        "/v1/user/..%20/admin",
        "/v1/user/..%09/admin",
        "/v1/user/%20../admin",
        "/v1/user/%c0%ae%c0%ae/admin",
        "/v1/user/%ef%bc%8e%ef%bc%8e/admin",
        "/v1/user/%e2%80%a5/admin",
        "/v1/user/%ff/admin",
        "/v1/user/%ef%bc%8e%ef%bc%8e%ef%bc%8fadmin",
        "/v1/user/..%ef%bc%bcadmin",
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, head, body) = raw_exchange(&app, raw.as_bytes(), Duration::from_secs(20)).await;
        assert_eq!(status, 400, "{target}: {head}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(body["message"][0].as_str().unwrap().starts_with("path:"), "{target}: {body}");
    }
    assert_eq!(upstream.requests(), 0);
    for fine in ["/v1/user/a%20b", "/v1/user/%e2%9c%93", "/v1/user/...", "/v1/user/%2525"] {
        let raw = format!("GET {fine} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, head, _) = raw_exchange(&app, raw.as_bytes(), Duration::from_secs(20)).await;
        assert_eq!(status, 200, "{fine}: {head}");
    }
}

#[tokio::test]
async fn an_upload_announcing_more_than_the_limit_is_413_before_its_body() {
    let app = spawn_app_with(&[("NOWATCH_OTA__FIRMWARE__MAX_UPLOAD_BYTES", "1000000")]).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let token = app.admin_token();
    // The head alone: a server that reads the body first waits for 2 GB that never come.
    let raw = format!(
        "POST /v1/admin/firmware HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 2000000000\r\n\r\n"
    );
    let (status, head, body) = raw_exchange(&app, raw.as_bytes(), Duration::from_secs(20)).await;
    assert_eq!(status, 413, "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["message"][0].as_str().unwrap().contains("firmware.max_upload_bytes"), "{body}");
    assert_eq!(crate::helpers::firmware_rows(&app).await, 0);

    // Without a token it is still 401 first: the limit says nothing to strangers.
    let raw = format!(
        "POST /v1/admin/firmware HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 2000000000\r\n\r\n"
    );
    let (status, head, _) = raw_exchange(&app, raw.as_bytes(), Duration::from_secs(20)).await;
    assert_eq!(status, 401, "{head}");
}
