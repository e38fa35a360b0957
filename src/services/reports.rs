//! Device reports: the latest status of each device for each release, and what the device last
//! said about itself. Reports are the only writes of the device flow.
//!
//! Statuses move forward (`downloading` → `downloaded` → `installing` → `installed`; steps may be
//! skipped). `failed` can follow any status but `installed`, and a failed device may start again.
//! Repeating the latest status is a no-op (idempotent); anything else is 409.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::sea_query::OnConflict;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::entities::{
    device_report, rollout, rollout_owner_count, rollout_report_count, rollout_uncounted_count,
};
use crate::domain::rollout::RolloutState;
use crate::domain::selection::RolloutGate;
use crate::domain::{Channel, DeviceId, FirmwareState, HardwareId, ReportStatus, Version};
use crate::error::ApiError;
use crate::services::devices;
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
    caller: &Caller,
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
    // Before anything about the device is read or said: whose it is.
    let device = devices::claim(state, &txn, caller, &request.device_id, &hardware, now).await?;
    let key = (request.device_id.to_string(), firmware_id);
    // The device's row for this release, locked until the end of the transaction, so that two
    // reports for one device take turns: each moves the counters from the status the other left.
    // A first report inserts it; when another first report inserted it meanwhile, this one waits
    // for it (the insert's conflict check does) and then updates it as any later report.
    let mut previous =
        device_report::Entity::find_by_id(key.clone()).lock(LockType::NoKeyUpdate).one(&txn).await?;
    if previous.is_none() {
        let from_version = request.from_version.clone().or_else(|| Version::parse(&device.version).ok());
        let attribution = attribute(state, &txn, &release, &request, from_version.as_ref()).await?;
        let row = device_report::Model {
            device_id: key.0.clone(),
            firmware_id,
            rollout_id: attribution.rollout_id,
            status: status.as_str().to_owned(),
            error: error.clone(),
            from_version: request.from_version.as_ref().map(|v| v.to_string()),
            report_count: 1,
            first_reported_at: now,
            updated_at: now,
            counted: attribution.counted,
            failures: i32::from(status == ReportStatus::Failed),
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
            let mut row = row;
            if let Some(rollout_id) = row.rollout_id
                && row.counted
                && !owner_slot_free(
                    &txn,
                    rollout_id,
                    &caller.sub,
                    state.settings.rollout.max_devices_per_owner,
                )
                .await?
            {
                row.counted = false;
                device_report::Entity::update_many()
                    .col_expr(device_report::Column::Counted, Expr::value(false))
                    .filter(device_report::Column::DeviceId.eq(row.device_id.clone()))
                    .filter(device_report::Column::FirmwareId.eq(firmware_id))
                    .exec(&txn)
                    .await?;
            }
            if let Some(rollout_id) = row.rollout_id {
                count_moves(&txn, rollout_id, row.counted, &[(status, 1)]).await?;
            }
            devices::record_facts(&txn, &request, &release, &hardware, status, now).await?;
            txn.commit().await?;
            cut_off_if_failing(state, &row).await;
            return Ok(row.into());
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
                count_moves(&txn, rollout_id, previous.counted, &[(from, -1), (status, 1)]).await?;
            }
            let count = previous.report_count + 1;
            let failures = previous.failures + i32::from(status == ReportStatus::Failed && from != status);
            let mut row = previous.into_active_model();
            row.status = Set(status.as_str().to_owned());
            row.error = Set(error);
            row.report_count = Set(count);
            row.failures = Set(failures);
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
    devices::record_facts(&txn, &request, &release, &hardware, status, now).await?;
    txn.commit().await?;
    cut_off_if_failing(state, &report).await;
    Ok(report.into())
}

/// After `rollout.max_failures_per_device` failures of a device on a release, this instance's
/// update check stops offering the release to it at once (the others at their next catalog
/// rebuild, which reads the same rows).
async fn cut_off_if_failing(state: &AppState, report: &device_report::Model) {
    let limit = state.settings.rollout.max_failures_per_device;
    if limit > 0 && u32::try_from(report.failures).is_ok_and(|f| f >= limit) {
        state.catalog.cut_offs.add(&report.device_id, report.firmware_id);
    }
}

/// Moves devices between a rollout's per-status counts, in the report's transaction: those that
/// count towards its health (`rollout_report_count`) or those it keeps apart
/// (`rollout_uncounted_count`). Rows are touched in status order, so two reports moving devices
/// in opposite directions (failed → downloading, downloading → failed) cannot deadlock on
/// PostgreSQL.
async fn count_moves(
    db: &impl sea_orm::ConnectionTrait,
    rollout_id: Uuid,
    counted: bool,
    moves: &[(ReportStatus, i64)],
) -> Result<(), ApiError> {
    use rollout_report_count::Column;
    use sea_orm::EntityName;
    use sea_orm::sea_query::{Alias, Query};
    // The two tables have the same columns; the column names are taken from one of them.
    let table = Alias::new(match counted {
        true => rollout_report_count::Entity.table_name(),
        false => rollout_uncounted_count::Entity.table_name(),
    });
    let mut moves = moves.to_vec();
    moves.sort_by_key(|(status, _)| status.as_str());
    for (status, delta) in moves {
        let upsert = Query::insert()
            .into_table(table.clone())
            .columns([Column::RolloutId, Column::Status, Column::Devices])
            .values([rollout_id.into(), status.as_str().into(), delta.into()])
            .map_err(ApiError::internal)?
            .on_conflict(
                OnConflict::columns([Column::RolloutId, Column::Status])
                    .value(Column::Devices, Expr::col((table.clone(), Column::Devices)).add(delta))
                    .to_owned(),
            )
            .to_owned();
        db.execute(&upsert).await?;
    }
    Ok(())
}

/// Counts one more device of `owner` towards a rollout, unless `rollout.max_devices_per_owner`
/// count already: a conditional increment, so concurrent first reports of one account cannot
/// both take the last place. Whether it was taken.
async fn owner_slot_free(
    db: &impl sea_orm::ConnectionTrait,
    rollout_id: Uuid,
    owner: &str,
    max: u32,
) -> Result<bool, ApiError> {
    use rollout_owner_count::{ActiveModel, Column, Entity};
    let row = ActiveModel { rollout_id: Set(rollout_id), owner: Set(owner.to_owned()), devices: Set(1) };
    let taken = Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::RolloutId, Column::Owner])
                .value(Column::Devices, Expr::col((Entity, Column::Devices)).add(1))
                .action_and_where(Expr::col((Entity, Column::Devices)).lt(i64::from(max)))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(taken == 1)
}

/// Where a first report goes and whether its outcome may count (the account's places are taken
/// once the row is in).
struct Attribution {
    rollout_id: Option<Uuid>,
    counted: bool,
}

/// The rollout a device's reports go to: among the release's rollouts on the device's channel or
/// a more stable one, the most stable that admits it; else the most stable one. Its outcomes
/// count towards that rollout's health only if the rollout admits the device now, the device
/// reported from a version the release could be offered to (`from_version`, or the version its
/// last report left), and its account has a place left (`rollout.max_devices_per_owner`,
/// [`owner_slot_free`]).
async fn attribute(
    state: &AppState,
    db: &impl sea_orm::ConnectionTrait,
    release: &crate::db::firmware::Release,
    request: &ReportRequest,
    from_version: Option<&Version>,
) -> Result<Attribution, ApiError> {
    let channels = &state.settings.firmware.channels;
    let device_rank = request
        .channel
        .as_ref()
        .and_then(|c| channels.iter().position(|n| n == c.as_str()))
        .unwrap_or(usize::MAX);
    let mut candidates: Vec<(usize, bool, Uuid)> = rollout::Entity::find()
        .filter(rollout::Column::FirmwareId.eq(release.row.id))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|r| {
            let rank = channels.iter().position(|c| *c == r.channel)?;
            let state = RolloutState::parse(&r.state).ok()?;
            // Devices a halted rollout admitted before it halted still report their outcomes.
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
    let Some(&(_, not_admitted, rollout_id)) = candidates.first() else {
        return Ok(Attribution { rollout_id: None, counted: false });
    };
    let counted = !not_admitted && from_version.is_some_and(|from| offerable_from(release, from));
    Ok(Attribution { rollout_id: Some(rollout_id), counted })
}

/// Whether the release could be offered to a device running `from`: above it, and `from` at or
/// above the release's `min_from_version`.
fn offerable_from(release: &crate::db::firmware::Release, from: &Version) -> bool {
    let above = Version::parse(&release.row.version).is_ok_and(|v| v > *from);
    let min_from = release.row.min_from_version.as_deref().map(Version::parse);
    above && min_from.is_none_or(|m| m.is_ok_and(|m| *from >= m))
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
