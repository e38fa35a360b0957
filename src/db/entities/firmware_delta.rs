//! A patch from a version devices run to a release (or the decision not to build one).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "firmware_delta")]
pub struct Model {
    /// The release the patch produces.
    #[sea_orm(primary_key, auto_increment = false)]
    pub firmware_id: Uuid,
    /// The version devices run, which the patch starts from.
    #[sea_orm(primary_key, auto_increment = false)]
    pub from_version: String,
    /// The stored image of that version the patch starts from; `""` when there is none (the
    /// row is then `skipped`). Two hardware ids may run different images of one version.
    #[sea_orm(primary_key, auto_increment = false)]
    pub from_sha256: String,
    /// The release that stored image belongs to.
    pub from_firmware_id: Option<Uuid>,
    pub state: crate::domain::DeltaState,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// Devices of the release's hardware on `from_version` when it was last planned.
    pub devices: i64,
    /// `detools-sequential-heatshrink` (see `nowatch_ota_core::delta`).
    pub format: String,
    pub size: Option<i64>,
    /// The patch's own digest: its key in the store (`delta/<sha256>`) and its ETag.
    pub sha256: Option<String>,
    /// The build holding it (state `building`) and until when; an expired lease is taken over.
    pub claim: Option<Uuid>,
    pub lease_until: Option<DateTimeUtc>,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub built_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
