//! A release: one uploaded image and what is known about it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "firmware")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub version: String,
    pub version_key: String,
    pub size: i64,
    pub sha256: String,
    pub release_signature: Option<String>,
    pub release_notes: String,
    pub min_from_version: Option<String>,
    pub mandatory: bool,
    pub state: crate::domain::FirmwareState,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub published_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    /// Bytes per chunk of the image's chunk table, once it is built (`services::chunks`).
    pub chunk_size: Option<i32>,
    /// SHA-256 of the chunk table (stored as `chunks/<sha256>`), which its manifests sign.
    pub chunk_table_sha256: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
