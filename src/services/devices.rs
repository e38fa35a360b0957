//! Devices as admins see and change them: the last reports, the owner binding (released when a
//! watch is reset or sold; see [`crate::services::reports`] for how it is made) and failures.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::Serialize;
use serde_json::json;

use crate::db::entities::{admin_audit, device, device_report};
use crate::domain::DeviceId;
use crate::error::ApiError;
use crate::services::reports::ReportView;
use crate::state::AppState;

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
