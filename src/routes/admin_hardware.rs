//! `admin-firmware`: per-hardware anti-rollback floors.

use actix_web::{HttpResponse, get, put, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AdminUser;
use crate::domain::HardwareId;
use crate::error::ApiError;
use crate::openapi::{BadInput, HardwareName, JsonBody, NeedsAdmin};
use crate::routes::json::Json;
use crate::services::floors::{self, FloorRequest, FloorView};
use crate::state::AppState;

pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(get_floor).service(put_floor);
}

fn parse_hardware(raw: &str) -> Result<HardwareId, ApiError> {
    HardwareId::parse(raw).map_err(|e| ApiError::field("hardware", e))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("hardware" = HardwareName, Path, description = "Hardware id")),
    responses(
        (status = 200, description = "The floor (min_version null when none)", body = FloorView),
        BadInput,
        NeedsAdmin,
    )
)]
#[get("/v1/admin/hardware/{hardware}/floor")]
pub async fn get_floor(
    state: web::Data<AppState>,
    _admin: AdminUser,
    hardware: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(floors::get(&state, &parse_hardware(&hardware)?).await?))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("hardware" = HardwareName, Path, description = "Hardware id")),
    request_body = FloorRequest,
    responses((status = 200, description = "The new floor", body = FloorView), BadInput, NeedsAdmin, JsonBody)
)]
#[put("/v1/admin/hardware/{hardware}/floor")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn put_floor(
    state: web::Data<AppState>,
    admin: AdminUser,
    hardware: web::Path<String>,
    body: Json<FloorRequest>,
) -> Result<HttpResponse, ApiError> {
    let hardware = parse_hardware(&hardware)?;
    Ok(HttpResponse::Ok().json(floors::put(&state, &hardware, body.into_inner(), &admin.0.sub).await?))
}
