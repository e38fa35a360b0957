//! `admin-firmware`: rollout progress, manual control and the dry-run preview.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::AdminUser;
use crate::domain::rollout::{Command, RolloutState};
use crate::error::ApiError;
use crate::routes::admin_firmware::parse_id;
use crate::services::rollouts;
use crate::state::AppState;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/admin/rollouts").route(web::get().to(list_rollouts)))
        .service(web::resource("/v1/admin/rollouts/{id}").route(web::get().to(get_rollout)))
        .service(web::resource("/v1/admin/rollouts/{id}/preview").route(web::get().to(preview_rollout)))
        .service(web::resource("/v1/admin/rollouts/{id}/pause").route(web::post().to(pause)))
        .service(web::resource("/v1/admin/rollouts/{id}/resume").route(web::post().to(resume)))
        .service(web::resource("/v1/admin/rollouts/{id}/advance").route(web::post().to(advance)))
        .service(web::resource("/v1/admin/rollouts/{id}/abort").route(web::post().to(abort)));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
}

async fn list_rollouts(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query
        .state
        .as_deref()
        .map(RolloutState::parse)
        .transpose()
        .map_err(|e| ApiError::field("state", e))?;
    let items = rollouts::list(&state, filter).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"total": items.len(), "items": items})))
}

async fn get_rollout(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(rollouts::view(&state, parse_id(&id)?).await?))
}

async fn preview_rollout(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(rollouts::preview(&state, parse_id(&id)?).await?))
}

async fn control(
    state: &AppState,
    admin: &AdminUser,
    id: &str,
    command: Command,
) -> Result<HttpResponse, ApiError> {
    tracing::info!(actor = %admin.0.sub, rollout_id = %id, ?command, "rollout control");
    Ok(HttpResponse::Ok().json(rollouts::control(state, parse_id(id)?, command, &admin.0.sub).await?))
}

async fn pause(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Pause).await
}

async fn resume(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Resume).await
}

async fn advance(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Advance).await
}

async fn abort(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Abort).await
}
