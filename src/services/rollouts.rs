//! Rollouts: their view (state, stage, percent, report counts, failure rate, event chain) and
//! the state transitions every caller goes through, each recorded as an event.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, Set,
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::db::entities::{device_report, rollout, rollout_event};
use crate::db::rollout_events;
use crate::domain::ReportStatus;
use crate::domain::rollout::{RolloutState, Stages};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct EventView {
    pub seq: i32,
    pub actor: String,
    pub kind: String,
    pub detail: Value,
    pub created_at: DateTime<Utc>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<rollout_event::Model> for EventView {
    fn from(e: rollout_event::Model) -> Self {
        Self {
            seq: e.seq,
            actor: e.actor,
            kind: e.kind,
            detail: e.detail,
            created_at: e.created_at,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RolloutView {
    pub id: Uuid,
    pub firmware_id: Uuid,
    pub channel: String,
    pub state: String,
    pub stage: i32,
    pub percent: f64,
    pub stages: Value,
    pub salt: String,
    pub max_failure_rate: f64,
    pub min_reports: i64,
    /// Devices by their latest status for this rollout's release.
    pub counts: BTreeMap<String, u64>,
    /// `failed / (installed + failed)`, or null before any outcome.
    pub failure_rate: Option<f64>,
    pub chain_valid: bool,
    pub events: Vec<EventView>,
    pub created_by: String,
    pub stage_started_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The share a rollout admits now, in basis points: its current stage's, whatever its state.
/// Unreadable stages admit no one.
pub fn current_basis_points(row: &rollout::Model) -> u32 {
    Stages::from_json(&row.stages)
        .ok()
        .and_then(|s| s.as_slice().get(row.current_stage as usize).map(|stage| stage.basis_points))
        .unwrap_or(0)
}

/// The percent a rollout admits now.
pub fn current_percent(row: &rollout::Model) -> f64 {
    f64::from(current_basis_points(row)) / 100.0
}

/// Report counts by status for a rollout.
pub async fn counts(db: &impl ConnectionTrait, rollout_id: Uuid) -> Result<BTreeMap<String, u64>, DbErr> {
    let rows: Vec<(String, i64)> = device_report::Entity::find()
        .select_only()
        .column(device_report::Column::Status)
        .column_as(device_report::Column::DeviceId.count(), "n")
        .filter(device_report::Column::RolloutId.eq(rollout_id))
        .group_by(device_report::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let mut counts: BTreeMap<String, u64> =
        ReportStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    for (status, n) in rows {
        counts.insert(status, n.max(0) as u64);
    }
    Ok(counts)
}

/// `failed / (installed + failed)`.
pub fn failure_rate(counts: &BTreeMap<String, u64>) -> Option<f64> {
    let failed = counts.get("failed").copied().unwrap_or(0);
    let installed = counts.get("installed").copied().unwrap_or(0);
    let outcomes = failed + installed;
    (outcomes > 0).then(|| failed as f64 / outcomes as f64)
}

pub async fn view(state: &AppState, id: Uuid) -> Result<RolloutView, ApiError> {
    let row = rollout::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("rollout {id} not found")))?;
    let counts = counts(&state.db, id).await?;
    let events = rollout_events::list(&state.db, id).await?;
    Ok(RolloutView {
        id: row.id,
        firmware_id: row.firmware_id,
        channel: row.channel.clone(),
        state: row.state.clone(),
        stage: row.current_stage,
        percent: current_percent(&row),
        stages: row.stages.clone(),
        salt: row.salt.clone(),
        max_failure_rate: row.max_failure_rate,
        min_reports: row.min_reports,
        failure_rate: failure_rate(&counts),
        counts,
        chain_valid: rollout_events::verify_chain(&events).is_ok(),
        events: events.into_iter().map(EventView::from).collect(),
        created_by: row.created_by,
        stage_started_at: row.stage_started_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// The rollout of a release on a channel that is not aborted, if any.
pub async fn on_channel(
    db: &impl ConnectionTrait,
    firmware_id: Uuid,
    channel: &str,
) -> Result<Option<rollout::Model>, DbErr> {
    rollout::Entity::find()
        .filter(rollout::Column::FirmwareId.eq(firmware_id))
        .filter(rollout::Column::Channel.eq(channel))
        .filter(rollout::Column::State.ne(RolloutState::Aborted.as_str()))
        .one(db)
        .await
}

/// A release's rollouts that are still active, paused or halted.
pub async fn live_for_firmware(
    db: &impl ConnectionTrait,
    firmware_id: Uuid,
) -> Result<Vec<rollout::Model>, DbErr> {
    let live: Vec<&str> = RolloutState::ALL.iter().filter(|s| s.is_live()).map(|s| s.as_str()).collect();
    rollout::Entity::find()
        .filter(rollout::Column::FirmwareId.eq(firmware_id))
        .filter(rollout::Column::State.is_in(live))
        .all(db)
        .await
}

/// Moves a rollout to `to` and records the event; call inside the caller's transaction.
pub async fn transition(
    db: &impl ConnectionTrait,
    row: rollout::Model,
    to: RolloutState,
    actor: &str,
    kind: &str,
    detail: Value,
    now: DateTime<Utc>,
) -> Result<rollout::Model, DbErr> {
    let id = row.id;
    let mut active = row.into_active_model();
    active.state = Set(to.as_str().to_owned());
    active.updated_at = Set(now);
    let updated = active.update(db).await?;
    rollout_events::append(db, id, actor, kind, detail, now).await?;
    Ok(updated)
}
