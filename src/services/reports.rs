//! Device reports: the latest status of each device for each release, and what the device last
//! said about itself. Reports are the only writes of the device flow.
//!
//! Statuses move forward (`downloading` → `downloaded` → `installing` → `installed`; steps may be
//! skipped). `failed` can follow any status but `installed`, and a failed device may start again.
//! Repeating the latest status is a no-op (idempotent); anything else is 409.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, QuerySelect, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::entities::{device, device_report, rollout, rollout_report_count};
use crate::domain::rollout::RolloutState;
use crate::domain::selection::RolloutGate;
use crate::domain::{Channel, DeviceId, FirmwareState, HardwareId, ReportStatus, Version};
use crate::error::ApiError;
use crate::services::releases::not_found;
use crate::services::rollouts::current_basis_points;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    pub status: String,
    pub error: Option<String>,
    #[schema(value_type = Option<String>)]
    pub from_version: Option<Version>,
    /// Needed only when the release is built for several hardware ids.
    #[schema(value_type = Option<String>)]
    pub hardware: Option<HardwareId>,
    #[schema(value_type = Option<String>)]
    pub channel: Option<Channel>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportView {
    pub device_id: String,
    pub firmware_id: Uuid,
    pub rollout_id: Option<Uuid>,
    pub status: String,
    pub error: Option<String>,
    pub report_count: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<device_report::Model> for ReportView {
    fn from(r: device_report::Model) -> Self {
        Self {
            device_id: r.device_id,
            firmware_id: r.firmware_id,
            rollout_id: r.rollout_id,
            status: r.status,
            error: r.error,
            report_count: r.report_count,
            updated_at: r.updated_at,
        }
    }
}

fn rank(status: ReportStatus) -> u8 {
    match status {
        ReportStatus::Downloading => 1,
        ReportStatus::Downloaded => 2,
        ReportStatus::Installing => 3,
        ReportStatus::Installed => 4,
        ReportStatus::Failed => 0,
    }
}

/// Whether `to` may follow `from`; `None` means the same status again (a no-op).
fn transition_allowed(from: ReportStatus, to: ReportStatus) -> Option<bool> {
    if from == to {
        return None;
    }
    Some(match (from, to) {
        (ReportStatus::Installed, _) => false,
        (_, ReportStatus::Failed) | (ReportStatus::Failed, _) => true,
        _ => rank(to) > rank(from),
    })
}

pub async fn record(
    state: &AppState,
    firmware_id: Uuid,
    request: ReportRequest,
) -> Result<ReportView, ApiError> {
    let status = ReportStatus::parse(&request.status).map_err(|e| ApiError::field("status", e))?;
    let error = match (&request.error, status) {
        (Some(e), _) if e.len() > 2000 => {
            return Err(ApiError::field("error", "must be at most 2000 characters"));
        }
        (Some(e), ReportStatus::Failed) => Some(e.clone()),
        (Some(_), _) => return Err(ApiError::field("error", "is only for status \"failed\"")),
        (None, _) => None,
    };
    if let Some(channel) = &request.channel
        && !state.settings.firmware.channels.iter().any(|c| c == channel.as_str())
    {
        return Err(ApiError::field("channel", format!("{channel:?} is not a configured channel")));
    }
    let txn = crate::db::begin_write(&state.db).await?;
    let release =
        crate::db::firmware::find(&txn, firmware_id).await?.ok_or_else(|| not_found(firmware_id))?;
    if release.row.state == FirmwareState::Draft.as_str() {
        return Err(not_found(firmware_id));
    }
    let hardware = match (&request.hardware, release.hardware.as_slice()) {
        (Some(h), listed) if listed.iter().any(|l| l == h.as_str()) => h.to_string(),
        (Some(h), _) => {
            return Err(ApiError::field("hardware", format!("firmware {firmware_id} is not built for {h}")));
        }
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(ApiError::field(
                "hardware",
                "is required: this release is built for several hardware ids",
            ));
        }
    };

    let now = Utc::now();
    let key = (request.device_id.to_string(), firmware_id);
    // The device's row for this release, locked until the end of the transaction, so that two
    // reports for one device take turns: each moves the counters from the status the other left.
    // A first report inserts it; when another first report inserted it meanwhile, this one waits
    // for it (the insert's conflict check does) and then updates it as any later report.
    let mut previous =
        device_report::Entity::find_by_id(key.clone()).lock(LockType::NoKeyUpdate).one(&txn).await?;
    if previous.is_none() {
        let rollout_id = attributed_rollout(state, &txn, firmware_id, &request).await?;
        let row = device_report::Model {
            device_id: key.0.clone(),
            firmware_id,
            rollout_id,
            status: status.as_str().to_owned(),
            error: error.clone(),
            from_version: request.from_version.as_ref().map(|v| v.to_string()),
            report_count: 1,
            first_reported_at: now,
            updated_at: now,
        };
        let inserted = device_report::Entity::insert(device_report::ActiveModel::from(row.clone()))
            .on_conflict(
                OnConflict::columns([device_report::Column::DeviceId, device_report::Column::FirmwareId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if inserted == 1 {
            if let Some(rollout_id) = rollout_id {
                count_moves(&txn, rollout_id, &[(status, 1)]).await?;
            }
            return finish(txn, &request, &release, &hardware, status, now).await.map(|()| row.into());
        }
        previous = device_report::Entity::find_by_id(key).lock(LockType::NoKeyUpdate).one(&txn).await?;
    }
    let previous = previous.ok_or_else(|| ApiError::internal(anyhow::anyhow!("device report vanished")))?;
    let from = ReportStatus::parse(&previous.status).map_err(ApiError::internal)?;
    let report = match transition_allowed(from, status) {
        None if previous.error == error => return Ok(previous.into()),
        None | Some(true) => {
            if let Some(rollout_id) = previous.rollout_id
                && from != status
            {
                count_moves(&txn, rollout_id, &[(from, -1), (status, 1)]).await?;
            }
            let count = previous.report_count + 1;
            let mut row = previous.into_active_model();
            row.status = Set(status.as_str().to_owned());
            row.error = Set(error);
            row.report_count = Set(count);
            row.updated_at = Set(now);
            row.update(&txn).await?
        }
        Some(false) => {
            return Err(ApiError::Conflict(format!(
                "status: cannot go from {from} to {status} (device {} on firmware {firmware_id})",
                request.device_id
            )));
        }
    };
    finish(txn, &request, &release, &hardware, status, now).await?;
    Ok(report.into())
}

/// What every accepted report ends with: what the device said about itself, and the commit.
async fn finish(
    txn: sea_orm::DatabaseTransaction,
    request: &ReportRequest,
    release: &crate::db::firmware::Release,
    hardware: &str,
    status: ReportStatus,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let version = match status {
        ReportStatus::Installed => Some(release.row.version.clone()),
        _ => request.from_version.as_ref().map(|v| v.to_string()),
    };
    upsert_device(&txn, &request.device_id, hardware, version, request.channel.as_ref(), now).await?;
    txn.commit().await?;
    Ok(())
}

/// Moves devices between a rollout's per-status counts (`rollout_report_count`), in the report's
/// transaction. Rows are touched in status order, so two reports moving devices in opposite
/// directions (failed → downloading, downloading → failed) cannot deadlock on PostgreSQL.
async fn count_moves(
    db: &impl sea_orm::ConnectionTrait,
    rollout_id: Uuid,
    moves: &[(ReportStatus, i64)],
) -> Result<(), ApiError> {
    use rollout_report_count::Column;
    use sea_orm::ExprTrait;
    use sea_orm::sea_query::Expr;
    let mut moves = moves.to_vec();
    moves.sort_by_key(|(status, _)| status.as_str());
    for (status, delta) in moves {
        let row = rollout_report_count::ActiveModel {
            rollout_id: Set(rollout_id),
            status: Set(status.as_str().to_owned()),
            devices: Set(delta),
        };
        rollout_report_count::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([Column::RolloutId, Column::Status])
                    .value(
                        Column::Devices,
                        Expr::col((rollout_report_count::Entity, Column::Devices)).add(delta),
                    )
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// The rollout a device's reports count towards: among the release's rollouts on the device's
/// channel or a more stable one, the most stable that admits it; else the most stable one.
async fn attributed_rollout(
    state: &AppState,
    db: &impl sea_orm::ConnectionTrait,
    firmware_id: Uuid,
    request: &ReportRequest,
) -> Result<Option<Uuid>, ApiError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let channels = &state.settings.firmware.channels;
    let device_rank = request
        .channel
        .as_ref()
        .and_then(|c| channels.iter().position(|n| n == c.as_str()))
        .unwrap_or(usize::MAX);
    let mut candidates: Vec<(usize, bool, Uuid)> = rollout::Entity::find()
        .filter(rollout::Column::FirmwareId.eq(firmware_id))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|r| {
            let rank = channels.iter().position(|c| *c == r.channel)?;
            let state = RolloutState::parse(&r.state).ok()?;
            let gate = RolloutGate {
                channel_rank: rank,
                state: if state == RolloutState::Halted { RolloutState::Active } else { state },
                basis_points: current_basis_points(&r),
                salt: hex::decode(&r.salt).ok()?,
            };
            (rank <= device_rank).then(|| (rank, !gate.admits(&request.device_id), r.id))
        })
        .collect();
    candidates.sort();
    Ok(candidates.first().map(|c| c.2))
}

async fn upsert_device(
    db: &impl sea_orm::ConnectionTrait,
    device_id: &DeviceId,
    hardware: &str,
    version: Option<String>,
    channel: Option<&Channel>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let existing = device::Entity::find_by_id(device_id.to_string()).one(db).await?;
    let version =
        version.or_else(|| existing.as_ref().map(|d| d.version.clone())).unwrap_or_else(|| "unknown".into());
    let channel = channel.map(|c| c.to_string()).or_else(|| existing.and_then(|d| d.channel));
    let model = device::ActiveModel {
        device_id: Set(device_id.to_string()),
        hardware: Set(hardware.to_owned()),
        version: Set(version),
        channel: Set(channel),
        last_report_at: Set(now),
    };
    device::Entity::insert(model)
        .on_conflict(
            OnConflict::column(device::Column::DeviceId)
                .update_columns([
                    device::Column::Hardware,
                    device::Column::Version,
                    device::Column::Channel,
                    device::Column::LastReportAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReportStatus::*;

    #[test]
    fn statuses_move_forward_and_failed_devices_may_retry() {
        assert_eq!(transition_allowed(Downloading, Downloading), None);
        assert_eq!(transition_allowed(Downloading, Installing), Some(true));
        assert_eq!(transition_allowed(Installing, Downloading), Some(false));
        assert_eq!(transition_allowed(Installing, Failed), Some(true));
        assert_eq!(transition_allowed(Failed, Downloading), Some(true));
        assert_eq!(transition_allowed(Installed, Failed), Some(false));
        assert_eq!(transition_allowed(Installed, Downloading), Some(false));
    }
}
