//! `admin-firmware`: upload, list, read, edit, delete, publish and revoke releases.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
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
use crate::routes::upload_form::{UploadParts, refuse_announced_oversize};
use crate::services::releases::{self, PublishRequest, ReleasePatch, RevokeRequest};
use crate::services::releases::{ReleasePage, ReleaseView};
use crate::services::rollouts::RolloutView;
use crate::services::upload::{self, UploadMetadata, UploadOutcome};
use crate::state::AppState;
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
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let limit = state.settings.firmware.max_upload_bytes;
    refuse_announced_oversize(&req, limit)?;
    // Every read of the body waits at most this long for bytes; a stalled upload is a 408 and
    // leaves nothing behind (its staging object is deleted, its multipart upload aborted).
    let mut form = UploadParts::new(multipart, state.settings.firmware.upload_idle_timeout_s);
    let mut metadata = form.metadata().await?;
    upload::check_metadata(&state, &mut metadata)?;
    let staged = form.file_into(&state.store, limit).await?;
    state.metrics.upload_bytes.inc_by(staged.size);
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
