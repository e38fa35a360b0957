//! `/healthz` (the process answers) and `/readyz` (the database and blob store answer).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(healthz)))
        .service(web::resource("/readyz").route(web::get().to(readyz)));
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process answers", body = Object)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Database and blob store answer", body = Object), (status = 503, description = "Not ready", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut problems = Vec::new();
    if let Err(e) = crate::db::ping(&state.db).await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        problems.push("database unreachable".to_owned());
    }
    if let Err(e) = state.store.check().await {
        tracing::warn!(error = %e, "readiness: blob storage unreachable");
        problems.push(format!("{} blob storage unreachable", state.store.backend_name()));
    }
    if problems.is_empty() {
        Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": "ok", "storage": "ok"})))
    } else {
        Err(ApiError::ServiceUnavailable(problems.join("; ")))
    }
}
