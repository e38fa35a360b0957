//! A stand-in for the full NOWATCH backend, for the proxy tests: an actix-web server on
//! 127.0.0.1:0 in the test process. Its default route echoes what it received (method, path,
//! query, headers, body length and SHA-256, the peer it saw); a few routes behave like the
//! backend's awkward cases (a streamed export, a held-open chunked answer, two cookies, a
//! redirect, a gzip body, a slow answer, error bodies of its own). It counts every request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::helpers::image_bytes;

pub const MIB: usize = 1 << 20;

/// A gzip member (mtime 0) of a `GET /v1/measurement` answer, as the backend would send it.
pub const GZIPPED_MEASUREMENTS: [u8; 103] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x8b, 0xae, 0x56, 0x2a, 0x4b, 0xcc, 0x29,
    0x4d, 0x2d, 0x56, 0xb2, 0x52, 0xaa, 0x8e, 0x51, 0x32, 0x88, 0x51, 0xb2, 0x8a, 0x36, 0x33, 0xd4, 0x31,
    0x89, 0xd5, 0x89, 0x51, 0x32, 0x83, 0xf0, 0x8c, 0x81, 0xbc, 0x5a, 0x25, 0x1d, 0xa5, 0xe4, 0xfc, 0xd2,
    0xbc, 0x12, 0x25, 0x2b, 0x23, 0x1d, 0xa5, 0x92, 0xca, 0x82, 0x54, 0xa0, 0x7a, 0x0f, 0x57, 0xc7, 0xa0,
    0x90, 0xf8, 0x20, 0xc7, 0x10, 0x57, 0xa0, 0x6c, 0x4a, 0x62, 0x25, 0x50, 0xc8, 0xc8, 0xc0, 0xc8, 0x4c,
    0xd7, 0xc0, 0x58, 0xd7, 0xc0, 0x50, 0xa9, 0x36, 0x16, 0x00, 0xfe, 0x2c, 0x24, 0xc5, 0x5c, 0x00, 0x00,
    0x00,
];

/// What the upstream shares with the test.
#[derive(Default)]
pub struct Seen {
    pub requests: AtomicUsize,
    /// Releases the second half of `GET /v1/statistics`.
    pub release: Notify,
    /// Export streams dropped before their end, and a signal for each.
    pub exports_abandoned: AtomicUsize,
    pub export_abandoned: Notify,
}

pub struct Upstream {
    pub url: String,
    pub port: u16,
    pub seen: web::Data<Seen>,
}

impl Upstream {
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }
}

pub async fn start_upstream() -> Upstream {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = web::Data::new(Seen::default());
    let data = seen.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/user/export", web::get().to(export))
            .route("/v1/user/export/{id}/result", web::get().to(export_result))
            .route("/v1/user/export/create", web::post().to(slow_export_create))
            .route("/v2/auth/login", web::post().to(login))
            .route("/v1/measurement", web::get().to(gzipped_measurements))
            .route("/v1/statistics", web::get().to(held_open_statistics))
            .route("/v1/shared/custom", web::post().to(validation_error))
            .route("/v1/checkin", web::get().to(maintenance))
            .route("/v1/user/profile", web::get().to(steering_profile))
            .default_service(web::to(echo))
            .wrap(from_fn(count))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Upstream { url: format!("http://127.0.0.1:{port}"), port, seen }
}

async fn count(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    req.app_data::<web::Data<Seen>>().unwrap().requests.fetch_add(1, Ordering::SeqCst);
    next.call(req).await
}

/// Echoes the request, hashing the body as it streams in.
async fn echo(req: HttpRequest, mut body: web::Payload) -> HttpResponse {
    let (mut hasher, mut len) = (Sha256::new(), 0u64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers.entry(name.to_string()).or_default().push(value.to_str().unwrap().to_owned());
    }
    HttpResponse::Ok().json(json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": headers,
        "body_len": len,
        "body_sha256": hex::encode(hasher.finalize()),
        "peer": req.peer_addr().unwrap().to_string(),
    }))
}

/// The 1 MiB block exports are made of.
pub fn export_block() -> Bytes {
    Bytes::from(image_bytes(7, MIB))
}

/// Notes an export stream dropped before its end (the client went away).
struct ExportGuard {
    seen: Arc<Seen>,
    finished: bool,
}

impl ExportGuard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for ExportGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.seen.exports_abandoned.fetch_add(1, Ordering::SeqCst);
            self.seen.export_abandoned.notify_one();
        }
    }
}

/// `GET /v1/user/export?mib=N`: N MiB, streamed, no Content-Length.
async fn export(query: web::Query<HashMap<String, usize>>, seen: web::Data<Seen>) -> HttpResponse {
    let mib = query["mib"];
    let block = export_block();
    let guard = ExportGuard { seen: seen.into_inner(), finished: false };
    let stream = futures_util::stream::unfold((0, guard), move |(sent, mut guard)| {
        let block = block.clone();
        async move {
            if sent == mib {
                guard.finish();
                return None;
            }
            Some((Ok::<_, std::io::Error>(block), (sent + 1, guard)))
        }
    });
    HttpResponse::Ok().content_type("application/zip").streaming(stream)
}

async fn export_result(path: web::Path<String>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", format!("https://exports.nowatch.example/{path}.zip?sig=abc")))
        .finish()
}

async fn slow_export_create() -> HttpResponse {
    tokio::time::sleep(Duration::from_secs(3)).await;
    HttpResponse::Created().json(json!({"id": "exp_slow"}))
}

async fn login() -> HttpResponse {
    HttpResponse::Created()
        .append_header(("Set-Cookie", "access=a1; Path=/; HttpOnly"))
        .append_header(("Set-Cookie", "refresh=r1; Path=/v1/auth; HttpOnly"))
        .append_header(("Keep-Alive", "timeout=5"))
        .append_header(("Proxy-Authenticate", "Basic realm=\"backend\""))
        .json(json!({"access": "a1", "refresh": "r1", "expiresIn": 3600}))
}

async fn gzipped_measurements() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Content-Encoding", "gzip"))
        .body(GZIPPED_MEASUREMENTS.to_vec())
}

/// Sends the first half of a chunked answer, then waits for the test's go-ahead.
async fn held_open_statistics(seen: web::Data<Seen>) -> HttpResponse {
    let seen = seen.into_inner();
    let halves = futures_util::stream::unfold(0, move |half| {
        let seen = seen.clone();
        async move {
            match half {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from_static(b"[{\"type\":\"SLEEP_HRV\"}")), 1)),
                1 => {
                    seen.release.notified().await;
                    Some((Ok(Bytes::from_static(b",{\"type\":\"SLEEP_DURATION\"}]")), 2))
                }
                _ => None,
            }
        }
    });
    HttpResponse::Ok().content_type("application/json").streaming(halves)
}

pub const VALIDATION_ERROR: &str =
    r#"{"statusCode":400,"message":["userId must be a string"],"error":"Bad Request"}"#;

async fn validation_error() -> HttpResponse {
    HttpResponse::BadRequest().content_type("application/json").body(VALIDATION_ERROR)
}

async fn maintenance() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .content_type("text/plain")
        .insert_header(("Retry-After", "120"))
        .body("backend under maintenance")
}

/// A backend answer that tries to steer the nginx in front: serve the internal file named by
/// `?accel=`, throttle, or have a sendfile-capable server send a local file instead. Its own
/// body is a small profile; a large (over 64 KiB) one with `?large=1`, so that it streams.
async fn steering_profile(query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let target = query.get("accel").cloned().unwrap_or_default();
    let body = match query.contains_key("large") {
        true => vec![b'p'; 100 * 1024],
        false => br#"{"name":"profile"}"#.to_vec(),
    };
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("X-Accel-Redirect", target))
        .insert_header(("X-Accel-Limit-Rate", "1"))
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(("X-Sendfile", "/etc/passwd"))
        .insert_header(("X-LIGHTTPD-send-file", "/etc/passwd"))
        .body(body)
}
