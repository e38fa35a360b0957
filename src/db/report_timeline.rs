//! A rollout's reports per interval of time, counted by the database: one row per (interval,
//! status) instead of one per device, whatever the fleet's size. The interval of a report is
//! computed from its `updated_at` in each backend's own date arithmetic.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::db::entities::device_report::{Column, Entity};
use crate::domain::ReportStatus;

/// `(interval, status, devices)` of the devices attributed to `rollout_id` whose outcome
/// counts towards its health: interval `i` holds the latest reports from `start + i × step` s
/// on (negative before `start`).
pub async fn counts_by_interval(
    db: &impl ConnectionTrait,
    rollout_id: Uuid,
    start: DateTime<Utc>,
    step: u64,
) -> Result<Vec<(i64, ReportStatus, i64)>, DbErr> {
    // Both numbers are the service's own (a timestamp and a checked step), never the client's
    // text, so they are written into the expression rather than bound.
    let start_s = start.timestamp_micros() as f64 / 1e6;
    let interval = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            format!(r#"CAST(FLOOR((EXTRACT(EPOCH FROM "updated_at") - {start_s}) / {step}) AS BIGINT)"#)
        }
        // SQLite stores the instant as RFC 3339 text, which julianday reads; CAST truncates
        // towards zero, which only matters before `start`, where the caller clamps anyway.
        _ => format!(
            r#"CAST(((julianday("updated_at") - 2440587.5) * 86400.0 - {start_s}) / {step} AS INTEGER)"#
        ),
    };
    Entity::find()
        .select_only()
        .column_as(Expr::cust(interval.clone()), "interval")
        .column(Column::Status)
        .column_as(Column::DeviceId.count(), "devices")
        .filter(Column::RolloutId.eq(rollout_id))
        .filter(Column::Counted.eq(true))
        .group_by(Expr::cust(interval))
        .group_by(Column::Status)
        .into_tuple()
        .all(db)
        .await
}
