//! `GET /v1/admin/rollouts/{id}/timeline`: a rollout's reports over time, for the release
//! console's chart.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::openapi::{BadInput, NeedsAdmin, NotFound};
use crate::routes::http::parse_id;
use crate::services::timeline::{self, MAX_STEP_S, Timeline};
use crate::state::AppState;

pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(get_timeline);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// Seconds per interval; at most 1000 intervals since the rollout started (a smaller step
    /// is 400). Default: a minute, or what keeps it within 1000 intervals.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 86400, nullable = false)]
    step: Option<String>,
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Rollout id"), TimelineQuery),
    responses(
        (status = 200, description = "Report counts by status per interval, the failure rate and the stages' entry times", body = Timeline),
        BadInput,
        NeedsAdmin,
        NotFound,
    )
)]
#[get("/v1/admin/rollouts/{id}/timeline")]
pub async fn get_timeline(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let step = query
        .step
        .as_deref()
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::field("step", format!("must be a whole number of seconds from 1 to {MAX_STEP_S}"))
            })
        })
        .transpose()?;
    Ok(HttpResponse::Ok().json(timeline::timeline(&state, id, step).await?))
}
