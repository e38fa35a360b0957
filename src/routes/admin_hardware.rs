//! `admin-firmware`: per-hardware anti-rollback floors.

use actix_web::{HttpResponse, web};

use crate::auth::AdminUser;
use crate::domain::HardwareId;
use crate::error::ApiError;
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

async fn get_floor(
    state: web::Data<AppState>,
    _admin: AdminUser,
    hardware: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(floors::get(&state, &parse_hardware(&hardware)?).await?))
}

#[tracing::instrument(skip_all, fields(actor = %admin.0.sub))]
async fn put_floor(
    state: web::Data<AppState>,
    admin: AdminUser,
    hardware: web::Path<String>,
    body: web::Json<FloorRequest>,
) -> Result<HttpResponse, ApiError> {
    let hardware = parse_hardware(&hardware)?;
    Ok(HttpResponse::Ok().json(floors::put(&state, &hardware, body.into_inner(), &admin.0.sub).await?))
}
