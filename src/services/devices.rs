//! Devices: who may report for one (ownership), what the last report said about it, and what
//! admins see and change of it.
//!
//! A device id belongs to the account (token `sub`) that first reports it; a report for it from
//! another account is 403 and reveals nothing about it. Where tokens name their devices
//! (`auth.device_claim`), the claim decides instead, and a device the token names is bound to
//! the caller. An admin releases the binding when a watch is reset or sold.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockType, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use serde_json::json;

use crate::auth::Caller;
use crate::db::entities::{admin_audit, device, device_report};
use crate::db::firmware::Release;
use crate::domain::{DeviceId, ReportStatus};
use crate::error::ApiError;
use crate::services::reports::{ReportRequest, ReportView};
use crate::state::AppState;

/// What is said to a caller who may not report for a device: the same whether it exists or not.
fn not_yours(device_id: &DeviceId) -> ApiError {
    ApiError::Forbidden(format!("device_id: this token may not report for device {device_id}"))
}

/// The device's row, locked for the report's transaction, once the caller may report for it: a
/// device seen for the first time is bound to the caller; one without an owner (reported before
/// owners existed) is bound by this report.
pub async fn claim(
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
pub async fn record_facts(
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

/// `GET /v1/admin/devices/{device_id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub device_id: String,
    /// The account it belongs to; null when released or never bound.
    pub owner: Option<String>,
    pub hardware: String,
    pub version: String,
    pub channel: Option<String>,
    pub last_report_at: DateTime<Utc>,
    /// Its latest status per release, newest first (at most 50).
    pub reports: Vec<DeviceReportView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceReportView {
    #[serde(flatten)]
    pub report: ReportView,
    /// Whether its outcome counts towards the rollout's health.
    pub counted: bool,
    /// Its `failed` reports for the release.
    pub failures: i32,
}

fn device_not_found(device_id: &DeviceId) -> ApiError {
    ApiError::NotFound(format!("device {device_id} not found"))
}

pub async fn view(state: &AppState, device_id: &DeviceId) -> Result<DeviceView, ApiError> {
    let row = device::Entity::find_by_id(device_id.to_string())
        .one(&state.db)
        .await?
        .ok_or_else(|| device_not_found(device_id))?;
    let reports = device_report::Entity::find()
        .filter(device_report::Column::DeviceId.eq(device_id.to_string()))
        .order_by_desc(device_report::Column::UpdatedAt)
        .limit(50)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|r| DeviceReportView { counted: r.counted, failures: r.failures, report: r.into() })
        .collect();
    Ok(DeviceView {
        device_id: row.device_id,
        owner: row.owner,
        hardware: row.hardware,
        version: row.version,
        channel: row.channel,
        last_report_at: row.last_report_at,
        reports,
    })
}

async fn audit(
    db: &impl ConnectionTrait,
    actor: &str,
    action: &str,
    device_id: &DeviceId,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let row = admin_audit::ActiveModel {
        actor: Set(actor.to_owned()),
        action: Set(action.to_owned()),
        subject: Set(format!("device/{device_id}")),
        detail: Set(detail),
        created_at: Set(Utc::now()),
        ..Default::default()
    };
    admin_audit::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// `DELETE /v1/admin/devices/{device_id}/owner`: the next account to report for it owns it.
pub async fn release_owner(
    state: &AppState,
    device_id: &DeviceId,
    actor: &str,
) -> Result<DeviceView, ApiError> {
    let txn = crate::db::begin_write(&state.db).await?;
    let row = device::Entity::find_by_id(device_id.to_string())
        .lock(LockType::NoKeyUpdate)
        .one(&txn)
        .await?
        .ok_or_else(|| device_not_found(device_id))?;
    let previous = row.owner.clone();
    let mut released = row.into_active_model();
    released.owner = Set(None);
    released.update(&txn).await?;
    audit(&txn, actor, "device.owner_released", device_id, json!({"previous_owner": previous})).await?;
    txn.commit().await?;
    view(state, device_id).await
}

/// `DELETE /v1/admin/devices/{device_id}/failures`: its failed releases are offered to it again.
pub async fn clear_failures(
    state: &AppState,
    device_id: &DeviceId,
    actor: &str,
) -> Result<DeviceView, ApiError> {
    let txn = crate::db::begin_write(&state.db).await?;
    device::Entity::find_by_id(device_id.to_string())
        .one(&txn)
        .await?
        .ok_or_else(|| device_not_found(device_id))?;
    let cleared = device_report::Entity::update_many()
        .col_expr(device_report::Column::Failures, 0.into())
        .filter(device_report::Column::DeviceId.eq(device_id.to_string()))
        .filter(device_report::Column::Failures.gt(0))
        .exec(&txn)
        .await?
        .rows_affected;
    audit(&txn, actor, "device.failures_cleared", device_id, json!({"releases": cleared})).await?;
    txn.commit().await?;
    state.catalog.cut_offs.clear(device_id.as_str());
    view(state, device_id).await
}
