//! The anti-rollback floor of one hardware id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "hardware_floor")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub hardware: String,
    pub min_version: String,
    pub updated_by: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
