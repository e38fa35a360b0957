//! The ready patches of offered releases, as the update check looks them up: by the device's
//! hardware, then the version it runs.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use uuid::Uuid;

use crate::db;
use crate::db::entities::firmware_hardware;

/// A ready patch to one release.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeltaOffer {
    /// The version the patch starts from.
    pub from_version: String,
    /// The image the patch starts from: a device whose running image has another digest
    /// must take the full image.
    pub from_sha256: String,
    /// The patch's size in bytes.
    pub size: u64,
    /// The patch's SHA-256 (its ETag). What the patch produces is the release's image, whose
    /// size and SHA-256 the signed manifest gives: verify it before installing.
    pub sha256: String,
    /// `detools-sequential-heatshrink` or `detools-sequential-none`: a detools "sequential"
    /// patch (PyPI `detools`; its C library applies it on a microcontroller).
    pub format: String,
}

/// By hardware id, then by the version devices run (canonical text).
pub type DeltaOffers = HashMap<String, HashMap<String, Arc<DeltaOffer>>>;

/// The ready patches of release `id` (all releases: `None`), each under the hardware ids of the
/// release it starts from.
pub async fn read(db: &impl ConnectionTrait, id: Option<Uuid>) -> Result<HashMap<Uuid, DeltaOffers>, DbErr> {
    let rows = db::deltas::ready(db, id).await?;
    let sources: Vec<Uuid> = rows.iter().filter_map(|r| r.from_firmware_id).collect();
    let mut hardware_of: HashMap<Uuid, Vec<String>> = HashMap::new();
    for link in firmware_hardware::Entity::find()
        .filter(firmware_hardware::Column::FirmwareId.is_in(sources))
        .all(db)
        .await?
    {
        hardware_of.entry(link.firmware_id).or_default().push(link.hardware);
    }
    let mut by_release: HashMap<Uuid, DeltaOffers> = HashMap::new();
    for row in rows {
        let (Some(source), Some(size), Some(sha256)) = (row.from_firmware_id, row.size, row.sha256) else {
            continue;
        };
        let offer = Arc::new(DeltaOffer {
            from_version: row.from_version,
            from_sha256: row.from_sha256,
            size: u64::try_from(size).unwrap_or_default(),
            sha256,
            format: row.format,
        });
        let offers = by_release.entry(row.firmware_id).or_default();
        for hardware in hardware_of.get(&source).into_iter().flatten() {
            offers.entry(hardware.clone()).or_default().insert(offer.from_version.clone(), offer.clone());
        }
    }
    Ok(by_release)
}
