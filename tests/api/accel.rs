//! `firmware.download_mode = "accel"`: the service checks, then hands the file to the nginx in
//! front with `X-Accel-Redirect`; nginx sends it (sendfile) and applies Range and If-Range. The
//! second test puts a real nginx (from the machine's packages; `tests/run` installs it) in front.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    TestApp, assert_error_shape, free_port, image_bytes, listening_within, publish, sha256_hex,
    spawn_app_with, upload_ok,
};

const LOCATION: &str = "/_nowatch_blobs/";

async fn accel_app() -> TestApp {
    spawn_app_with(&[
        ("NOWATCH_OTA__FIRMWARE__DOWNLOAD_MODE", "accel"),
        // The mode serves the filesystem store, whatever the suite's TEST_STORAGE.
        ("NOWATCH_OTA__STORAGE__BACKEND", "fs"),
    ])
    .await
}

/// A published release; its id and bytes.
async fn release(app: &TestApp, len: usize) -> (String, Vec<u8>) {
    let bytes = image_bytes(9, len);
    let id = upload_ok(app, "3.0.0", &["nw-s1"], bytes.clone()).await["id"].as_str().unwrap().to_owned();
    publish(app, &id, json!({"channel": "stable"})).await;
    (id, bytes)
}

#[tokio::test]
async fn accel_downloads_hand_the_file_to_nginx_only_after_the_service_checks() {
    let app = accel_app().await;
    let (id, bytes) = release(&app, 70_000).await;
    let path = format!("/v1/firmware/{id}/download");
    let etag = format!("\"{}\"", sha256_hex(&bytes));

    let handed = app.get(&path).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(handed.status(), 200);
    let headers = handed.headers().clone();
    assert_eq!(headers["x-accel-redirect"], format!("{LOCATION}firmware/{}", sha256_hex(&bytes)));
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert!(headers["content-disposition"].to_str().unwrap().contains(&id));
    assert!(handed.bytes().await.unwrap().is_empty(), "nginx sends the bytes, not the service");

    // The service's own answers stay its own, in the NOWATCH shape.
    let anonymous = app.get(&path).send().await.unwrap();
    assert_error_shape(anonymous, 401, &path).await;
    let past_the_end = app.get(&path).bearer_auth(app.user_token()).header("Range", "bytes=70000-").send();
    let body = assert_error_shape(past_the_end.await.unwrap(), 416, &path).await;
    assert!(body["message"][0].as_str().unwrap().contains("70000 bytes"));
    let unchanged = app.get(&path).bearer_auth(app.user_token()).header("If-None-Match", &etag).send();
    assert_eq!(unchanged.await.unwrap().status(), 304);
    let unknown = format!("/v1/firmware/{}/download", uuid::Uuid::new_v4());
    assert_error_shape(app.get(&unknown).bearer_auth(app.user_token()).send().await.unwrap(), 404, &unknown)
        .await;
    // HEAD answers itself (it never opens the file).
    let head = app.client.head(app.url(&path)).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(head.headers()["content-length"], "70000");
    assert!(head.headers().get("x-accel-redirect").is_none());
}

#[tokio::test]
async fn accel_needs_the_filesystem_store_and_a_location_path() {
    for (key, value, field) in [
        ("NOWATCH_OTA__FIRMWARE__ACCEL_LOCATION", "_blobs/", "firmware.accel_location"),
        ("NOWATCH_OTA__FIRMWARE__ACCEL_LOCATION", "/_blobs", "firmware.accel_location"),
        ("NOWATCH_OTA__STORAGE__BACKEND", "s3", "firmware.download_mode"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = crate::helpers::base_env(&dir).await;
        env.insert("NOWATCH_OTA__FIRMWARE__DOWNLOAD_MODE".into(), "accel".into());
        env.insert("NOWATCH_OTA__STORAGE__BACKEND".into(), "fs".into());
        env.insert("NOWATCH_OTA__STORAGE__S3__BUCKET".into(), "firmware".into());
        env.insert(key.into(), value.into());
        let error = nowatch_ota::config::Settings::load_from(env).expect_err("refused").to_string();
        assert!(error.contains(field), "{key}={value}: {error}");
    }
}

/// nginx in the foreground, as this user, on a free port; stopped when dropped.
struct Nginx {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

/// README's nginx snippet ("Downloads through nginx"), pointed at `upstream` and `root`: the
/// tests run what the README tells operators to run.
fn readme_snippet(upstream: &str, root: &std::path::Path) -> String {
    let readme = include_str!("../../README.md");
    let start = readme.find("```nginx").expect("README has an nginx snippet") + "```nginx".len();
    let snippet = &readme[start..start + readme[start..].find("```").unwrap()];
    snippet
        .replace("http://127.0.0.1:8080", &format!("http://{upstream}"))
        .replace("/var/lib/nowatch-ota/data/blobs/", &format!("{}/", root.display()))
}

/// The snippet without its second layer (`proxy_ignore_headers`): what the service's own
/// stripping is tested behind.
fn without_second_layer(snippet: &str) -> String {
    snippet.lines().filter(|line| !line.contains("proxy_ignore_headers")).collect::<Vec<_>>().join("\n")
}

impl Nginx {
    /// The front of `app` as README configures it.
    fn start_in_front_of(app: &TestApp) -> Self {
        Self::start_with(app, |snippet| snippet)
    }

    /// The front of `app`, README's snippet passed through `edit`.
    fn start_with(app: &TestApp, edit: impl FnOnce(String) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let upstream = app.address.trim_start_matches("http://");
        let snippet = edit(readme_snippet(upstream, &app.dir.path().join("blobs")));
        let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|t| format!("  {t}_temp_path {}/{t};\n", dir.path().display()))
            .collect();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\nhttp {{\n{temp}  access_log off;\n  sendfile on;\n\
             server {{\n    listen 127.0.0.1:{port};\n{snippet}\n  }}\n}}\n",
            d = dir.path().display(),
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (tests/run installs it)");
        if !listening_within(port, Duration::from_secs(10)) {
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            panic!("nginx did not start: {log}");
        }
        Self { child, base: format!("http://127.0.0.1:{port}"), _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn behind_a_real_nginx_the_image_its_ranges_and_resumes_come_from_the_file() {
    let app = accel_app().await;
    let (id, bytes) = release(&app, (3 << 20) + 123).await;
    let nginx = Nginx::start_in_front_of(&app);
    let url = format!("{}/v1/firmware/{id}/download", nginx.base);
    let token = app.user_token();
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let get = |range: Option<&str>, if_range: Option<&str>| {
        let mut request = app.client.get(&url).bearer_auth(&token);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        if let Some(validator) = if_range {
            request = request.header("If-Range", validator);
        }
        request.send()
    };

    let whole = get(None, None).await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["etag"], etag.as_str());
    assert!(whole.headers().get("x-accel-redirect").is_none(), "nginx keeps the redirect to itself");
    assert_eq!(sha256_hex(&whole.bytes().await.unwrap()), sha256_hex(&bytes));

    let part = get(Some("bytes=1048576-2097151"), None).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 1048576-2097151/{}", bytes.len()));
    assert_eq!(part.bytes().await.unwrap(), bytes[1 << 20..2 << 20]);

    // A resume with our ETag as If-Range gets the rest; with another, the whole image again.
    let resumed = get(Some("bytes=3000000-"), Some(&etag)).await.unwrap();
    assert_eq!(resumed.status(), 206);
    assert_eq!(resumed.bytes().await.unwrap(), bytes[3_000_000..]);
    let changed = get(Some("bytes=3000000-"), Some("\"another-image\"")).await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.bytes().await.unwrap().len(), bytes.len());

    // The service still decides who gets it, in the NOWATCH shape, through nginx.
    let anonymous = app.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<serde_json::Value>().await.unwrap()["statusCode"], 401);
    // And the internal location cannot be asked for directly.
    let direct = app.client.get(format!("{}{LOCATION}firmware/{}", nginx.base, sha256_hex(&bytes)));
    assert_eq!(direct.send().await.unwrap().status(), 404);
}

/// The service in accel mode, proxying the backend's tags to `upstream`.
async fn accel_app_proxying(upstream: &str) -> TestApp {
    spawn_app_with(&[
        ("NOWATCH_OTA__FIRMWARE__DOWNLOAD_MODE", "accel"),
        ("NOWATCH_OTA__STORAGE__BACKEND", "fs"),
        ("NOWATCH_OTA__PROXY__UPSTREAM", upstream),
    ])
    .await
}

#[tokio::test]
async fn a_backend_answer_cannot_make_nginx_serve_an_image_or_a_file() {
    let upstream = crate::upstream::start_upstream().await;
    let app = accel_app_proxying(&upstream.url).await;
    let (_, bytes) = release(&app, 200_000).await;
    let blob = format!("{LOCATION}firmware/{}", sha256_hex(&bytes));
    // Without nginx's second layer: what stops it is the service.
    let nginx = Nginx::start_with(&app, |snippet| without_second_layer(&snippet));

    for query in ["", "&large=1"] {
        let url = format!("{}/v1/user/profile?accel={blob}{query}", nginx.base);
        // Bounded: an nginx that obeys `X-Accel-Limit-Rate: 1` sends a byte a second.
        let answer = app.client.get(&url).timeout(Duration::from_secs(30)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{query}");
        for name in [
            "x-accel-redirect",
            "x-accel-limit-rate",
            "x-accel-buffering",
            "x-sendfile",
            "x-lighttpd-send-file",
        ] {
            assert!(answer.headers().get(name).is_none(), "{name} reached the client: {query}");
        }
        let body =
            answer.bytes().await.expect("a whole answer within 30 s (nginx obeyed X-Accel-Limit-Rate?)");
        assert_ne!(sha256_hex(&body), sha256_hex(&bytes), "nginx served the image for a proxied path");
        assert!(body.starts_with(b"{\"name\"") || body.iter().all(|b| *b == b'p'), "{query}");

        // The service itself passes none of them back, so no front server can obey them.
        let direct =
            app.client.get(app.url(&format!("/v1/user/profile?accel={blob}{query}"))).send().await.unwrap();
        for name in [
            "x-accel-redirect",
            "x-accel-limit-rate",
            "x-accel-buffering",
            "x-sendfile",
            "x-lighttpd-send-file",
        ] {
            assert!(direct.headers().get(name).is_none(), "{name} passed back: {query}");
        }
    }
}

#[tokio::test]
async fn behind_readmes_nginx_an_upload_larger_than_a_mebibyte_is_taken() {
    let upstream = crate::upstream::start_upstream().await;
    let app = accel_app_proxying(&upstream.url).await;
    let nginx = Nginx::start_in_front_of(&app);
    let bytes = image_bytes(4, 3 << 20);
    let form = reqwest::multipart::Form::new()
        .text("metadata", json!({"version": "3.1.0", "hardware": ["nw-s1"]}).to_string())
        .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name("fw.bin"));
    let response = app
        .client
        .post(format!("{}/v1/admin/firmware", nginx.base))
        .bearer_auth(app.admin_token())
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}
