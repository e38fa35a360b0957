//! `admin-firmware`: rollout progress, manual control and the dry-run preview.

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AdminUser;
use crate::domain::rollout::{Command, RolloutState};
use crate::error::ApiError;
use crate::openapi::{BadInput, Conflict, NeedsAdmin, NotFound};
use crate::routes::http::parse_id;
use crate::services::rollouts::{self, Preview, RolloutList, RolloutView};
use crate::state::AppState;

pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(list_rollouts)
        .service(get_rollout)
        .service(preview_rollout)
        .service(pause)
        .service(resume)
        .service(advance)
        .service(abort);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only rollouts in this state.
    #[param(value_type = Option<RolloutState>, nullable = false)]
    state: Option<String>,
    /// Only rollouts of this release.
    #[param(value_type = Option<uuid::Uuid>, nullable = false)]
    firmware_id: Option<String>,
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "Newest first", body = RolloutList), BadInput, NeedsAdmin)
)]
#[get("/v1/admin/rollouts")]
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
    let firmware_id = query
        .firmware_id
        .as_deref()
        .map(|raw| {
            uuid::Uuid::parse_str(raw)
                .map_err(|_| ApiError::field("firmware_id", format!("{raw:?} is not a UUID")))
        })
        .transpose()?;
    Ok(HttpResponse::Ok().json(rollouts::list(&state, filter, firmware_id).await?))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "Progress, counts and the event chain", body = RolloutView),
        BadInput,
        NeedsAdmin,
        NotFound,
    )
)]
#[get("/v1/admin/rollouts/{id}")]
pub async fn get_rollout(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(rollouts::view(&state, parse_id(&id)?).await?))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "Known devices each stage admits", body = Preview),
        BadInput,
        NeedsAdmin,
        NotFound,
    )
)]
#[get("/v1/admin/rollouts/{id}/preview")]
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

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "Paused: the ramp stops, admitted devices stay in", body = RolloutView),
        BadInput,
        NeedsAdmin,
        NotFound,
        Conflict,
    )
)]
#[post("/v1/admin/rollouts/{id}/pause")]
pub async fn pause(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Pause).await
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "Active again (also after a halt)", body = RolloutView),
        BadInput,
        NeedsAdmin,
        NotFound,
        Conflict,
    )
)]
#[post("/v1/admin/rollouts/{id}/resume")]
pub async fn resume(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Resume).await
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "At the next stage, or completed", body = RolloutView),
        BadInput,
        NeedsAdmin,
        NotFound,
        Conflict,
    )
)]
#[post("/v1/admin/rollouts/{id}/advance")]
pub async fn advance(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Advance).await
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id")),
    responses(
        (status = 200, description = "Aborted: offered to no one", body = RolloutView),
        BadInput,
        NeedsAdmin,
        NotFound,
        Conflict,
    )
)]
#[post("/v1/admin/rollouts/{id}/abort")]
pub async fn abort(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    control(&state, &admin, &id, Command::Abort).await
}
