//! Device reports: the latest status of each device for each release, and what the device last
//! said about itself. Reports are the only writes of the device flow.
//!
//! Statuses move forward (`downloading` → `downloaded` → `installing` → `installed`; steps may be
//! skipped). `failed` can follow any status but `installed`, and a failed device may start again.
//! Repeating the latest status is a no-op (idempotent); anything else is 409.

mod attribution;
mod counts;
mod device;
mod relay;

pub use relay::{RelayReport, RelayVia};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockType, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use self::attribution::attribute;
use self::counts::{count_moves, cut_off_if_failing, owner_slot_free};
use crate::auth::Caller;
use crate::db::entities::device_report;
use crate::db::firmware::Release;
use crate::domain::{Channel, DeviceId, DownloadVia, FirmwareState, HardwareId, ReportStatus, Version};
use crate::error::ApiError;
use crate::services::releases::{self, not_found};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    #[schema(value_type = crate::openapi::DeviceName)]
    pub device_id: DeviceId,
    #[schema(value_type = crate::domain::ReportStatus)]
    pub status: String,
    /// What went wrong; only with status `failed`.
    #[schema(max_length = 2000)]
    pub error: Option<String>,
    /// The version the device updated from.
    #[schema(value_type = Option<crate::openapi::SemVer>)]
    pub from_version: Option<Version>,
    /// Needed only when the release is built for several hardware ids.
    #[schema(value_type = Option<crate::openapi::HardwareName>)]
    pub hardware: Option<HardwareId>,
    #[schema(value_type = Option<crate::openapi::ChannelName>)]
    pub channel: Option<Channel>,
    /// How the device fetches the release: `delta` (the patch the check offered) or `full`. A
    /// device that reports `failed` on a delta is offered the full image from then on. Absent:
    /// as the device last said.
    pub via: Option<DownloadVia>,
    /// The phone's relay to the watch, when it relays: sent with each progress report
    /// (repeating a status with new figures records them). Absent: as the device last said.
    pub relay: Option<RelayReport>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportView {
    pub device_id: String,
    pub firmware_id: Uuid,
    pub rollout_id: Option<Uuid>,
    pub status: ReportStatus,
    pub error: Option<String>,
    pub report_count: i64,
    pub via: Option<DownloadVia>,
    /// The latest relay figures, if the phone relays this update.
    pub relay: Option<RelayReport>,
    pub updated_at: DateTime<Utc>,
}

impl From<device_report::Model> for ReportView {
    fn from(r: device_report::Model) -> Self {
        let relay = RelayReport::of(&r);
        Self {
            device_id: r.device_id,
            firmware_id: r.firmware_id,
            rollout_id: r.rollout_id,
            status: r.status,
            error: r.error,
            report_count: r.report_count,
            via: r.via,
            relay,
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

/// `POST /v1/firmware/{id}/report`: a device's status, within the caller's report limits, for
/// a release the caller may see (one on a channel it may not see does not exist for it, nor
/// for its health).
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    firmware_id: Uuid,
    request: ReportRequest,
) -> Result<ReportView, ApiError> {
    // First: a flood is turned away without a database transaction.
    state.limits.report(&caller.sub, &request.device_id)?;
    if !releases::visible_to(state, state.channel_access.visible(Some(caller)), firmware_id).await? {
        return Err(not_found(firmware_id));
    }
    record(state, caller, firmware_id, request).await
}

/// A report, checked and placed: the release it is for, the hardware it names, when it came.
struct Report<'a> {
    request: &'a ReportRequest,
    release: &'a Release,
    hardware: String,
    status: ReportStatus,
    error: Option<String>,
    /// `relay` as stored: bytes delivered, chunks rejected.
    relay: Option<(i64, i64)>,
    now: DateTime<Utc>,
}

/// Records a report in one transaction: the device's row for the release (locked, so two
/// reports for one device take turns: each moves the counters from the status the other left),
/// the rollout's counts, and what the device said about itself.
pub async fn record(
    state: &AppState,
    caller: &Caller,
    firmware_id: Uuid,
    request: ReportRequest,
) -> Result<ReportView, ApiError> {
    let (status, error) = checked_status(state, &request)?;
    let txn = crate::db::begin_write(&state.db).await?;
    let release =
        crate::db::firmware::find(&txn, firmware_id).await?.ok_or_else(|| not_found(firmware_id))?;
    if release.row.state == FirmwareState::Draft {
        return Err(not_found(firmware_id));
    }
    let hardware = hardware_of(&request, &release)?;
    let relay = request.relay.map(|r| r.checked(release.row.size)).transpose()?;
    let report =
        Report { request: &request, release: &release, hardware, status, error, relay, now: Utc::now() };
    // Before anything about the device is read or said: whose it is.
    let device = device::claim(state, &txn, caller, &request.device_id, &report.hardware, report.now).await?;
    let key = (request.device_id.to_string(), firmware_id);
    let mut previous =
        device_report::Entity::find_by_id(key.clone()).lock(LockType::NoKeyUpdate).one(&txn).await?;
    if previous.is_none() {
        let from_version = request.from_version.clone().or_else(|| Version::parse(&device.version).ok());
        if let Some(row) = first_report(state, &txn, caller, &report, from_version.as_ref()).await? {
            return finish(state, txn, &report, row).await;
        }
        // Another first report inserted the row meanwhile; this one waited for it (the insert's
        // conflict check does) and now updates it as any later report.
        previous = device_report::Entity::find_by_id(key).lock(LockType::NoKeyUpdate).one(&txn).await?;
    }
    let previous = previous.ok_or_else(|| ApiError::internal(anyhow::anyhow!("device report vanished")))?;
    let from = previous.status;
    let relay_unchanged = report.relay.is_none_or(|(bytes, rejected)| {
        (previous.relay_bytes_delivered, previous.relay_chunks_rejected) == (Some(bytes), Some(rejected))
    });
    match transition_allowed(from, status) {
        None if previous.error == report.error && relay_unchanged => Ok(previous.into()),
        None | Some(true) => {
            let row = next_report(&txn, previous, from, &report).await?;
            finish(state, txn, &report, row).await
        }
        Some(false) => Err(ApiError::Conflict(format!(
            "status: cannot go from {from} to {status} (device {} on firmware {firmware_id})",
            request.device_id
        ))),
    }
}

/// The report's status, and its error text (only for `failed`, at most 2,000 characters).
fn checked_status(
    state: &AppState,
    request: &ReportRequest,
) -> Result<(ReportStatus, Option<String>), ApiError> {
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
    Ok((status, error))
}

/// The hardware a report is for: the one it names, which the release must be built for, or the
/// release's only one.
fn hardware_of(request: &ReportRequest, release: &Release) -> Result<String, ApiError> {
    match (&request.hardware, release.hardware.as_slice()) {
        (Some(h), listed) if listed.iter().any(|l| l == h.as_str()) => Ok(h.to_string()),
        (Some(h), _) => {
            Err(ApiError::field("hardware", format!("firmware {} is not built for {h}", release.row.id)))
        }
        (None, [only]) => Ok(only.clone()),
        (None, _) => {
            Err(ApiError::field("hardware", "is required: this release is built for several hardware ids"))
        }
    }
}

/// A device's first report for a release: its row, attributed to a rollout and counted there
/// if the account has a place left. `None` if another first report inserted the row first.
async fn first_report(
    state: &AppState,
    txn: &DatabaseTransaction,
    caller: &Caller,
    report: &Report<'_>,
    from_version: Option<&Version>,
) -> Result<Option<device_report::Model>, ApiError> {
    let attribution = attribute(state, txn, report.release, report.request, from_version).await?;
    let mut row = device_report::Model {
        device_id: report.request.device_id.to_string(),
        firmware_id: report.release.row.id,
        rollout_id: attribution.rollout_id,
        status: report.status,
        error: report.error.clone(),
        from_version: report.request.from_version.as_ref().map(|v| v.to_string()),
        report_count: 1,
        updated_at: report.now,
        counted: attribution.counted,
        failures: i32::from(report.status == ReportStatus::Failed),
        via: report.request.via,
        delta_failures: i32::from(
            report.status == ReportStatus::Failed && report.request.via == Some(DownloadVia::Delta),
        ),
        relay_bytes_delivered: report.relay.map(|r| r.0),
        relay_chunks_rejected: report.relay.map(|r| r.1),
    };
    let inserted = device_report::Entity::insert(device_report::ActiveModel::from(row.clone()))
        .on_conflict(
            OnConflict::columns([device_report::Column::DeviceId, device_report::Column::FirmwareId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    if inserted != 1 {
        return Ok(None);
    }
    let max_per_owner = state.settings.rollout.max_devices_per_owner;
    if let Some(rollout_id) = row.rollout_id
        && row.counted
        && !owner_slot_free(txn, rollout_id, &caller.sub, max_per_owner).await?
    {
        row.counted = false;
        device_report::Entity::update_many()
            .col_expr(device_report::Column::Counted, Expr::value(false))
            .filter(device_report::Column::DeviceId.eq(row.device_id.clone()))
            .filter(device_report::Column::FirmwareId.eq(row.firmware_id))
            .exec(txn)
            .await?;
    }
    if let Some(rollout_id) = row.rollout_id {
        count_moves(txn, rollout_id, row.counted, &[(report.status, 1)]).await?;
    }
    Ok(Some(row))
}

/// A later report: the row moves to the new status, and the rollout's counts with it.
async fn next_report(
    txn: &DatabaseTransaction,
    previous: device_report::Model,
    from: ReportStatus,
    report: &Report<'_>,
) -> Result<device_report::Model, ApiError> {
    let status = report.status;
    if let Some(rollout_id) = previous.rollout_id
        && from != status
    {
        count_moves(txn, rollout_id, previous.counted, &[(from, -1), (status, 1)]).await?;
    }
    let count = previous.report_count + 1;
    let failed_now = status == ReportStatus::Failed && from != status;
    let failures = previous.failures + i32::from(failed_now);
    let via = report.request.via.or(previous.via);
    let delta_failures = previous.delta_failures + i32::from(failed_now && via == Some(DownloadVia::Delta));
    let mut row = previous.into_active_model();
    row.status = Set(status);
    row.via = Set(via);
    row.delta_failures = Set(delta_failures);
    row.error = Set(report.error.clone());
    row.report_count = Set(count);
    row.failures = Set(failures);
    if let Some((bytes, rejected)) = report.relay {
        row.relay_bytes_delivered = Set(Some(bytes));
        row.relay_chunks_rejected = Set(Some(rejected));
    }
    row.updated_at = Set(report.now);
    Ok(row.update(txn).await?)
}

/// Records what the device said about itself, commits, and cuts the release off for the device
/// if it failed too often.
async fn finish(
    state: &AppState,
    txn: DatabaseTransaction,
    report: &Report<'_>,
    row: device_report::Model,
) -> Result<ReportView, ApiError> {
    device::record_facts(&txn, report.request, report.release, &report.hardware, report.status, report.now)
        .await?;
    txn.commit().await?;
    cut_off_if_failing(state, &row).await;
    Ok(row.into())
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
