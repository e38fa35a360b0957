//! `admin-firmware`: upload, list, read, edit, delete, publish and revoke releases.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_multipart::{Field, Multipart};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use futures_util::TryStreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AdminUser;
use crate::db::firmware::ListFilter;
use crate::domain::{FirmwareState, HardwareId};
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::openapi::{BadInput, Conflict, HardwareName, JsonBody, NeedsAdmin, NotFound};
use crate::routes::http::parse_id;
use crate::routes::json::Json;
use crate::services::releases::{self, PublishRequest, ReleasePatch, RevokeRequest};
use crate::services::releases::{ReleasePage, ReleaseView};
use crate::services::rollouts::RolloutView;
use crate::services::upload::{self, UploadMetadata, UploadOutcome};
use crate::state::AppState;
use crate::storage::IdleTimeout;
use utoipa_actix_web::service_config::ServiceConfig;

/// The upload's multipart body, as the OpenAPI document describes it: the parts in this order.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes a body; never built
pub struct UploadForm {
    /// JSON, sent first: what the image is.
    metadata: UploadMetadata,
    /// The image.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(upload_release)
        .service(list_releases)
        .service(get_release)
        .service(patch_release)
        .service(delete_release)
        .service(publish_release)
        .service(revoke_release);
}

/// Largest `metadata` part accepted.
const MAX_METADATA_BYTES: usize = 128 * 1024;

/// Room in an upload's `Content-Length` for what is not the image: the metadata part and the
/// multipart framing (boundaries, part headers).
const MULTIPART_ALLOWANCE: u64 = MAX_METADATA_BYTES as u64 + 64 * 1024;

/// A body that announces more than the image limit plus [`MULTIPART_ALLOWANCE`] is 413 before a
/// byte of it is read; one that announces nothing (chunked) is held to the limit as it streams.
fn refuse_announced_oversize(req: &HttpRequest, max_upload_bytes: u64) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(actix_web::http::header::CONTENT_LENGTH) else {
        return Ok(());
    };
    let length: u64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::field("Content-Length", "not a number"))?;
    if length > max_upload_bytes.saturating_add(MULTIPART_ALLOWANCE) {
        return Err(ApiError::PayloadTooLarge(format!(
            "file: the body announces {length} bytes, more than firmware.max_upload_bytes ({max_upload_bytes}) allows"
        )));
    }
    Ok(())
}

/// The next part, if it starts within `idle`.
async fn next_part(multipart: &mut Multipart, idle: Duration) -> Result<Option<Field>, ApiError> {
    tokio::time::timeout(idle, multipart.try_next())
        .await
        .map_err(|_| stalled(idle))?
        .map_err(|e| ApiError::bad_request(format!("body: malformed multipart: {e}")))
}

/// The 408 of an upload whose body stopped for `firmware.upload_idle_timeout_s`.
fn stalled(idle: Duration) -> ApiError {
    ApiError::RequestTimeout(format!("body: nothing received for {} s", idle.as_secs()))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    request_body(
        content = UploadForm,
        content_type = "multipart/form-data",
        description = "The `metadata` part (JSON) first, then the `file` part"
    ),
    responses(
        (status = 201, description = "A new draft release", body = ReleaseView, headers(("Location" = String, description = "The release"))),
        (status = 200, description = "The same version and bytes were uploaded before: that release", body = ReleaseView),
        BadInput,
        NeedsAdmin,
        (status = 408, description = "The body stopped for firmware.upload_idle_timeout_s", body = ErrorBody),
        Conflict,
        (status = 413, description = "Larger than firmware.max_upload_bytes", body = ErrorBody),
    )
)]
#[post("/v1/admin/firmware")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn upload_release(
    state: web::Data<AppState>,
    admin: AdminUser,
    req: HttpRequest,
    mut multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    refuse_announced_oversize(&req, state.settings.firmware.max_upload_bytes)?;
    // Every read of the body waits at most this long for bytes; a stalled upload is a 408 and
    // leaves nothing behind (its staging object is deleted, its multipart upload aborted).
    let idle = Duration::from_secs(state.settings.firmware.upload_idle_timeout_s);
    let mut metadata = match next_part(&mut multipart, idle).await? {
        Some(mut field) if field.name() == Some("metadata") => {
            let bytes = tokio::time::timeout(idle, field.bytes(MAX_METADATA_BYTES))
                .await
                .map_err(|_| stalled(idle))?
                .map_err(|_| {
                    ApiError::field("metadata", format!("must be at most {MAX_METADATA_BYTES} bytes"))
                })?
                .map_err(|e| ApiError::bad_request(format!("body: malformed multipart: {e}")))?;
            crate::routes::json::parse_part::<UploadMetadata>(&bytes, "metadata")?
        }
        Some(field) if field.name() == Some("file") => {
            return Err(ApiError::bad_request("file: arrived before metadata; send the metadata part first"));
        }
        Some(field) => {
            return Err(ApiError::bad_request(format!(
                "body: unexpected part {:?}; expected \"metadata\" then \"file\"",
                field.name().unwrap_or_default()
            )));
        }
        None => return Err(ApiError::bad_request("metadata: missing part")),
    };
    upload::check_metadata(&state, &mut metadata)?;

    let file = match next_part(&mut multipart, idle).await? {
        Some(field) if field.name() == Some("file") => field,
        Some(field) => {
            return Err(ApiError::bad_request(format!(
                "body: unexpected part {:?}; expected \"file\"",
                field.name().unwrap_or_default()
            )));
        }
        None => return Err(ApiError::bad_request("file: missing part")),
    };
    let file = IdleTimeout::new(file, idle);
    let file_stalled = file.stalled();
    let staged = match state.store.put_staging(file, state.settings.firmware.max_upload_bytes).await {
        Err(_) if file_stalled.load(Ordering::Relaxed) => return Err(stalled(idle)),
        staged => staged?,
    };
    state.metrics.upload_bytes.inc_by(staged.size);
    if let Some(extra) = next_part(&mut multipart, idle).await.transpose() {
        state.store.delete(&staged.key).await.ok();
        let name = extra.ok().and_then(|f| f.name().map(str::to_owned)).unwrap_or_default();
        return Err(ApiError::bad_request(format!("body: unexpected part {name:?} after file")));
    }
    let (outcome, release) = upload::commit(&state, metadata, staged, &admin.0.sub).await?;
    tracing::info!(firmware_id = %release.release.id, version = %release.release.version, ?outcome, "upload");
    Ok(match outcome {
        UploadOutcome::Created => HttpResponse::Created()
            .insert_header(("Location", format!("/v1/admin/firmware/{}", release.release.id)))
            .json(release),
        UploadOutcome::AlreadyExists => HttpResponse::Ok().json(release),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only releases for this hardware id.
    #[param(value_type = Option<HardwareName>, nullable = false)]
    hardware: Option<String>,
    /// Only releases in this state.
    #[param(value_type = Option<FirmwareState>, nullable = false)]
    state: Option<String>,
    /// From 1.
    #[param(minimum = 1, maximum = 1_000_000, nullable = false)]
    page: Option<u64>,
    /// Default 50.
    #[param(minimum = 1, maximum = 200, nullable = false)]
    per_page: Option<u64>,
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "Newest first", body = ReleasePage), BadInput, NeedsAdmin)
)]
#[get("/v1/admin/firmware")]
pub async fn list_releases(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let hardware = query
        .hardware
        .map(|h| HardwareId::parse(&h).map(|h| h.to_string()))
        .transpose()
        .map_err(|e| ApiError::field("hardware", e))?;
    let firmware_state =
        query.state.map(|s| FirmwareState::parse(&s)).transpose().map_err(|e| ApiError::field("state", e))?;
    let page = query.page.unwrap_or(1);
    if page == 0 || page > 1_000_000 {
        return Err(ApiError::field("page", "must be between 1 and 1000000"));
    }
    let per_page = query.per_page.unwrap_or(50);
    if !(1..=200).contains(&per_page) {
        return Err(ApiError::field("per_page", "must be between 1 and 200"));
    }
    let filter = ListFilter { hardware, state: firmware_state };
    Ok(HttpResponse::Ok().json(releases::list(&state, &filter, page, per_page).await?))
}

#[utoipa::path(
    operation_id = "admin_get_release",
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    responses((status = 200, description = "The release", body = ReleaseView), BadInput, NeedsAdmin, NotFound)
)]
#[get("/v1/admin/firmware/{id}")]
pub async fn get_release(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(releases::view(&state, parse_id(&id)?).await?))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    request_body = ReleasePatch,
    responses(
        (status = 200, description = "The edited release", body = ReleaseView),
        BadInput,
        NeedsAdmin,
        NotFound,
        Conflict,
        JsonBody,
    )
)]
#[patch("/v1/admin/firmware/{id}")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn patch_release(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
    body: Json<ReleasePatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(releases::patch(&state, parse_id(&id)?, body.into_inner()).await?))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    responses((status = 204, description = "Deleted"), BadInput, NeedsAdmin, NotFound, Conflict)
)]
#[delete("/v1/admin/firmware/{id}")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn delete_release(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    releases::delete_draft(&state, parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    request_body = PublishRequest,
    responses(
        (status = 201, description = "The new rollout", body = RolloutView, headers(("Location" = String, description = "The rollout"))),
        BadInput,
        NeedsAdmin,
        NotFound,
        Conflict,
        JsonBody,
    )
)]
#[post("/v1/admin/firmware/{id}/publish")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn publish_release(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
    body: Json<PublishRequest>,
) -> Result<HttpResponse, ApiError> {
    let rollout = releases::publish(&state, parse_id(&id)?, body.into_inner(), &admin.0.sub).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/admin/rollouts/{}", rollout.rollout.id)))
        .json(rollout))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    request_body = RevokeRequest,
    responses(
        (status = 200, description = "The revoked release", body = ReleaseView),
        BadInput,
        NeedsAdmin,
        NotFound,
        Conflict,
        JsonBody,
    )
)]
#[post("/v1/admin/firmware/{id}/revoke")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn revoke_release(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
    body: Json<RevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .json(releases::revoke(&state, parse_id(&id)?, body.into_inner(), &admin.0.sub).await?))
}
