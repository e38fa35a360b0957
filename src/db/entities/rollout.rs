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
    pub state: crate::domain::rollout::RolloutState,
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

impl Model {
    /// The share this rollout admits now, in basis points: its current stage's, whatever its
    /// state. Unreadable stages admit no one.
    pub fn current_basis_points(&self) -> u32 {
        crate::domain::rollout::Stages::from_json(&self.stages)
            .ok()
            .and_then(|s| s.as_slice().get(self.current_stage as usize).map(|stage| stage.basis_points))
            .unwrap_or(0)
    }
}
