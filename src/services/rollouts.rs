//! Rollouts: their view (state, stage, percent, report counts, failure rate, event chain) and
//! the state transitions every caller goes through, each recorded as an event.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::db::entities::{
    device, device_report, rollout, rollout_event, rollout_report_count, rollout_uncounted_count,
};
use crate::db::rollout_events;
use crate::domain::rollout::{Command, EventKind, Outcomes, Position, RolloutState, Stages, apply, bucket};
use crate::domain::{DeviceId, DownloadVia, ReportStatus};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub seq: i32,
    pub actor: String,
    pub kind: EventKind,
    #[schema(value_type = Object)]
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutView {
    /// What the list shows of it.
    #[serde(flatten)]
    pub rollout: RolloutSummary,
    /// As published: `[{percent, min_duration_s}]`.
    #[schema(value_type = Vec<crate::domain::rollout::StageInput>)]
    pub stages: Value,
    pub salt: String,
    pub max_failure_rate: f64,
    pub min_reports: i64,
    /// Devices whose outcomes count towards its health, by their latest status for the release.
    pub counts: BTreeMap<String, u64>,
    /// Devices whose reports are kept but do not count (not admitted when they first reported,
    /// from a version the release could not be offered to, or past their account's
    /// `rollout.max_devices_per_owner`), by status.
    pub uncounted: BTreeMap<String, u64>,
    /// `failed / (installed + failed)`, or null before any outcome.
    pub failure_rate: Option<f64>,
    /// Devices attributed to it by how they said they fetched the release.
    pub downloads: Downloads,
    /// Its devices whose phone relays the update to the watch.
    pub relay: crate::services::relay_sums::RelaySums,
    pub chain_valid: bool,
    /// Why this rollout cannot be evaluated (stored data it cannot read), if it cannot: the
    /// engine skips it and leaves it where it is; pause and abort still work.
    pub problem: Option<String>,
    pub events: Vec<EventView>,
    pub created_by: String,
    pub stage_started_at: DateTime<Utc>,
}

/// Devices of a rollout by the `via` of their reports.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Downloads {
    /// Took the patch from the version they ran.
    pub delta: u64,
    /// Took the whole image.
    pub full: u64,
}

/// How the devices attributed to rollout `id` said they fetched the release.
async fn downloads(db: &impl ConnectionTrait, id: Uuid) -> Result<Downloads, DbErr> {
    use crate::db::entities::device_report::Column;
    use sea_orm::QuerySelect;
    let rows: Vec<(Option<DownloadVia>, i64)> = device_report::Entity::find()
        .select_only()
        .column(Column::Via)
        .column_as(Column::DeviceId.count(), "devices")
        .filter(Column::RolloutId.eq(id))
        .filter(Column::Via.is_not_null())
        .group_by(Column::Via)
        .into_tuple()
        .all(db)
        .await?;
    let mut downloads = Downloads::default();
    for (via, devices) in rows {
        let devices = u64::try_from(devices).unwrap_or_default();
        match via {
            Some(DownloadVia::Delta) => downloads.delta = devices,
            Some(DownloadVia::Full) => downloads.full = devices,
            None => {}
        }
    }
    Ok(downloads)
}

/// The percent a rollout admits now.
pub fn current_percent(row: &rollout::Model) -> f64 {
    f64::from(row.current_basis_points()) / 100.0
}

fn by_status(rows: impl IntoIterator<Item = (String, i64)>) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> =
        ReportStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    for (status, devices) in rows {
        counts.insert(status, devices.max(0) as u64);
    }
    counts
}

/// Report counts by status for a rollout: the devices whose latest report on this release is
/// attributed to it and counts towards its health, from the counters
/// `services::reports::record` keeps.
pub async fn counts(db: &impl ConnectionTrait, rollout_id: Uuid) -> Result<BTreeMap<String, u64>, DbErr> {
    let rows = rollout_report_count::Entity::find()
        .filter(rollout_report_count::Column::RolloutId.eq(rollout_id))
        .all(db)
        .await?;
    Ok(by_status(rows.into_iter().map(|r| (r.status, r.devices))))
}

/// The same for the devices it keeps apart.
pub async fn uncounted(db: &impl ConnectionTrait, rollout_id: Uuid) -> Result<BTreeMap<String, u64>, DbErr> {
    let rows = rollout_uncounted_count::Entity::find()
        .filter(rollout_uncounted_count::Column::RolloutId.eq(rollout_id))
        .all(db)
        .await?;
    Ok(by_status(rows.into_iter().map(|r| (r.status, r.devices))))
}

/// The health figures in a rollout's per-status counts (see [`Outcomes::failure_rate`]).
pub fn outcomes(counts: &BTreeMap<String, u64>) -> Outcomes {
    let of = |status: ReportStatus| counts.get(status.as_str()).copied().unwrap_or(0);
    Outcomes { installed: of(ReportStatus::Installed), failed: of(ReportStatus::Failed) }
}

fn rollout_not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("rollout {id} not found"))
}

/// A rollout row, or 404.
async fn load(db: &impl ConnectionTrait, id: Uuid) -> Result<rollout::Model, ApiError> {
    rollout::Entity::find_by_id(id).one(db).await?.ok_or_else(|| rollout_not_found(id))
}

/// A rollout row, locked until the transaction ends (`SELECT ... FOR NO KEY UPDATE` on
/// PostgreSQL; SQLite's write transactions are serialised already): every transition is decided
/// on the latest committed state, and a concurrent one waits and then decides on this one's
/// result. `NO KEY UPDATE`, the lock an UPDATE itself takes, excludes every other transition but
/// not the foreign-key checks of rows that point at this one (events, reports), which `FOR UPDATE`
/// would block and turn into deadlocks.
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<rollout::Model>, DbErr> {
    rollout::Entity::find_by_id(id).lock(LockType::NoKeyUpdate).one(db).await
}

/// Why a rollout's stored stages cannot be read, if they cannot.
pub fn problem(row: &rollout::Model) -> Option<String> {
    Stages::from_json(&row.stages).err().map(|e| format!("cannot be evaluated: {e}"))
}

pub async fn view(state: &AppState, id: Uuid) -> Result<RolloutView, ApiError> {
    // One snapshot: an event appended between reading the row (whose `event_count` and
    // `chain_head` anchor the chain) and reading the events would make `chain_valid` false.
    let txn = crate::db::begin_snapshot(&state.db).await?;
    let row = load(&txn, id).await?;
    let counts = counts(&txn, id).await?;
    let uncounted = uncounted(&txn, id).await?;
    let downloads = downloads(&txn, id).await?;
    let relay = crate::services::relay_sums::of_rollout(&txn, id).await?;
    let events = rollout_events::list(&txn, id).await?;
    txn.commit().await?;
    Ok(RolloutView {
        rollout: RolloutSummary::new(&row),
        stages: row.stages.clone(),
        salt: row.salt.clone(),
        max_failure_rate: row.max_failure_rate,
        min_reports: row.min_reports,
        failure_rate: outcomes(&counts).failure_rate(),
        downloads,
        relay,
        counts,
        uncounted,
        chain_valid: rollout_events::verify_chain(&events, &row).is_ok(),
        problem: problem(&row),
        events: events.into_iter().map(EventView::from).collect(),
        created_by: row.created_by.clone(),
        stage_started_at: row.stage_started_at,
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
        .filter(rollout::Column::State.ne(RolloutState::Aborted))
        .one(db)
        .await
}

/// A release's rollouts that are still active, paused or halted, locked (in id order, so two
/// callers cannot deadlock) until the transaction ends.
pub async fn live_for_firmware(
    db: &impl ConnectionTrait,
    firmware_id: Uuid,
) -> Result<Vec<rollout::Model>, DbErr> {
    let live: Vec<&str> = RolloutState::ALL.iter().filter(|s| s.is_live()).map(|s| s.as_str()).collect();
    rollout::Entity::find()
        .filter(rollout::Column::FirmwareId.eq(firmware_id))
        .filter(rollout::Column::State.is_in(live))
        .order_by_asc(rollout::Column::Id)
        .lock(LockType::NoKeyUpdate)
        .all(db)
        .await
}

/// Moves a rollout to `to` and records the event; call inside the caller's transaction.
pub async fn transition(
    db: &impl ConnectionTrait,
    row: rollout::Model,
    to: RolloutState,
    actor: &str,
    kind: EventKind,
    detail: Value,
    now: DateTime<Utc>,
) -> Result<rollout::Model, DbErr> {
    let to = Position { state: to, stage: usize::try_from(row.current_stage).unwrap_or(0) };
    move_to(db, row, to, actor, kind, detail, now).await
}

/// Moves a rollout to a new position (state and stage) and records the event with the figures
/// of the move; a new stage or a resume starts the stage clock again.
pub async fn move_to(
    db: &impl ConnectionTrait,
    row: rollout::Model,
    to: Position,
    actor: &str,
    kind: EventKind,
    mut detail: Value,
    now: DateTime<Utc>,
) -> Result<rollout::Model, DbErr> {
    let id = row.id;
    let from_stage = row.current_stage;
    let to_stage = i32::try_from(to.stage).unwrap_or(i32::MAX);
    if let Value::Object(fields) = &mut detail {
        fields.insert("from_state".into(), row.state.as_str().into());
        fields.insert("to_state".into(), to.state.as_str().into());
        fields.insert("from_stage".into(), from_stage.into());
        fields.insert("to_stage".into(), to_stage.into());
    }
    let restart_clock =
        to_stage != from_stage || (to.state == RolloutState::Active && row.state != RolloutState::Active);
    let mut active = row.into_active_model();
    active.state = Set(to.state);
    active.current_stage = Set(to_stage);
    if restart_clock {
        active.stage_started_at = Set(now);
    }
    active.updated_at = Set(now);
    let updated = active.update(db).await?;
    rollout_events::append(db, id, actor, kind, detail, now).await?;
    Ok(updated)
}

/// The position of a stored rollout.
pub fn position(row: &rollout::Model) -> Result<Position, ApiError> {
    Ok(Position { state: row.state, stage: usize::try_from(row.current_stage).map_err(ApiError::internal)? })
}

/// `pause`, `resume`, `advance` or `abort`, by an admin.
pub async fn control(
    state: &AppState,
    id: Uuid,
    command: Command,
    actor: &str,
) -> Result<RolloutView, ApiError> {
    let txn = crate::db::begin_write(&state.db).await?;
    let row = lock(&txn, id).await?.ok_or_else(|| rollout_not_found(id))?;
    // Only advancing needs the plan: a rollout whose stages cannot be read can still be paused
    // or aborted, which is what an admin wants of it.
    let stage_count = match (Stages::from_json(&row.stages), command) {
        (Ok(stages), _) => stages.as_slice().len(),
        (Err(e), Command::Advance) => {
            return Err(ApiError::Conflict(format!("rollout {id} cannot advance: {e}")));
        }
        (Err(_), _) => 0,
    };
    let to = apply(command, position(&row)?, stage_count)
        .map_err(|e| ApiError::Conflict(format!("rollout {id}: {e}")))?;
    let kind = if to.state == RolloutState::Completed { EventKind::Completed } else { command.event_kind() };
    let firmware_id = row.firmware_id;
    move_to(&txn, row, to, actor, kind, json!({}), Utc::now()).await?;
    txn.commit().await?;
    state.release_changed(firmware_id).await;
    view(state, id).await
}

/// `GET /v1/admin/rollouts`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutList {
    pub items: Vec<RolloutSummary>,
    pub total: u64,
}

/// Rollouts, newest first, optionally in one state, optionally of one release.
pub async fn list(
    state: &AppState,
    filter: Option<RolloutState>,
    firmware_id: Option<Uuid>,
) -> Result<RolloutList, ApiError> {
    let mut query = rollout::Entity::find().order_by_desc(rollout::Column::CreatedAt);
    if let Some(s) = filter {
        query = query.filter(rollout::Column::State.eq(s));
    }
    if let Some(id) = firmware_id {
        query = query.filter(rollout::Column::FirmwareId.eq(id));
    }
    let items: Vec<RolloutSummary> =
        query.limit(500).all(&state.db).await?.iter().map(RolloutSummary::new).collect();
    Ok(RolloutList { total: items.len() as u64, items })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutSummary {
    pub id: Uuid,
    pub firmware_id: Uuid,
    pub channel: String,
    pub state: RolloutState,
    pub stage: i32,
    pub percent: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RolloutSummary {
    pub fn new(row: &rollout::Model) -> Self {
        Self {
            id: row.id,
            firmware_id: row.firmware_id,
            channel: row.channel.clone(),
            state: row.state,
            stage: row.current_stage,
            percent: current_percent(row),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StagePreview {
    pub stage: usize,
    pub percent: f64,
    pub devices: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub rollout_id: Uuid,
    pub hardware: Vec<String>,
    /// Known devices (from their reports) of the release's hardware.
    pub known_devices: u64,
    pub stages: Vec<StagePreview>,
}

/// A dry run: how many known devices of the release's hardware each stage would admit.
pub async fn preview(state: &AppState, id: Uuid) -> Result<Preview, ApiError> {
    let row = load(&state.db, id).await?;
    let stages =
        Stages::from_json(&row.stages).map_err(|e| ApiError::Conflict(format!("rollout {id}: {e}")))?;
    let salt = hex::decode(&row.salt).map_err(ApiError::internal)?;
    let hardware =
        crate::db::firmware::find(&state.db, row.firmware_id).await?.map(|r| r.hardware).unwrap_or_default();
    let ids: Vec<String> = device::Entity::find()
        .select_only()
        .column(device::Column::DeviceId)
        .filter(device::Column::Hardware.is_in(hardware.clone()))
        .into_tuple()
        .all(&state.db)
        .await?;
    let buckets: Vec<u32> =
        ids.iter().filter_map(|id| DeviceId::parse(id).ok()).map(|d| bucket(&salt, &d)).collect();
    let stages = stages
        .as_slice()
        .iter()
        .enumerate()
        .map(|(i, s)| StagePreview {
            stage: i,
            percent: s.percent(),
            devices: buckets.iter().filter(|b| **b < s.basis_points).count() as u64,
        })
        .collect();
    Ok(Preview { rollout_id: id, hardware, known_devices: buckets.len() as u64, stages })
}
