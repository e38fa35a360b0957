//! The in-memory catalog that answers update checks without touching the database: published
//! releases by hardware (newest first) with their rollout gates, hardware floors, and manifests
//! signed once per (release, hardware, channel) and re-signed when half their lifetime is gone,
//! and the ready patches to each release from the versions devices run.
//!
//! After an admin change this instance commits, the changed release alone is read again and
//! swapped into a copy of the snapshot (`refresh_release`), so an admin's next check sees it
//! and a publish costs the same at 10 releases as at 10,000; floors, which every manifest of a
//! hardware carries, rebuild the whole snapshot. So does a timer every
//! `firmware.catalog_refresh_s` seconds, which bounds how stale another instance's changes can
//! be and renews manifests before they expire. Rebuilds are serialised, each reads the database
//! afresh, and readers swap in the new snapshot atomically.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::config::Settings;
use crate::db::entities::{device_report, firmware, firmware_hardware, hardware_floor, rollout};
use crate::domain::rollout::RolloutState;
use crate::domain::selection::{Candidate, RolloutGate};
use crate::domain::{FirmwareState, Version};
use crate::signing::{ManifestBody, ManifestSigner};
use crate::storage::ObjectKey;

mod cut_offs;
mod deltas;
mod manifests;

pub use cut_offs::DeviceReleases;
pub use deltas::{DeltaOffer, DeltaOffers};
pub use manifests::SignedManifest;
use manifests::{manifest_body, manifest_ttl, reuse_or_sign};

/// A release's public metadata, as devices and the app see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicRelease {
    pub id: Uuid,
    pub version: String,
    pub hardware: Vec<String>,
    pub size: i64,
    pub sha256: String,
    pub state: FirmwareState,
    pub channels: Vec<String>,
    pub release_notes: String,
    pub min_from_version: Option<String>,
    pub mandatory: bool,
    pub published_at: Option<DateTime<Utc>>,
}

impl PublicRelease {
    /// The public part of a stored release, offered on `channels`.
    pub fn new(row: &firmware::Model, hardware: Vec<String>, channels: Vec<String>) -> Self {
        Self {
            id: row.id,
            version: row.version.clone(),
            hardware,
            size: row.size,
            sha256: row.sha256.clone(),
            state: row.state,
            channels,
            release_notes: row.release_notes.clone(),
            min_from_version: row.min_from_version.clone(),
            mandatory: row.mandatory,
            published_at: row.published_at,
        }
    }
}

/// A release that can be offered.
#[derive(Debug)]
pub struct Offered {
    pub id: Uuid,
    pub version: Version,
    pub min_from_version: Option<Version>,
    pub size: u64,
    pub sha256: String,
    pub blob_key: ObjectKey,
    pub gates: Vec<RolloutGate>,
    /// Channel ranks it has a rollout on (not aborted).
    pub channel_ranks: Vec<usize>,
    pub public: PublicRelease,
    /// `public` as JSON, serialised once per rebuild, not per check.
    pub public_json: Box<RawValue>,
    /// By (hardware id, channel rank).
    pub manifests: HashMap<(String, usize), Arc<SignedManifest>>,
    /// Ready patches to it from the versions devices run.
    pub deltas: DeltaOffers,
    /// Its chunk table, once built (`services::chunks`).
    pub chunks: Option<ChunkTable>,
}

/// A release's chunk table: what its manifests sign and `GET /v1/firmware/{id}/chunks` serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkTable {
    pub chunk_size: u32,
    /// SHA-256 of the table, lowercase hex.
    pub sha256: String,
    /// Its length: 32 bytes a chunk.
    pub len: u64,
}

impl ChunkTable {
    /// The table a stored release has, if it has one.
    pub fn of(row: &firmware::Model) -> Option<Self> {
        let chunk_size = u32::try_from(row.chunk_size?).ok()?;
        let size = u64::try_from(row.size).ok()?;
        let sha256 = row.chunk_table_sha256.clone()?;
        Some(Self { chunk_size, sha256, len: crate::chunks::table_len(size, chunk_size) })
    }
}

impl Offered {
    /// The patch a device of `hardware` running `current` may take instead of the image.
    pub fn delta_for(&self, hardware: &str, current: &Version) -> Option<&Arc<DeltaOffer>> {
        let by_version = self.deltas.get(hardware)?;
        by_version.get(current.to_string().as_str())
    }
}

impl Candidate for Offered {
    fn version(&self) -> &Version {
        &self.version
    }
    fn min_from_version(&self) -> Option<&Version> {
        self.min_from_version.as_ref()
    }
    fn gates(&self) -> &[RolloutGate] {
        &self.gates
    }
}

#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Per hardware id, newest first.
    pub by_hardware: HashMap<String, Vec<Arc<Offered>>>,
    pub by_id: HashMap<Uuid, Arc<Offered>>,
    pub floors: HashMap<String, Version>,
}

#[derive(Default)]
pub struct Catalog {
    current: RwLock<Arc<Snapshot>>,
    /// Held while rebuilding; keeps the signed manifests between rebuilds, keyed by their
    /// contents without timestamps.
    signed: tokio::sync::Mutex<HashMap<String, Arc<SignedManifest>>>,
    /// Releases devices failed too often to be offered again; reloaded with every rebuild.
    pub cut_offs: DeviceReleases,
    /// Releases devices failed to install from a patch: offered to them as full images only.
    pub full_only: DeviceReleases,
}

impl Catalog {
    /// The current snapshot; cheap (an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the snapshot from the database.
    pub async fn refresh(
        &self,
        db: &DatabaseConnection,
        signer: &ManifestSigner,
        settings: &Settings,
    ) -> anyhow::Result<()> {
        let mut signed = self.signed.lock().await;
        let Published { rows, mut hardware, mut rollouts, floors, mut deltas } = Published::read(db).await?;
        let now = Utc::now();
        let ttl = manifest_ttl(settings);
        let mut kept = HashMap::new();
        let mut snapshot = Snapshot { floors, ..Default::default() };
        for row in rows {
            let Some(rollouts) = rollouts.remove(&row.id) else { continue };
            let mut hw = hardware.remove(&row.id).unwrap_or_default();
            hw.sort();
            let patches = deltas.remove(&row.id).unwrap_or_default();
            let offered = build_offered(row, hw, rollouts, &snapshot.floors, settings, |body| {
                let (key, manifest) = reuse_or_sign(&signed, body, signer, now, ttl)?;
                kept.insert(key, manifest.clone());
                Ok(manifest)
            })?
            .map(|o| Offered { deltas: patches, ..o });
            let Some(offered) = offered else { continue };
            let offered = Arc::new(offered);
            for h in &offered.public.hardware {
                snapshot.by_hardware.entry(h.clone()).or_default().push(offered.clone());
            }
            snapshot.by_id.insert(offered.id, offered);
        }
        for releases in snapshot.by_hardware.values_mut() {
            releases.sort_by(|a, b| b.version.cmp(&a.version));
        }
        *signed = kept;
        self.swap_in(snapshot);
        let max_failures = settings.rollout.max_failures_per_device;
        self.cut_offs.reload(db, device_report::Column::Failures, max_failures).await?;
        self.full_only.reload(db, device_report::Column::DeltaFailures, 1).await?;
        Ok(())
    }

    /// Reads one release again and swaps it into a copy of the snapshot: added if it is now
    /// offered, replaced if it changed, removed if it no longer is.
    pub async fn refresh_release(
        &self,
        db: &DatabaseConnection,
        signer: &ManifestSigner,
        settings: &Settings,
        id: Uuid,
    ) -> anyhow::Result<()> {
        let mut signed = self.signed.lock().await;
        let row = firmware::Entity::find_by_id(id)
            .one(db)
            .await?
            .filter(|row| row.state == FirmwareState::Published);
        let current = self.snapshot();
        let mut offered = None;
        if let Some(row) = row {
            let mut hardware: Vec<String> = firmware_hardware::Entity::find()
                .filter(firmware_hardware::Column::FirmwareId.eq(id))
                .all(db)
                .await?
                .into_iter()
                .map(|link| link.hardware)
                .collect();
            hardware.sort();
            let rollouts = rollout::Entity::find()
                .filter(rollout::Column::FirmwareId.eq(id))
                .filter(rollout::Column::State.ne(RolloutState::Aborted))
                .all(db)
                .await?;
            let now = Utc::now();
            let ttl = manifest_ttl(settings);
            let patches = deltas::read(db, Some(id)).await?.remove(&id).unwrap_or_default();
            offered = build_offered(row, hardware, rollouts, &current.floors, settings, |body| {
                let (key, manifest) = reuse_or_sign(&signed, body, signer, now, ttl)?;
                signed.insert(key, manifest.clone());
                Ok(manifest)
            })?
            .map(|o| Arc::new(Offered { deltas: patches, ..o }));
        }

        let mut snapshot = Snapshot::clone(&current);
        if let Some(old) = snapshot.by_id.remove(&id) {
            for h in &old.public.hardware {
                if let Some(releases) = snapshot.by_hardware.get_mut(h) {
                    releases.retain(|r| r.id != id);
                }
            }
        }
        if let Some(offered) = offered {
            for h in &offered.public.hardware {
                let releases = snapshot.by_hardware.entry(h.clone()).or_default();
                let at = releases.partition_point(|r| r.version > offered.version);
                releases.insert(at, offered.clone());
            }
            snapshot.by_id.insert(id, offered);
        }
        snapshot.by_hardware.retain(|_, releases| !releases.is_empty());
        self.swap_in(snapshot);
        Ok(())
    }

    fn swap_in(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}

fn build_offered(
    row: firmware::Model,
    hardware: Vec<String>,
    rollouts: Vec<rollout::Model>,
    floors: &HashMap<String, Version>,
    settings: &Settings,
    mut manifest_for: impl FnMut(&ManifestBody) -> anyhow::Result<Arc<SignedManifest>>,
) -> anyhow::Result<Option<Offered>> {
    let channels = &settings.firmware.channels;
    let version = Version::parse(&row.version)?;
    let min_from_version = row.min_from_version.as_deref().map(Version::parse).transpose()?;
    let mut gates = Vec::new();
    for r in &rollouts {
        // A rollout on a channel since removed from the configuration is offered to no one.
        let Some(rank) = channels.iter().position(|c| *c == r.channel) else { continue };
        let Ok(salt) = hex::decode(&r.salt) else { continue };
        gates.push(RolloutGate {
            channel_rank: rank,
            state: r.state,
            basis_points: r.current_basis_points(),
            salt,
        });
    }
    if gates.is_empty() {
        return Ok(None);
    }
    let mut channel_ranks: Vec<usize> = gates.iter().map(|g| g.channel_rank).collect();
    channel_ranks.sort();
    channel_ranks.dedup();
    let offered_on = channel_ranks.iter().map(|&r| channels[r].clone()).collect();
    let public = PublicRelease::new(&row, hardware.clone(), offered_on);
    let mut manifests = HashMap::new();
    for h in &hardware {
        for &rank in &channel_ranks {
            let body = manifest_body(&row, h, &channels[rank], floors.get(h))?;
            manifests.insert((h.clone(), rank), manifest_for(&body)?);
        }
    }
    let digest =
        crate::domain::Sha256Digest::parse(&row.sha256).map_err(|e| anyhow::anyhow!("stored sha256: {e}"))?;
    Ok(Some(Offered {
        chunks: ChunkTable::of(&row),
        id: row.id,
        version,
        min_from_version,
        size: u64::try_from(row.size)?,
        sha256: row.sha256,
        blob_key: ObjectKey::Firmware(digest),
        gates,
        channel_ranks,
        public_json: serde_json::value::to_raw_value(&public)?,
        public,
        manifests,
        deltas: DeltaOffers::new(),
    }))
}

/// Everything published, as the database holds it now.
struct Published {
    rows: Vec<firmware::Model>,
    hardware: HashMap<Uuid, Vec<String>>,
    /// Those not aborted.
    rollouts: HashMap<Uuid, Vec<rollout::Model>>,
    floors: HashMap<String, Version>,
    deltas: HashMap<Uuid, DeltaOffers>,
}

impl Published {
    async fn read(db: &DatabaseConnection) -> anyhow::Result<Self> {
        let rows = firmware::Entity::find()
            .filter(firmware::Column::State.eq(FirmwareState::Published))
            .all(db)
            .await?;
        let published: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut hardware: HashMap<Uuid, Vec<String>> = HashMap::new();
        for link in firmware_hardware::Entity::find().all(db).await? {
            if published.contains(&link.firmware_id) {
                hardware.entry(link.firmware_id).or_default().push(link.hardware);
            }
        }
        let mut rollouts: HashMap<Uuid, Vec<rollout::Model>> = HashMap::new();
        let live =
            rollout::Entity::find().filter(rollout::Column::State.ne(RolloutState::Aborted)).all(db).await?;
        for r in live {
            if published.contains(&r.firmware_id) {
                rollouts.entry(r.firmware_id).or_default().push(r);
            }
        }
        let mut floors = HashMap::new();
        for floor in hardware_floor::Entity::find().all(db).await? {
            if let Ok(version) = Version::parse(&floor.min_version) {
                floors.insert(floor.hardware, version);
            }
        }
        let deltas = deltas::read(db, None).await?;
        Ok(Self { rows, hardware, rollouts, floors, deltas })
    }
}
