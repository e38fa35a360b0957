//! `GET /metrics`: Prometheus text format.

use actix_web::{HttpResponse, web};
use sea_orm::{EntityTrait, QuerySelect};

use crate::db::entities::rollout;
use crate::domain::rollout::RolloutState;
use crate::error::ApiError;
use crate::state::AppState;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(metrics)));
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Rollout states are read at scrape time: the database is the truth across instances.
    let rows: Vec<(String, i64)> = rollout::Entity::find()
        .select_only()
        .column(rollout::Column::State)
        .column_as(sea_orm::sea_query::Expr::cust("COUNT(*)"), "n")
        .group_by(rollout::Column::State)
        .into_tuple()
        .all(&state.db)
        .await?;
    for s in RolloutState::ALL {
        let n = rows.iter().find(|(name, _)| name == s.as_str()).map_or(0, |(_, n)| *n);
        state.metrics.rollouts.with_label_values(&[s.as_str()]).set(n);
    }
    let body = state.metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body))
}
