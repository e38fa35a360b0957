//! A rollout's relayed updates, summed from the latest reports of the devices that count towards
//! its health (`counts`): how many devices a phone relays to, the bytes their watches accepted,
//! the chunks they rejected, and where those devices are (by status), so admins see where relays
//! stall. Each device's figures are the ones its latest report sent (last writer wins: a relay
//! that starts again reports lower figures, and that is what it is).

use std::collections::BTreeMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;
use uuid::Uuid;

use crate::db::entities::device_report::{self, Column};
use crate::domain::ReportStatus;

/// `relay` in the rollout view.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RelaySums {
    /// Devices whose latest report says a phone relays the update.
    pub devices: u64,
    pub bytes_delivered: u64,
    pub chunks_rejected: u64,
    /// Those devices by their latest status: many at `downloading` is a relay that stalls.
    pub by_status: BTreeMap<String, u64>,
}

pub async fn of_rollout(db: &impl ConnectionTrait, id: Uuid) -> Result<RelaySums, DbErr> {
    // CAST: PostgreSQL's SUM of a BIGINT is a NUMERIC.
    let rows: Vec<(String, i64, i64, i64)> = device_report::Entity::find()
        .select_only()
        .column(Column::Status)
        .column_as(Column::DeviceId.count(), "devices")
        .column_as(Expr::cust("CAST(SUM(relay_bytes_delivered) AS BIGINT)"), "bytes")
        .column_as(Expr::cust("CAST(SUM(relay_chunks_rejected) AS BIGINT)"), "rejected")
        .filter(Column::RolloutId.eq(id))
        // As the health counts: one account cannot fill the view with devices of its own.
        .filter(Column::Counted.eq(true))
        .filter(Column::RelayBytesDelivered.is_not_null())
        .group_by(Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let mut sums = RelaySums {
        by_status: ReportStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect(),
        ..RelaySums::default()
    };
    for (status, devices, bytes, rejected) in rows {
        let [devices, bytes, rejected] =
            [devices, bytes, rejected].map(|n| u64::try_from(n).unwrap_or_default());
        sums.devices += devices;
        sums.bytes_delivered = sums.bytes_delivered.saturating_add(bytes);
        sums.chunks_rejected = sums.chunks_rejected.saturating_add(rejected);
        sums.by_status.insert(status, devices);
    }
    Ok(sums)
}
