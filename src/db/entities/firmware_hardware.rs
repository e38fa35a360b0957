//! Which hardware ids a release is built for.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "firmware_hardware")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub firmware_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub hardware: String,
    pub version_key: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
