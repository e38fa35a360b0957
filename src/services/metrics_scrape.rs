//! What `GET /metrics` shows: this instance's counters, and gauges the database holds the truth
//! of across instances, read at scrape time.

use sea_orm::{EntityTrait, QuerySelect};

use crate::db::entities::rollout;
use crate::domain::rollout::RolloutState;
use crate::error::ApiError;
use crate::state::AppState;

/// The Prometheus text exposition, with rollouts by state counted now.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
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
    state.metrics.render().map_err(ApiError::internal)
}
