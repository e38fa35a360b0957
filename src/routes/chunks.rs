//! `GET`/`HEAD /v1/firmware/{id}/chunks`: the release's chunk table (32 bytes a chunk, the
//! SHA-256 of each `chunk_size` bytes of the image; `nowatch_ota_core::chunks`), which its
//! manifests sign, served like the image (`routes::download`): single ranges, a strong ETag (the
//! table's SHA-256), If-Range, and the redirect or accel hand-off. Who may fetch it: whoever may
//! download the release.

use actix_web::{HttpRequest, HttpResponse, get, head, web};

use crate::auth::OptionalCaller;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::{BadInput, DownloadHeaders, NeedsToken, NotFound};
use crate::routes::download::send;
use crate::routes::http::parse_id;
use crate::services::downloads::find_chunk_table;
use crate::state::AppState;

#[utoipa::path(
    operation_id = "chunk_table",
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    params(("id" = uuid::Uuid, Path, description = "Release id"), DownloadHeaders),
    responses(
        (status = 200, description = "The chunk table: the SHA-256 (32 raw bytes) of each chunk_size bytes of the image, in order; its SHA-256 is the manifest's chunk_table_sha256 (download_mode = accel: empty, with X-Accel-Redirect)", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 302, description = "Redirect to a presigned URL (download_mode = redirect)"),
        (status = 304, description = "Not modified"),
        BadInput,
        NeedsToken,
        NotFound,
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
    )
)]
#[get("/v1/firmware/{id}/chunks")]
pub async fn serve(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    answer(state, caller, req, id).await
}

#[utoipa::path(
    operation_id = "chunk_table_head",
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    params(("id" = uuid::Uuid, Path, description = "Release id"), DownloadHeaders),
    responses(
        (status = 200, description = "The chunk table's headers", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 206, description = "The requested range's headers", content_type = "application/octet-stream", body = crate::openapi::Image),
        (status = 304, description = "Not modified"),
        BadInput,
        NeedsToken,
        NotFound,
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
    )
)]
#[head("/v1/firmware/{id}/chunks")]
pub async fn head(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    answer(state, caller, req, id).await
}

async fn answer(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let table = find_chunk_table(&state, id, caller.0.as_ref()).await?;
    let counter = state.metrics.download_bytes.clone();
    send(&state, &req, &table, &format!("{id}.chunks"), counter, |_| {}).await
}
