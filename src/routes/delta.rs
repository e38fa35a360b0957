//! `GET`/`HEAD /v1/firmware/{id}/delta/{from_sha256}`: a patch to release `id` from the image
//! with that digest, served like the image (`routes::download`): single ranges, a strong ETag
//! (the patch's SHA-256), If-Range, and the redirect or accel hand-off.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, head, web};

use crate::auth::OptionalCaller;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::{BadInput, DownloadHeaders, NeedsToken, NotFound};
use crate::routes::download::send;
use crate::routes::http::parse_id;
use crate::services::downloads::find_delta;
use crate::state::AppState;

#[utoipa::path(
    operation_id = "download_delta",
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    params(
        ("id" = uuid::Uuid, Path, description = "Release id"),
        ("from_sha256" = String, Path, description = "SHA-256 of the image the device runs", pattern = "^[0-9a-fA-F]{64}$"),
        DownloadHeaders,
    ),
    responses(
        (status = 200, description = "The patch (download_mode = accel: empty, with X-Accel-Redirect)", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 302, description = "Redirect to a presigned URL (download_mode = redirect)"),
        (status = 304, description = "Not modified"),
        BadInput,
        NeedsToken,
        NotFound,
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
    )
)]
#[get("/v1/firmware/{id}/delta/{from_sha256}")]
pub async fn serve(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    answer(state, caller, req, path).await
}

#[utoipa::path(
    operation_id = "download_delta_head",
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    params(
        ("id" = uuid::Uuid, Path, description = "Release id"),
        ("from_sha256" = String, Path, description = "SHA-256 of the image the device runs", pattern = "^[0-9a-fA-F]{64}$"),
        DownloadHeaders,
    ),
    responses(
        (status = 200, description = "The patch's headers", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 206, description = "The requested range's headers", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 304, description = "Not modified"),
        BadInput,
        NeedsToken,
        NotFound,
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
    )
)]
#[head("/v1/firmware/{id}/delta/{from_sha256}")]
pub async fn head(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    answer(state, caller, req, path).await
}

async fn answer(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, from) = path.into_inner();
    let id = parse_id(&id)?;
    let (patch, full_size) = find_delta(&state, id, &from, caller.0.as_ref()).await?;
    let filename = format!("{id}-from-{}.patch", from.get(..12).unwrap_or_default().to_ascii_lowercase());
    let saved = state.metrics.delta_bytes_saved.clone();
    let patch_size = patch.size;
    send(&state, &req, &patch, &filename, state.metrics.delta_download_bytes.clone(), move |status| {
        if status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT {
            saved.inc_by(full_size.saturating_sub(patch_size));
        }
    })
    .await
}
