//! The latest status of one device for one release.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "device_report")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub firmware_id: Uuid,
    pub rollout_id: Option<Uuid>,
    pub status: crate::domain::ReportStatus,
    pub error: Option<String>,
    pub from_version: Option<String>,
    pub report_count: i64,
    pub updated_at: DateTimeUtc,
    /// Whether its outcome counts towards the rollout's health (decided at the first report).
    pub counted: bool,
    /// `failed` reports of the device for the release.
    pub failures: i32,
    /// How the device said it fetched the release (`delta` or `full`), if it said.
    pub via: Option<crate::domain::DownloadVia>,
    /// `failed` reports while on a delta: the device is offered the full image from then on.
    pub delta_failures: i32,
    /// Bytes the phone said it delivered to the watch (null: not relayed).
    pub relay_bytes_delivered: Option<i64>,
    /// Chunks the watch rejected during the relay, as the phone said.
    pub relay_chunks_rejected: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
