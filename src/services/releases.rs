//! Release management: list, read, edit, delete drafts, publish to a channel, revoke.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, Set, SqlErr};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::PublicRelease;
use crate::db::entities::{firmware, rollout};
use crate::db::firmware::{ListFilter, Release};
use crate::db::{self, rollout_events};
use crate::domain::rollout::{EventKind, RolloutState, StageInput, Stages};
use crate::domain::{Channel, FirmwareState, Sha256Digest, Version};
use crate::error::ApiError;
use crate::services::channel_access::{VisibleRanks, sees_any};
use crate::services::rollouts::{self, RolloutView};
use crate::state::AppState;
use crate::storage::ObjectKey;

/// A release as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReleaseView {
    /// What every caller may see (`GET /v1/firmware/{id}`); the rest is for admins.
    #[serde(flatten)]
    pub release: PublicRelease,
    pub release_signature: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
}

impl ReleaseView {
    pub fn new(release: Release, channels: Vec<String>) -> Self {
        let Release { row, hardware } = release;
        Self {
            release: PublicRelease::new(&row, hardware, channels),
            release_signature: row.release_signature,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            revoked_at: row.revoked_at,
            revoked_by: row.revoked_by,
            revoke_reason: row.revoke_reason,
        }
    }
}

/// A page of releases (`GET /v1/admin/firmware`).
pub type ReleasePage = Page<ReleaseView>;

/// A page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

pub fn not_found(id: Uuid) -> ApiError {
    ApiError::firmware_not_found(id)
}

async fn load(state: &AppState, id: Uuid) -> Result<Release, ApiError> {
    db::firmware::find(&state.db, id).await?.ok_or_else(|| not_found(id))
}

/// One release with its channels.
/// Whether a caller who sees the channels `visible` (from [`crate::services::channel_access::ChannelAccess::visible`]) may see
/// release `id` under `firmware.channel_roles`: one who sees every channel (an admin) always;
/// anyone else if a channel it is offered on (from the catalog), or for a release outside the
/// catalog any channel it was ever offered on (a revoke aborts them all), is visible to them.
pub async fn visible_to(state: &AppState, visible: VisibleRanks, id: Uuid) -> Result<bool, ApiError> {
    if visible == VisibleRanks::MAX {
        return Ok(true);
    }
    if let Some(offered) = state.catalog.snapshot().by_id.get(&id) {
        return Ok(sees_any(visible, &offered.channel_ranks));
    }
    let channels = db::firmware::channels_ever(&state.db, id).await?;
    Ok(channels.iter().any(|c| state.channel_access.sees_named(visible, c)))
}

pub async fn view(state: &AppState, id: Uuid) -> Result<ReleaseView, ApiError> {
    let release = load(state, id).await?;
    let channels = db::firmware::channels(&state.db, &[id]).await?.remove(&id).unwrap_or_default();
    Ok(ReleaseView::new(release, channels))
}

pub async fn list(
    state: &AppState,
    filter: &ListFilter,
    page: u64,
    per_page: u64,
) -> Result<Page<ReleaseView>, ApiError> {
    let (releases, total) = db::firmware::list(&state.db, filter, page, per_page).await?;
    let ids: Vec<Uuid> = releases.iter().map(|r| r.row.id).collect();
    let mut channels = db::firmware::channels(&state.db, &ids).await?;
    let items = releases
        .into_iter()
        .map(|r| {
            let c = channels.remove(&r.row.id).unwrap_or_default();
            ReleaseView::new(r, c)
        })
        .collect();
    Ok(Page { items, page, per_page, total })
}

/// `PATCH /v1/admin/firmware/{id}`: the fields an admin may change after upload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleasePatch {
    /// At most 64 KiB.
    #[schema(max_length = 65536)]
    pub release_notes: Option<String>,
    pub mandatory: Option<bool>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "some_or_null")]
    #[schema(value_type = Option<crate::openapi::SemVer>)]
    pub min_from_version: Option<Option<Version>>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Version>>, D::Error> {
    Option::<Version>::deserialize(d).map(Some)
}

pub const MAX_RELEASE_NOTES: usize = 64 * 1024;

pub async fn patch(state: &AppState, id: Uuid, patch: ReleasePatch) -> Result<ReleaseView, ApiError> {
    if patch.release_notes.as_ref().is_some_and(|n| n.len() > MAX_RELEASE_NOTES) {
        return Err(ApiError::field("release_notes", format!("must be at most {MAX_RELEASE_NOTES} bytes")));
    }
    let txn = crate::db::begin_write(&state.db).await?;
    let release = db::firmware::find(&txn, id).await?.ok_or_else(|| not_found(id))?;
    if release.row.state == FirmwareState::Revoked {
        return Err(ApiError::Conflict(format!("firmware {id} is revoked and can no longer change")));
    }
    let version = Version::parse(&release.row.version).map_err(ApiError::internal)?;
    let mut row = release.row.into_active_model();
    if let Some(notes) = patch.release_notes {
        row.release_notes = Set(notes);
    }
    if let Some(mandatory) = patch.mandatory {
        row.mandatory = Set(mandatory);
    }
    if let Some(min_from) = patch.min_from_version {
        if min_from.as_ref().is_some_and(|m| *m >= version) {
            return Err(ApiError::field(
                "min_from_version",
                format!("must be below the release's version {version}"),
            ));
        }
        row.min_from_version = Set(min_from.map(|m| m.to_string()));
    }
    row.updated_at = Set(Utc::now());
    row.update(&txn).await?;
    txn.commit().await?;
    state.release_changed(id).await;
    view(state, id).await
}

/// Deletes a draft. Its image is left to the sweep, which removes images no release references
/// (deleting it here could race an upload of the same bytes).
pub async fn delete_draft(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    let txn = crate::db::begin_write(&state.db).await?;
    // Locked as publish and revoke lock it: a publish in flight either finishes first (then
    // this sees a published release and refuses) or finds the row gone.
    let release = db::firmware::lock(&txn, id).await?.ok_or_else(|| not_found(id))?;
    if release.row.state != FirmwareState::Draft {
        return Err(ApiError::Conflict(format!(
            "firmware {id} is {}: only drafts can be deleted; revoke it instead",
            release.row.state
        )));
    }
    firmware::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// `POST /v1/admin/firmware/{id}/publish`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    #[schema(value_type = crate::openapi::ChannelName)]
    pub channel: String,
    /// Strictly increasing percents, the last 100; default: everyone at once.
    #[schema(min_items = 1, max_items = 100)]
    pub stages: Option<Vec<StageInput>>,
    /// Default: `rollout.max_failure_rate`.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub max_failure_rate: Option<f64>,
    /// Default: `rollout.min_reports`.
    #[schema(maximum = 9_223_372_036_854_775_807_u64)]
    pub min_reports: Option<u64>,
}

pub async fn publish(
    state: &AppState,
    id: Uuid,
    request: PublishRequest,
    actor: &str,
) -> Result<RolloutView, ApiError> {
    let plan = RolloutPlan::checked(state, &request)?;
    // Before the rollout exists: no manifest of a published release goes out without its table.
    crate::services::chunks::ensure(state, id).await?;
    let txn = crate::db::begin_write(&state.db).await?;
    let release = publishable(state, &txn, id, &plan.channel).await?;
    let now = Utc::now();
    if release.row.state == FirmwareState::Draft {
        let mut row = release.row.clone().into_active_model();
        row.state = Set(FirmwareState::Published);
        row.published_at = Set(Some(now));
        row.updated_at = Set(now);
        row.update(&txn).await?;
    }
    let rollout = plan.rollout(id, actor, now);
    // The database holds the rule too: one live rollout per (release, channel).
    rollout::ActiveModel::from(rollout.clone()).insert(&txn).await.map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => ApiError::Conflict(format!(
            "firmware {id} already has a live rollout on channel {}",
            plan.channel
        )),
        _ => e.into(),
    })?;
    let detail = serde_json::json!({
        "firmware_id": id.to_string(),
        "version": release.row.version,
        "channel": plan.channel.as_str(),
        "stages_basis_points": plan.stages.as_slice().iter().map(|s| serde_json::json!([s.basis_points, s.min_duration_s])).collect::<Vec<_>>(),
        "max_failure_rate_ppm": (plan.max_failure_rate * 1e6).round() as i64,
        "min_reports": plan.min_reports,
    });
    rollout_events::append(&txn, rollout.id, actor, EventKind::Created, detail, now).await?;
    txn.commit().await?;
    state.release_changed(id).await;
    // Patches from what the fleet runs; a failure here is retried by the periodic planner.
    if let Err(e) = crate::services::deltas::plan_release(state, id).await {
        tracing::warn!(firmware_id = %id, error = %e, "planning deltas failed");
    }
    rollouts::view(state, rollout.id).await
}

/// A publish request, checked: the rollout it asks for.
struct RolloutPlan {
    channel: Channel,
    stages: Stages,
    max_failure_rate: f64,
    min_reports: i64,
}

impl RolloutPlan {
    fn checked(state: &AppState, request: &PublishRequest) -> Result<Self, ApiError> {
        let channels = &state.settings.firmware.channels;
        let channel = Channel::parse(&request.channel).map_err(|e| ApiError::field("channel", e))?;
        if !channels.iter().any(|c| c == channel.as_str()) {
            let why = format!("{channel:?} is not a configured channel ({})", channels.join(", "));
            return Err(ApiError::field("channel", why));
        }
        let stages = match &request.stages {
            Some(input) => Stages::parse(input).map_err(|e| ApiError::field("stages", e))?,
            None => Stages::immediate(),
        };
        let max_failure_rate = request.max_failure_rate.unwrap_or(state.settings.rollout.max_failure_rate);
        if !(0.0..=1.0).contains(&max_failure_rate) {
            return Err(ApiError::field("max_failure_rate", "must be between 0 and 1"));
        }
        let min_reports = request.min_reports.unwrap_or(state.settings.rollout.min_reports);
        let min_reports =
            i64::try_from(min_reports).map_err(|_| ApiError::field("min_reports", "is too large"))?;
        Ok(Self { channel, stages, max_failure_rate, min_reports })
    }

    /// The new rollout's row, at its first stage.
    fn rollout(&self, firmware_id: Uuid, actor: &str, now: DateTime<Utc>) -> rollout::Model {
        rollout::Model {
            id: Uuid::new_v4(),
            firmware_id,
            channel: self.channel.to_string(),
            salt: hex::encode(rand::random::<[u8; 16]>()),
            stages: self.stages.to_json(),
            current_stage: 0,
            state: RolloutState::Active,
            max_failure_rate: self.max_failure_rate,
            min_reports: self.min_reports,
            created_by: actor.to_owned(),
            stage_started_at: now,
            created_at: now,
            updated_at: now,
            event_count: 0,
            chain_head: String::new(),
        }
    }
}

/// Release `id`, locked, if it may get a rollout on `channel`: not revoked, its image still
/// stored, no live rollout there yet.
async fn publishable(
    state: &AppState,
    txn: &DatabaseTransaction,
    id: Uuid,
    channel: &Channel,
) -> Result<Release, ApiError> {
    let release = db::firmware::lock(txn, id).await?.ok_or_else(|| not_found(id))?;
    if release.row.state == FirmwareState::Revoked {
        return Err(ApiError::Conflict(format!("firmware {id} is revoked and cannot be published")));
    }
    let digest = Sha256Digest::parse(&release.row.sha256).map_err(ApiError::internal)?;
    if state.store.size(&ObjectKey::Firmware(digest)).await?.is_none() {
        return Err(ApiError::Conflict(format!(
            "firmware {id}: its image is missing from blob storage; upload it again"
        )));
    }
    if let Some(existing) = rollouts::on_channel(txn, id, channel.as_str()).await? {
        return Err(ApiError::Conflict(format!(
            "firmware {id} already has rollout {} on channel {channel} ({})",
            existing.id, existing.state
        )));
    }
    Ok(release)
}

/// `POST /v1/admin/firmware/{id}/revoke`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// 1 to 1000 characters, not all blank.
    #[schema(pattern = r"\S", max_length = 1000)]
    pub reason: String,
}

/// Revokes a release: it is never offered again and its live rollouts abort.
pub async fn revoke(
    state: &AppState,
    id: Uuid,
    request: RevokeRequest,
    actor: &str,
) -> Result<ReleaseView, ApiError> {
    let reason = request.reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::field("reason", "must be 1 to 1000 characters"));
    }
    let txn = crate::db::begin_write(&state.db).await?;
    let release = db::firmware::lock(&txn, id).await?.ok_or_else(|| not_found(id))?;
    if release.row.state == FirmwareState::Revoked {
        return Err(ApiError::Conflict(format!("firmware {id} is already revoked")));
    }
    let now = Utc::now();
    let mut row = release.row.into_active_model();
    row.state = Set(FirmwareState::Revoked);
    row.revoked_at = Set(Some(now));
    row.revoked_by = Set(Some(actor.to_owned()));
    row.revoke_reason = Set(Some(reason.to_owned()));
    row.updated_at = Set(now);
    row.update(&txn).await?;
    for live in rollouts::live_for_firmware(&txn, id).await? {
        let detail = serde_json::json!({"reason": format!("release revoked: {reason}")});
        rollouts::transition(&txn, live, RolloutState::Aborted, actor, EventKind::Aborted, detail, now)
            .await?;
    }
    txn.commit().await?;
    state.release_changed(id).await;
    view(state, id).await
}
