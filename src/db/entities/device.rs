//! What the last report of a device said about it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "device")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: String,
    pub hardware: String,
    pub version: String,
    pub channel: Option<String>,
    pub last_report_at: DateTimeUtc,
    /// The account (token `sub`) the device belongs to; none until its first report after
    /// migration 5.
    pub owner: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
