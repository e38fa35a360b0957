//! One link of a rollout's append-only, hash-chained audit trail.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "rollout_event")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub rollout_id: Uuid,
    pub seq: i32,
    pub actor: String,
    pub kind: crate::domain::rollout::EventKind,
    pub detail: Json,
    pub prev_hash: String,
    pub hash: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
