//! `firmware.download_mode = "redirect"` against a real S3-compatible server (s3s-fs, which
//! checks SigV4 signatures and expiry): the service answers HEAD, 304 and 416 itself, as in the
//! other modes, and sends only a GET that transfers bytes to a URL presigned for
//! `storage.s3.public_endpoint`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    TestApp, assert_error_shape, fresh_bucket, image_bytes, publish, s3_env, s3_server, sha256_hex,
    spawn_app_with, upload_ok,
};

const LEN: usize = 70_000;

async fn redirect_app(extra: &[(&str, &str)]) -> TestApp {
    let mut env: Vec<(String, String)> = s3_env(&fresh_bucket().await).into_iter().collect();
    env.push(("NOWATCH_OTA__FIRMWARE__DOWNLOAD_MODE".into(), "redirect".into()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_with(&pairs).await
}

/// A published release of `LEN` bytes; its download path, bytes and the service's ETag.
async fn release(app: &TestApp) -> (String, Vec<u8>, String) {
    let bytes = image_bytes(11, LEN);
    let id = upload_ok(app, "4.0.0", &["nw-s1"], bytes.clone()).await["id"].as_str().unwrap().to_owned();
    publish(app, &id, json!({"channel": "stable"})).await;
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    (format!("/v1/firmware/{id}/download"), bytes, etag)
}

/// A client that shows the 302 instead of following it.
fn not_following() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The presigned URL a GET of `path` is sent to.
async fn location(app: &TestApp, path: &str) -> String {
    let response = not_following().get(app.url(path)).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("X-Amz-Signature"), "{location}");
    location
}

#[tokio::test]
async fn redirect_mode_sends_a_get_to_a_presigned_url_that_serves_the_image_and_its_ranges() {
    let app = redirect_app(&[]).await;
    let (path, bytes, _) = release(&app).await;
    let image = reqwest::get(location(&app, &path).await).await.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.bytes().await.unwrap(), bytes);

    // A resume (`curl -C -`) is redirected too; the client repeats its Range to S3.
    let response = not_following()
        .get(app.url(&path))
        .bearer_auth(app.user_token())
        .header("Range", "bytes=60000-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let rest = reqwest::Client::new()
        .get(response.headers()["location"].to_str().unwrap())
        .header("Range", "bytes=60000-")
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 206);
    assert_eq!(rest.bytes().await.unwrap(), bytes[60_000..]);
}

#[tokio::test]
async fn redirect_mode_answers_head_itself_with_the_documented_headers() {
    let app = redirect_app(&[]).await;
    let (path, _, etag) = release(&app).await;
    let head = not_following().head(app.url(&path)).bearer_auth(app.user_token()).send().await.unwrap();
    assert_eq!(head.status(), 200, "HEAD is answered here, not sent to a URL signed for GET");
    let headers = head.headers();
    assert!(headers.get("location").is_none());
    assert_eq!(headers["content-length"], LEN.to_string());
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["content-type"], "application/octet-stream");

    let part = not_following()
        .head(app.url(&path))
        .bearer_auth(app.user_token())
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 100-199/{LEN}"));
    assert_eq!(part.headers()["content-length"], "100");
}

#[tokio::test]
async fn redirect_mode_answers_304_and_416_itself_in_the_documented_shape() {
    let app = redirect_app(&[]).await;
    let (path, _, etag) = release(&app).await;
    let client = not_following();
    let unchanged =
        client.get(app.url(&path)).bearer_auth(app.user_token()).header("If-None-Match", &etag).send();
    let unchanged = unchanged.await.unwrap();
    assert_eq!(unchanged.status(), 304, "the ETag the client has is not sent to S3 for a 302");
    assert_eq!(unchanged.headers()["etag"], etag.as_str());

    let past_the_end = client
        .get(app.url(&path))
        .bearer_auth(app.user_token())
        .header("Range", format!("bytes={LEN}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(past_the_end.headers()["content-range"], format!("bytes */{LEN}"));
    let body = assert_error_shape(past_the_end, 416, &path).await;
    assert!(body["message"][0].as_str().unwrap().contains(&format!("{LEN} bytes")), "{body}");
}

#[tokio::test]
async fn a_resume_guarded_by_the_service_etag_or_a_range_it_ignores_is_served_here() {
    let app = redirect_app(&[]).await;
    let (path, bytes, etag) = release(&app).await;
    let get = |range: &str| {
        not_following().get(app.url(&path)).bearer_auth(app.user_token()).header("Range", range.to_owned())
    };
    // S3 compares If-Range with its own ETag (an MD5): AWS would send the whole image again.
    let resumed = get("bytes=60000-").header("If-Range", &etag).send().await.unwrap();
    assert_eq!(resumed.status(), 206);
    assert_eq!(resumed.headers()["etag"], etag.as_str());
    assert_eq!(resumed.headers()["content-range"], format!("bytes 60000-{}/{LEN}", LEN - 1));
    assert_eq!(resumed.bytes().await.unwrap(), bytes[60_000..]);

    // Several ranges are ignored here (the whole image); s3s-fs answers them 400.
    let several = get("bytes=0-1,5-6").send().await.unwrap();
    assert_eq!(several.status(), 200);
    assert_eq!(several.headers()["etag"], etag.as_str());
    assert_eq!(several.bytes().await.unwrap(), bytes);
}

#[tokio::test]
async fn redirect_urls_are_presigned_for_the_public_endpoint() {
    // The same s3s-fs under another name, as a watch would reach a store behind its own host.
    let public = s3_server().endpoint.replace("127.0.0.1", "localhost");
    let app = redirect_app(&[("NOWATCH_OTA__STORAGE__S3__PUBLIC_ENDPOINT", &public)]).await;
    let (path, bytes, _) = release(&app).await;
    let url = location(&app, &path).await;
    assert!(url.starts_with(&format!("{public}/")), "{url} is not on {public}");
    let image = reqwest::get(&url).await.unwrap();
    assert_eq!(image.status(), 200, "the URL is signed for the public host");
    assert_eq!(image.bytes().await.unwrap(), bytes);
}

#[tokio::test]
async fn a_url_handed_out_before_a_revoke_works_only_until_its_short_expiry() {
    let app = redirect_app(&[("NOWATCH_OTA__STORAGE__S3__PRESIGN_TTL_S", "1")]).await;
    let (path, _, _) = release(&app).await;
    let handed_out = location(&app, &path).await;
    let id = path.trim_start_matches("/v1/firmware/").trim_end_matches("/download");
    let revoked = app
        .post(&format!("/v1/admin/firmware/{id}/revoke"))
        .bearer_auth(app.admin_token())
        .json(&json!({"reason": "bricks watches"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let again = not_following().get(app.url(&path)).bearer_auth(app.user_token()).send().await.unwrap();
    assert_error_shape(again, 404, &path).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(reqwest::get(&handed_out).await.unwrap().status(), 403, "expired with its lifetime");
}
