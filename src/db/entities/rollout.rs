//! A release's rollout on one channel.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "rollout")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub firmware_id: Uuid,
    pub channel: String,
    pub salt: String,
    pub stages: Json,
    pub current_stage: i32,
    pub state: String,
    pub max_failure_rate: f64,
    pub min_reports: i64,
    pub created_by: String,
    pub stage_started_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// How many events the chain holds, and the newest one's hash: the chain's anchor.
    pub event_count: i32,
    pub chain_head: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
