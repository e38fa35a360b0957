//! `admin-firmware`: a device as admins see it (owner, hardware, version, channel, latest
//! reports), releasing its owner when a watch is reset or sold, and clearing its retry cut-off.
//! Both changes are recorded in `admin_audit`.

use actix_web::{HttpResponse, web};

use crate::auth::AdminUser;
use crate::domain::DeviceId;
use crate::error::ApiError;
use crate::services::devices;
#[allow(unused_imports)] // named in the OpenAPI annotations
use crate::services::devices::DeviceView;
use crate::state::AppState;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/admin/devices/{device_id}").route(web::get().to(get_device)))
        .service(web::resource("/v1/admin/devices/{device_id}/owner").route(web::delete().to(release_owner)))
        .service(
            web::resource("/v1/admin/devices/{device_id}/failures").route(web::delete().to(clear_failures)),
        );
}

fn parse_device(raw: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(raw).map_err(|e| ApiError::field("device_id", e))
}

#[utoipa::path(get, path = "/v1/admin/devices/{device_id}", tag = "admin-firmware", security(("bearer" = [])), params(("device_id" = String, Path, description = "Device id")), responses((status = 200, description = "The device, its owner and latest reports", body = DeviceView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
pub async fn get_device(
    state: web::Data<AppState>,
    _admin: AdminUser,
    device_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(devices::view(&state, &parse_device(&device_id)?).await?))
}

#[utoipa::path(delete, path = "/v1/admin/devices/{device_id}/owner", tag = "admin-firmware", security(("bearer" = [])), params(("device_id" = String, Path, description = "Device id")), responses((status = 200, description = "Released: the next account to report for it owns it", body = DeviceView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn release_owner(
    state: web::Data<AppState>,
    admin: AdminUser,
    device_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device_id = parse_device(&device_id)?;
    Ok(HttpResponse::Ok().json(devices::release_owner(&state, &device_id, &admin.0.sub).await?))
}

#[utoipa::path(delete, path = "/v1/admin/devices/{device_id}/failures", tag = "admin-firmware", security(("bearer" = [])), params(("device_id" = String, Path, description = "Device id")), responses((status = 200, description = "Cleared: releases it failed are offered to it again", body = DeviceView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn clear_failures(
    state: web::Data<AppState>,
    admin: AdminUser,
    device_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device_id = parse_device(&device_id)?;
    Ok(HttpResponse::Ok().json(devices::clear_failures(&state, &device_id, &admin.0.sub).await?))
}
