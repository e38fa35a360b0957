//! `admin-firmware`: a device as admins see it (owner, hardware, version, channel, latest
//! reports), releasing its owner when a watch is reset or sold, and clearing its retry cut-off.
//! Both changes are recorded in `admin_audit`.

use actix_web::{HttpResponse, delete, get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AdminUser;
use crate::domain::DeviceId;
use crate::error::ApiError;
use crate::openapi::{BadInput, DeviceName, NeedsAdmin, NotFound};
use crate::services::devices::{self, DeviceView};
use crate::state::AppState;

pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(get_device).service(release_owner).service(clear_failures);
}

fn parse_device(raw: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(raw).map_err(|e| ApiError::field("device_id", e))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("device_id" = DeviceName, Path, description = "Device id")),
    responses(
        (status = 200, description = "The device, its owner and latest reports", body = DeviceView),
        BadInput,
        NeedsAdmin,
        NotFound,
    )
)]
#[get("/v1/admin/devices/{device_id}")]
pub async fn get_device(
    state: web::Data<AppState>,
    _admin: AdminUser,
    device_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(devices::view(&state, &parse_device(&device_id)?).await?))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("device_id" = DeviceName, Path, description = "Device id")),
    responses(
        (status = 200, description = "Released: the next account to report for it owns it", body = DeviceView),
        BadInput,
        NeedsAdmin,
        NotFound,
    )
)]
#[delete("/v1/admin/devices/{device_id}/owner")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn release_owner(
    state: web::Data<AppState>,
    admin: AdminUser,
    device_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device_id = parse_device(&device_id)?;
    Ok(HttpResponse::Ok().json(devices::release_owner(&state, &device_id, &admin.0.sub).await?))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("device_id" = DeviceName, Path, description = "Device id")),
    responses(
        (status = 200, description = "Cleared: releases it failed are offered to it again", body = DeviceView),
        BadInput,
        NeedsAdmin,
        NotFound,
    )
)]
#[delete("/v1/admin/devices/{device_id}/failures")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn clear_failures(
    state: web::Data<AppState>,
    admin: AdminUser,
    device_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device_id = parse_device(&device_id)?;
    Ok(HttpResponse::Ok().json(devices::clear_failures(&state, &device_id, &admin.0.sub).await?))
}
