//! `admin-firmware`: per-hardware anti-rollback floors.

use actix_web::{HttpResponse, web};

use crate::auth::AdminUser;
use crate::domain::HardwareId;
use crate::error::ApiError;
#[allow(unused_imports)] // named in the OpenAPI annotations
use crate::services::floors::FloorView;
use crate::services::floors::{self, FloorRequest};
use crate::state::AppState;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/admin/hardware/{hardware}/floor")
            .route(web::get().to(get_floor))
            .route(web::put().to(put_floor)),
    );
}

fn parse_hardware(raw: &str) -> Result<HardwareId, ApiError> {
    HardwareId::parse(raw).map_err(|e| ApiError::field("hardware", e))
}

#[utoipa::path(get, path = "/v1/admin/hardware/{hardware}/floor", tag = "admin-firmware", security(("bearer" = [])), params(("hardware" = String, Path, description = "Hardware id")), responses((status = 200, description = "The floor (min_version null when none)", body = FloorView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody)))]
pub async fn get_floor(
    state: web::Data<AppState>,
    _admin: AdminUser,
    hardware: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(floors::get(&state, &parse_hardware(&hardware)?).await?))
}

#[utoipa::path(put, path = "/v1/admin/hardware/{hardware}/floor", tag = "admin-firmware", security(("bearer" = [])), params(("hardware" = String, Path, description = "Hardware id")), request_body = FloorRequest, responses((status = 200, description = "The new floor", body = FloorView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn put_floor(
    state: web::Data<AppState>,
    admin: AdminUser,
    hardware: web::Path<String>,
    body: web::Json<FloorRequest>,
) -> Result<HttpResponse, ApiError> {
    let hardware = parse_hardware(&hardware)?;
    Ok(HttpResponse::Ok().json(floors::put(&state, &hardware, body.into_inner(), &admin.0.sub).await?))
}
