//! What a report does to its device: who owns it, and what it last said about itself.
//!
//! A device id belongs to the account (token `sub`) that first reports it; a report for it from
//! another account is 403 and reveals nothing about it. Where tokens name their devices
//! (`auth.device_claim`), the claim decides instead, and a device the token names is bound to
//! the caller. An admin releases the binding when a watch is reset or sold.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockType, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
    Set,
};

use super::ReportRequest;
use crate::auth::Caller;
use crate::db::entities::device;
use crate::db::firmware::Release;
use crate::domain::{DeviceId, ReportStatus};
use crate::error::ApiError;
use crate::state::AppState;

/// What is said to a caller who may not report for a device: the same whether it exists or not.
fn not_yours(device_id: &DeviceId) -> ApiError {
    ApiError::Forbidden(format!("device_id: this token may not report for device {device_id}"))
}

/// The device's row, locked for the report's transaction, once the caller may report for it: a
/// device seen for the first time is bound to the caller; one without an owner (reported before
/// owners existed) is bound by this report.
pub(super) async fn claim(
    state: &AppState,
    txn: &impl ConnectionTrait,
    caller: &Caller,
    device_id: &DeviceId,
    hardware: &str,
    now: DateTime<Utc>,
) -> Result<device::Model, ApiError> {
    if let Some(named) = &caller.devices
        && !named.iter().any(|d| d == device_id.as_str())
    {
        return Err(not_yours(device_id));
    }
    let fresh = device::Model {
        device_id: device_id.to_string(),
        hardware: hardware.to_owned(),
        version: "unknown".to_owned(),
        channel: None,
        last_report_at: now,
        owner: Some(caller.sub.clone()),
    };
    let inserted = device::Entity::insert(device::ActiveModel::from(fresh.clone()))
        .on_conflict(OnConflict::column(device::Column::DeviceId).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
    if inserted == 1 {
        // A new row is this transaction's alone until it commits: nothing to read back or lock.
        // A refusal rolls it back with the transaction: nothing is created.
        state.limits.new_device(&caller.sub)?;
        return Ok(fresh);
    }
    let row = device::Entity::find_by_id(device_id.to_string())
        .lock(LockType::NoKeyUpdate)
        .one(txn)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("device {device_id} vanished")))?;
    match row.owner.as_deref() {
        Some(owner) if owner == caller.sub => Ok(row),
        Some(_) if caller.devices.is_none() => Err(not_yours(device_id)),
        _ => {
            let mut bound = row.into_active_model();
            bound.owner = Set(Some(caller.sub.clone()));
            Ok(bound.update(txn).await?)
        }
    }
}

/// What an accepted report says about the device itself: its hardware, its version (the
/// release's once installed, else the `from_version` it sent), its channel, when it last spoke.
pub(super) async fn record_facts(
    txn: &impl ConnectionTrait,
    request: &ReportRequest,
    release: &Release,
    hardware: &str,
    status: ReportStatus,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let version = match status {
        ReportStatus::Installed => Some(release.row.version.clone()),
        _ => request.from_version.as_ref().map(|v| v.to_string()),
    };
    let mut update = device::Entity::update_many()
        .col_expr(device::Column::Hardware, hardware.into())
        .col_expr(device::Column::LastReportAt, now.into())
        .filter(device::Column::DeviceId.eq(request.device_id.to_string()));
    if let Some(version) = version {
        update = update.col_expr(device::Column::Version, version.into());
    }
    if let Some(channel) = &request.channel {
        update = update.col_expr(device::Column::Channel, channel.to_string().into());
    }
    update.exec(txn).await?;
    Ok(())
}
