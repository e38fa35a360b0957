//! The reverse proxy, against a real upstream (`crate::upstream`, a stand-in for the full
//! NOWATCH backend that echoes what it received and counts requests), with realistic NOWATCH
//! API requests.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{RssSampler, TestApp, assert_error_shape, spawn_app, spawn_app_with};
use crate::upstream::{GZIPPED_MEASUREMENTS, MIB, VALIDATION_ERROR, export_block, start_upstream};

/// The service, proxying to `upstream`, with extra settings.
async fn proxy_to(upstream: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut overrides = vec![("NOWATCH_OTA__PROXY__UPSTREAM", upstream)];
    overrides.extend_from_slice(extra);
    spawn_app_with(&overrides).await
}

/// Asserts a 200 echo and returns it.
async fn echoed(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "{:?}", response.headers());
    response.json().await.unwrap()
}

fn sha256_of<'a>(chunks: impl IntoIterator<Item = &'a Bytes>) -> String {
    let mut hasher = Sha256::new();
    for chunk in chunks {
        hasher.update(chunk);
    }
    hex::encode(hasher.finalize())
}

/// A `POST /v1/measurement/upload` multipart body (`type`, then a `file` of `file_mib` MiB),
/// as chunks that share one block, so it is never held whole; and its content type.
fn measurement_upload(file_mib: usize) -> (Vec<Bytes>, String) {
    let boundary = "nowatch-test-boundary-7d1f";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nHEART_RATE\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"heart_rate.zip\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    );
    let block = export_block();
    let mut chunks = vec![Bytes::from(head)];
    chunks.extend(std::iter::repeat_n(block, file_mib));
    chunks.push(Bytes::from(format!("\r\n--{boundary}--\r\n")));
    (chunks, format!("multipart/form-data; boundary={boundary}"))
}

fn body_of(chunks: &[Bytes]) -> reqwest::Body {
    let chunks = chunks.to_vec();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>)))
}

/// Sends `GET target` byte for byte (reqwest would normalise dot segments away) and returns
/// the status and body.
async fn raw_get(app: &TestApp, target: &str) -> (u16, Value) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name].get(0).and_then(Value::as_str)
}

#[tokio::test]
async fn methods_paths_queries_and_bodies_reach_the_upstream_intact() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let cases: &[(&str, &str, &str)] = &[
        ("POST", "/v1/session", r#"[{"start_datetime":"2026-03-01T07:00:00Z","type":0,"info":"{}"}]"#),
        ("PUT", "/v1/user/settings?notify=1", r#"{"settings":{"unit":"METRIC"}}"#),
        ("DELETE", "/v1/sharing/invite", r#"{"email":"friend@example.com"}"#),
        ("PATCH", "/v1/shared/groups/grp_42", r#"{"name":"Family"}"#),
    ];
    for (method, path_and_query, body) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method.clone(), app.url(path_and_query))
            .header("Content-Type", "application/json")
            .body(*body)
            .send()
            .await
            .unwrap();
        let echo = echoed(response).await;
        let (path, query) =
            path_and_query.split_once('?').map_or((*path_and_query, None), |(p, q)| (p, Some(q)));
        assert_eq!(echo["method"], method.as_str());
        assert_eq!(echo["path"], path);
        assert_eq!(echo["query"], json!(query));
        assert_eq!(echo["body_len"], body.len());
        assert_eq!(echo["body_sha256"], crate::helpers::sha256_hex(body.as_bytes()));
        assert_eq!(header(&echo, "content-type"), Some("application/json"));
        assert_eq!(header(&echo, "content-length"), Some(body.len().to_string().as_str()));
    }

    let query = "start_day=2026-01-01&types%5B%5D=SLEEP_HRV&types%5B%5D=SLEEP_DURATION&q=a%20b+c";
    let echo = echoed(app.get(&format!("/v1/sharing/invites/received?{query}")).send().await.unwrap()).await;
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/v1/sharing/invites/received");
    assert_eq!(echo["query"], query);
    assert_eq!(echo["body_len"], 0);

    // HEAD: the upstream's announced length comes back, with no body.
    let response = app.client.head(app.url("/v1/user/export/list")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let announced: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    assert!(announced > 0);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_eq!(upstream.requests(), 6);
}

#[tokio::test]
async fn the_upstream_base_path_is_prepended() {
    let upstream = start_upstream().await;
    for base in ["/nowatch", "/nowatch/"] {
        let app = proxy_to(&format!("{}{base}", upstream.url), &[]).await;
        let echo = echoed(app.get("/v1/shared/groups?page=2").send().await.unwrap()).await;
        assert_eq!(echo["path"], "/nowatch/v1/shared/groups");
        assert_eq!(echo["query"], "page=2");
    }
}

#[tokio::test]
async fn nowatch_auth_and_context_headers_pass_through() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;

    let echo = echoed(
        app.get("/v1/session?start_date=2026-03-01&end_date=2026-03-07")
            .bearer_auth("user.jwt.token")
            .header("shared-user", "uid_4f2a9c")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(header(&echo, "authorization"), Some("Bearer user.jwt.token"));
    assert_eq!(header(&echo, "shared-user"), Some("uid_4f2a9c"));

    let register =
        json!({"email": "a@example.com", "password": "Secr3t!pass", "first_name": "A", "last_name": "B"});
    let echo = echoed(
        app.post("/v1/auth/register")
            .header("x-auth-token", "c2VjcmV0K2NsaWVudA==")
            .json(&register)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(header(&echo, "x-auth-token"), Some("c2VjcmV0K2NsaWVudA=="));
    assert_eq!(echo["body_sha256"], crate::helpers::sha256_hex(register.to_string().as_bytes()));

    let echo = echoed(
        app.post("/v2/insight")
            .bearer_auth("user.jwt.token")
            .header("app-version", "2.14.0")
            .json(&json!({"time_format": "24h", "today_triggers": []}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(header(&echo, "app-version"), Some("2.14.0"));
    assert_eq!(header(&echo, "authorization"), Some("Bearer user.jwt.token"));
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_proxy_in_both_directions() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let echo = echoed(
        app.get("/v1/intention")
            .header("Connection", "keep-alive, x-secret-hop")
            .header("x-secret-hop", "1")
            .header("Keep-Alive", "timeout=5")
            .header("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0")
            .header("TE", "trailers")
            .header("x-kept", "yes")
            .send()
            .await
            .unwrap(),
    )
    .await;
    for dropped in ["x-secret-hop", "keep-alive", "proxy-authorization", "te"] {
        assert!(echo["headers"].get(dropped).is_none(), "{dropped} reached the upstream: {echo}");
    }
    if let Some(connection) = header(&echo, "connection") {
        assert!(!connection.contains("x-secret-hop"), "{connection}");
    }
    assert_eq!(header(&echo, "x-kept"), Some("yes"));

    let response = app
        .post("/v2/auth/login")
        .json(&json!({"email": "a@example.com", "password": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("keep-alive").is_none());
    assert!(response.headers().get("proxy-authenticate").is_none());
}

#[tokio::test]
async fn forwarding_headers_and_the_request_id_are_added_and_host_is_the_upstreams() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let app_host = app.address.trim_start_matches("http://").to_owned();

    let response = app
        .get("/v1/activity")
        .header("X-Forwarded-For", "203.0.113.7")
        .header("x-request-id", "trace-proxy-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-proxy-1");
    let echo = echoed(response).await;
    // Not a trusted proxy: the client's chain is replaced (tests/api/edge.rs has the rest).
    assert_eq!(header(&echo, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&echo, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&echo, "x-forwarded-host"), Some(app_host.as_str()));
    assert_eq!(header(&echo, "x-request-id"), Some("trace-proxy-1"));
    assert_eq!(header(&echo, "host"), Some(format!("127.0.0.1:{}", upstream.port).as_str()));
    assert_eq!(echo["headers"]["host"].as_array().unwrap().len(), 1);

    let response = app.get("/v1/activity").send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let echo = echoed(response).await;
    assert_eq!(header(&echo, "x-request-id"), Some(generated.as_str()));
    assert_eq!(header(&echo, "x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let first = echoed(app.get("/v1/telemetry").send().await.unwrap()).await;
    let second = echoed(app.get("/v1/telemetry").send().await.unwrap()).await;
    assert_eq!(first["peer"], second["peer"], "the second request opened a new upstream connection");
}

#[tokio::test]
async fn a_64_mib_multipart_upload_streams_through_unchanged() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let (chunks, content_type) = measurement_upload(64);
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let response = app
        .post("/v1/measurement/upload")
        .bearer_auth("user.jwt.token")
        .header("Content-Type", &content_type)
        .body(body_of(&chunks))
        .send()
        .await
        .unwrap();
    let echo = echoed(response).await;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/v1/measurement/upload");
    assert_eq!(echo["body_len"], total);
    assert_eq!(echo["body_sha256"], sha256_of(&chunks));
    assert_eq!(header(&echo, "content-type"), Some(content_type.as_str()));
}

#[tokio::test]
async fn a_64_mib_download_streams_through_unchanged() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let response = app.get("/v1/user/export?mib=64").bearer_auth("user.jwt.token").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let (mut hasher, mut len) = (Sha256::new(), 0usize);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        len += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(len, 64 * MIB);
    let block = export_block();
    assert_eq!(hex::encode(hasher.finalize()), sha256_of(std::iter::repeat_n(&block, 64)));
}

#[tokio::test]
async fn a_chunked_answer_reaches_the_client_while_the_upstream_is_still_sending() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let mut response =
        app.get("/v1/statistics?start_day=2026-03-01&end_day=2026-03-07").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none());
    // The upstream holds back its second half until the first has arrived here.
    let first =
        tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.unwrap().unwrap().unwrap();
    assert_eq!(&first[..], b"[{\"type\":\"SLEEP_HRV\"}");
    upstream.seen.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), response.bytes()).await.unwrap().unwrap();
    assert_eq!(&rest[..], b",{\"type\":\"SLEEP_DURATION\"}]");
}

#[tokio::test]
async fn a_client_that_goes_away_mid_download_stops_the_upstream_stream() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let mut response = app.get("/v1/user/export?mib=100000").send().await.unwrap();
    let mut received = 0;
    while received < 4 * MIB {
        received += response.chunk().await.unwrap().unwrap().len();
    }
    drop(response);
    tokio::time::timeout(Duration::from_secs(10), upstream.seen.export_abandoned.notified())
        .await
        .expect("the upstream kept streaming after the client left");
    assert_eq!(upstream.seen.exports_abandoned.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redirects_are_passed_back_not_followed() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(app.url("/v1/user/export/exp_42/result")).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "https://exports.nowatch.example/exp_42.zip?sig=abc");
    assert_eq!(upstream.requests(), 1);
}

#[tokio::test]
async fn several_set_cookie_headers_stay_separate() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let response = app
        .post("/v2/auth/login")
        .header("x-auth-token", "c2VjcmV0K2NsaWVudA==")
        .json(&json!({"email": "a@example.com", "password": "Secr3t!pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let cookies: Vec<&str> =
        response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(cookies, ["access=a1; Path=/; HttpOnly", "refresh=r1; Path=/v1/auth; HttpOnly"]);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expiresIn"], 3600);
}

#[tokio::test]
async fn a_gzip_body_is_passed_on_as_its_compressed_bytes() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let response = app
        .get("/v1/measurement?type=HEART_RATE&start_day=2026-03-01&end_day=2026-03-01")
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["content-length"], GZIPPED_MEASUREMENTS.len().to_string().as_str());
    assert_eq!(&response.bytes().await.unwrap()[..], &GZIPPED_MEASUREMENTS[..]);
}

#[tokio::test]
async fn upstream_error_answers_come_back_untouched() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;

    let response = app
        .post("/v1/shared/custom")
        .json(&json!({"userId": 42, "customName": "Mum", "iconColor": "#ff0000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.unwrap(), VALIDATION_ERROR);

    let response = app.get("/v1/checkin").send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.headers()["retry-after"], "120");
    assert_eq!(response.text().await.unwrap(), "backend under maintenance");
}

#[tokio::test]
async fn an_upstream_refusing_connections_is_502() {
    let closed = crate::helpers::free_port();
    let app = proxy_to(&format!("http://127.0.0.1:{closed}"), &[]).await;
    let response = app.get("/v1/user").bearer_auth("user.jwt.token").send().await.unwrap();
    let body = assert_error_shape(response, 502, "/v1/user").await;
    assert_eq!(body["error"], "Bad Gateway");
}

/// Small bodies are read whole before the answer starts, so an upstream that breaks off in one
/// is a clean 502, never a short body under a 200.
#[tokio::test]
async fn a_small_upstream_body_that_breaks_off_is_a_clean_502() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"partial\":";
            let _ = socket.write_all(answer.as_bytes()).await;
            // Dropped here: the connection closes 89 bytes short.
        }
    });
    let app = proxy_to(&format!("http://127.0.0.1:{port}"), &[]).await;
    let response = app.get("/v1/user").bearer_auth("user.jwt.token").send().await.unwrap();
    let body = assert_error_shape(response, 502, "/v1/user").await;
    assert_eq!(body["error"], "Bad Gateway");
}

#[tokio::test]
async fn proxied_requests_and_upstream_failures_are_counted_by_tag() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/user").bearer_auth("user.jwt.token").send().await.unwrap().status(), 200);
    }
    let closed = crate::helpers::free_port();
    let down = proxy_to(&format!("http://127.0.0.1:{closed}"), &[]).await;
    assert_eq!(down.get("/v1/measurement").send().await.unwrap().status(), 502);

    let up_metrics = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(
        up_metrics.contains(r#"nowatch_ota_proxy_requests_total{status="200",tag="user"} 3"#),
        "{up_metrics}"
    );
    let down_metrics = down.get("/metrics").send().await.unwrap().text().await.unwrap();
    assert!(
        down_metrics
            .contains(r#"nowatch_ota_proxy_upstream_errors_total{kind="unreachable",tag="measurement"} 1"#),
        "{down_metrics}"
    );
    assert!(down_metrics.contains(r#"nowatch_ota_proxy_requests_total{status="502",tag="measurement"} 1"#));
}

#[tokio::test]
async fn an_https_upstream_that_fails_the_tls_handshake_is_502() {
    let upstream = start_upstream().await;
    let app = proxy_to(&format!("https://127.0.0.1:{}", upstream.port), &[]).await;
    let response = app.get("/v1/user").bearer_auth("user.jwt.token").send().await.unwrap();
    assert_error_shape(response, 502, "/v1/user").await;
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_is_408_after_the_timeout() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[("NOWATCH_OTA__PROXY__TIMEOUT_S", "1")]).await;
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/measurement/upload HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/zip\r\n\
         Content-Length: 1000000\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'z'; 1000]).await.unwrap();
    // ... and nothing more: a phone whose link died mid-upload.
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["statusCode"], 408);
    assert_eq!(body["path"], "/v1/measurement/upload");
}

#[tokio::test]
async fn an_upstream_slower_than_the_timeout_is_504() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[("NOWATCH_OTA__PROXY__TIMEOUT_S", "1")]).await;
    let started = Instant::now();
    let response =
        app.post("/v1/user/export/create?start_day=2026-01-01&end_day=2026-03-01").send().await.unwrap();
    let elapsed = started.elapsed();
    let body = assert_error_shape(response, 504, "/v1/user/export/create").await;
    assert_eq!(body["error"], "Gateway Timeout");
    // The upstream answers 201 after 3 s, so a 504 can only be ours; it may not come early.
    // (No upper bound: this machine is shared, and a late 504 is still a 504.)
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test]
async fn without_an_upstream_proxied_paths_are_503() {
    let app = spawn_app().await;
    let response = app.get("/v1/user").bearer_auth("user.jwt.token").send().await.unwrap();
    let body = assert_error_shape(response, 503, "/v1/user").await;
    assert_eq!(body["error"], "Service Unavailable");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_announced_or_streamed() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[("NOWATCH_OTA__PROXY__MAX_BODY_BYTES", "1024")]).await;
    let response = app.post("/v1/measurement/upload").body(vec![b'x'; 2048]).send().await.unwrap();
    assert_error_shape(response, 413, "/v1/measurement/upload").await;
    assert_eq!(upstream.requests(), 0, "an announced oversized body was forwarded");

    // No Content-Length: counted while it streams.
    let chunks = [Bytes::from(vec![b'x'; 700]), Bytes::from(vec![b'y'; 700])];
    let response = app.post("/v1/measurement/upload").body(body_of(&chunks)).send().await.unwrap();
    assert_error_shape(response, 413, "/v1/measurement/upload").await;

    let echo = echoed(app.post("/v1/measurement/upload").body(vec![b'x'; 1024]).send().await.unwrap()).await;
    assert_eq!(echo["body_len"], 1024);
}

#[tokio::test]
async fn path_traversal_is_400_and_never_reaches_the_upstream() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    for target in [
        "/v1/user/../admin/firmware",
        "/v1/user/%2e%2e/admin/firmware",
        "/v1/user/%2E%2E/%2E%2E/healthz",
        "/v1/user/..%2f..%2fhealthz",
        "/v1/user/%252e%252e/admin/firmware",
        "/v1/user/.%2E/admin/firmware?x=1",
        "/v1/user/%5c..%5cadmin",
    ] {
        let (status, body) = raw_get(&app, target).await;
        assert_eq!(status, 400, "{target}");
        assert_eq!(body["statusCode"], 400, "{target}: {body}");
        assert!(body["message"][0].as_str().unwrap().starts_with("path:"), "{target}: {body}");
    }
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn paths_outside_every_prefix_are_404_and_local_routes_win() {
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    for path in ["/v1/username", "/v2/nothing", "/v1/users/me", "/v2/user"] {
        let response = app.get(path).send().await.unwrap();
        assert_error_shape(response, 404, path).await;
    }
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
    let response = app.get("/v1/admin/firmware").send().await.unwrap();
    assert_error_shape(response, 401, "/v1/admin/firmware").await;
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn a_large_proxied_upload_streams_through_without_the_memory_growing_with_it() {
    const FILE_MIB: usize = 128;
    let upstream = start_upstream().await;
    let app = proxy_to(&upstream.url, &[]).await;
    let (chunks, content_type) = measurement_upload(FILE_MIB);
    let total: usize = chunks.iter().map(Bytes::len).sum();

    let _alone = crate::helpers::measure_memory_alone(1).await;
    let sampler = RssSampler::start();
    let response = app
        .post("/v1/measurement/upload")
        .header("Content-Type", &content_type)
        .header("Content-Length", total)
        .body(body_of(&chunks))
        .send()
        .await
        .unwrap();
    let growth = sampler.growth();
    let echo = echoed(response).await;
    assert_eq!(echo["body_len"], total);
    assert_eq!(header(&echo, "content-length"), Some(total.to_string().as_str()));
    assert_eq!(echo["body_sha256"], sha256_of(&chunks));
    println!("proxied upload: {} MiB, memory growth {:.1} MiB", total / MIB, growth as f64 / MIB as f64);
    assert!(growth < 48 << 20, "memory grew by {} MiB while {} MiB streamed", growth >> 20, total / MIB);
}
