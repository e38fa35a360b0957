//! `admin-firmware`: rollout progress, manual control and the dry-run preview.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::AdminUser;
use crate::domain::rollout::{Command, RolloutState};
use crate::error::ApiError;
use crate::routes::http::parse_id;
use crate::services::rollouts;
#[allow(unused_imports)] // named in the OpenAPI annotations
use crate::services::rollouts::{Preview, RolloutList, RolloutView};
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
pub struct ListQuery {
    state: Option<String>,
}

#[utoipa::path(get, path = "/v1/admin/rollouts", tag = "admin-firmware", security(("bearer" = [])), params(("state" = Option<String>, Query, description = "active, paused, halted, completed or aborted")), responses((status = 200, description = "Newest first", body = RolloutList), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody)))]
pub async fn list_rollouts(
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
    Ok(HttpResponse::Ok().json(rollouts::list(&state, filter).await?))
}

#[utoipa::path(get, path = "/v1/admin/rollouts/{id}", tag = "admin-firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Rollout id")), responses((status = 200, description = "Progress, counts and the event chain", body = RolloutView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
pub async fn get_rollout(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(rollouts::view(&state, parse_id(&id)?).await?))
}

#[utoipa::path(get, path = "/v1/admin/rollouts/{id}/preview", tag = "admin-firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Rollout id")), responses((status = 200, description = "Known devices each stage admits", body = Preview), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
pub async fn preview_rollout(
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
    tracing::info!(actor = %crate::telemetry::escaped(&admin.0.sub), rollout_id = %id, ?command, "rollout control");
    Ok(HttpResponse::Ok().json(rollouts::control(state, parse_id(id)?, command, &admin.0.sub).await?))
}

#[utoipa::path(post, path = "/v1/admin/rollouts/{id}/pause", tag = "admin-firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Rollout id")), responses((status = 200, description = "Paused: the ramp stops, admitted devices stay in", body = RolloutView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody), (status = 409, description = "Conflicts with the current state", body = crate::error::ErrorBody)))]
pub async fn pause(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Pause).await
}

#[utoipa::path(post, path = "/v1/admin/rollouts/{id}/resume", tag = "admin-firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Rollout id")), responses((status = 200, description = "Active again (also after a halt)", body = RolloutView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody), (status = 409, description = "Conflicts with the current state", body = crate::error::ErrorBody)))]
pub async fn resume(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Resume).await
}

#[utoipa::path(post, path = "/v1/admin/rollouts/{id}/advance", tag = "admin-firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Rollout id")), responses((status = 200, description = "At the next stage, or completed", body = RolloutView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody), (status = 409, description = "Conflicts with the current state", body = crate::error::ErrorBody)))]
pub async fn advance(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Advance).await
}

#[utoipa::path(post, path = "/v1/admin/rollouts/{id}/abort", tag = "admin-firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Rollout id")), responses((status = 200, description = "Aborted: offered to no one", body = RolloutView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "Not an admin", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody), (status = 409, description = "Conflicts with the current state", body = crate::error::ErrorBody)))]
pub async fn abort(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Abort).await
}
