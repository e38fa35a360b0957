//! `GET`/`HEAD /v1/firmware/{id}/download`: the image, streamed from the store with single
//! ranges (resuming a broken download), validators for caches, or a redirect to a presigned
//! S3 URL for a GET that transfers bytes (HEAD, 304 and 416 are always answered here, so every
//! mode answers them alike). Published releases come from the in-memory catalog; admins may
//! also fetch drafts and revoked releases, which are looked up in the database.

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{self, EntityTag};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, get, head, web};
use futures_util::TryStreamExt;

use crate::auth::OptionalCaller;
use crate::config::DownloadMode;
use crate::domain::range::RangeRequest;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::{BadInput, DownloadHeaders, NeedsToken, NotFound};
use crate::routes::http::{if_none_match, if_range, parse_id};
use crate::services::downloads::{Image, find_image};
use crate::state::AppState;
use crate::storage::ByteRange;

/// Whether S3, sent this GET's `Range` and `If-Range` as they are (a client repeats them after
/// the 302), answers it as this service would: no range, or a single satisfiable one whose
/// `If-Range`, if any, is not this service's ETag. S3 compares `If-Range` with its own ETag (an
/// MD5, not the SHA-256), so a resume guarded by ours would get the whole image from S3, and a
/// range this service ignores (malformed, several) may get S3's XML 416: those are served here.
fn s3_answers_alike(range: Option<&str>, if_range: Option<bool>, size: u64) -> bool {
    let Some(range) = range else { return true };
    if_range != Some(true) && matches!(RangeRequest::parse(Some(range), size), RangeRequest::Part { .. })
}

#[utoipa::path(
    operation_id = "download",
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    params(("id" = uuid::Uuid, Path, description = "Release id"), DownloadHeaders),
    responses(
        (status = 200, description = "The image (with download_mode = accel, GET answers empty with X-Accel-Redirect and the nginx in front sends it)", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 302, description = "Redirect to a URL presigned for storage.s3.public_endpoint (download_mode = redirect), for a GET that transfers bytes; HEAD, 304 and 416 are answered here"),
        (status = 304, description = "Not modified"),
        BadInput,
        NeedsToken,
        NotFound,
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
    )
)]
#[get("/v1/firmware/{id}/download")]
pub async fn serve(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    answer(state, caller, req, id).await
}

/// `GET` and `HEAD` alike: actix tells them apart, and only a `GET` gets the bytes.
async fn answer(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let image = find_image(&state, id, caller.0.as_ref()).await?;
    let counter = state.metrics.download_bytes.clone();
    send(&state, &req, &image, &format!("{id}.bin"), counter, |_| {}).await
}

/// Sends a stored object (an image or a patch) as a download: validators, a single range, or
/// the redirect or accel hand-off of `firmware.download_mode`. `counter` counts the bytes sent;
/// `on_whole` is told, for a GET, the status of an answer that reaches the object's last byte.
pub(super) async fn send(
    state: &AppState,
    req: &HttpRequest,
    image: &Image,
    filename: &str,
    counter: prometheus::IntCounter,
    on_whole: impl FnOnce(StatusCode),
) -> Result<HttpResponse, ApiError> {
    let etag = EntityTag::new_strong(image.sha256.clone());
    if if_none_match(req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header(header::ETag(etag))
            .insert_header((header::CACHE_CONTROL, image.cache_control()))
            .finish());
    }
    let wanted = Wanted::of(req, &etag, image.size)?;
    let (status, part) = (wanted.status, wanted.part);
    if req.method() == Method::GET && part.is_none_or(|p| p.end + 1 == image.size) {
        on_whole(status);
    }
    let mode = state.settings.firmware.download_mode;
    if mode == DownloadMode::Redirect
        && req.method() == Method::GET
        && s3_answers_alike(wanted.range_header, wanted.if_range, image.size)
    {
        // Only now, with the bytes to send: HEAD, 304 and 416 were answered above, here.
        let ttl = Duration::from_secs(state.settings.storage.s3.presign_ttl_s);
        let url = state.store.presign_get(&image.key, ttl).await?;
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    }
    let mut response = HttpResponse::build(status);
    image_headers(&mut response, image, etag, filename);
    if mode == DownloadMode::Accel && req.method() == Method::GET {
        // The nginx in front sends the file (sendfile) and applies Range and If-Range itself,
        // against the ETag passed on here (README, "Downloads through nginx"); the checks above
        // (token, release state, 304, 416) are this service's.
        let location = format!("{}{}", state.settings.firmware.accel_location, image.key);
        return Ok(response.status(StatusCode::OK).insert_header(("X-Accel-Redirect", location)).finish());
    }
    if let Some(p) = part {
        response
            .insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{}", p.start, p.end, image.size)));
    }
    let length = part.map_or(image.size, |p| p.len());
    if req.method() == Method::HEAD {
        // actix sends the length of a sized body for HEAD without the body: no need to open it.
        return Ok(response.body(SizedStream::new(
            length,
            futures_util::stream::empty::<Result<bytes::Bytes, ApiError>>(),
        )));
    }
    let stream =
        state.store.open(&image.key, part).await?.inspect_ok(move |chunk| counter.inc_by(chunk.len() as u64));
    Ok(response.body(SizedStream::new(length, stream)))
}

/// What a request asks of the image: all of it, or one range if its `If-Range` still holds.
struct Wanted<'r> {
    status: StatusCode,
    part: Option<ByteRange>,
    range_header: Option<&'r str>,
    /// Whether `If-Range` names this image, if it was sent.
    if_range: Option<bool>,
}

impl<'r> Wanted<'r> {
    /// 416 for a range the image does not reach.
    fn of(req: &'r HttpRequest, etag: &EntityTag, size: u64) -> Result<Self, ApiError> {
        let range_header = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
        // If-Range: resume only if the image is still the one the client started (strong match).
        let if_range = if_range(req, etag);
        let range = match if_range {
            Some(false) => RangeRequest::Whole,
            _ => RangeRequest::parse(range_header, size),
        };
        let (status, part) = match range {
            RangeRequest::Whole => (StatusCode::OK, None),
            RangeRequest::Part { start, end } => {
                (StatusCode::PARTIAL_CONTENT, Some(ByteRange { start, end }))
            }
            RangeRequest::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable(size)),
        };
        Ok(Self { status, part, range_header, if_range })
    }
}

/// The headers of every answer that carries the image (or would, for HEAD and accel).
fn image_headers(response: &mut HttpResponseBuilder, image: &Image, etag: EntityTag, filename: &str) {
    response
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(header::ETag(etag))
        .insert_header((header::CACHE_CONTROL, image.cache_control()))
        .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")));
}

/// `HEAD`: the same headers as `GET`, without opening the image.
#[utoipa::path(
    operation_id = "download_head",
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    params(("id" = uuid::Uuid, Path, description = "Release id"), DownloadHeaders),
    responses(
        (status = 200, description = "The image's headers", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 206, description = "The requested range's headers", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 304, description = "Not modified"),
        BadInput,
        NeedsToken,
        NotFound,
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
    )
)]
#[head("/v1/firmware/{id}/download")]
pub async fn head(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    answer(state, caller, req, id).await
}
