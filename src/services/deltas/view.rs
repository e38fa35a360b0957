//! The admin view of a release's patches.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::db::entities::{firmware, firmware_delta};
use crate::domain::DeltaState;

/// One patch to the release, or the decision not to build it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeltaView {
    pub from_version: String,
    /// The stored image the patch starts from; absent when the service stores none.
    pub from_sha256: Option<String>,
    pub from_firmware_id: Option<Uuid>,
    /// Devices of the release's hardware on `from_version` when it was last planned.
    pub devices: i64,
    pub state: DeltaState,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    pub format: String,
    /// The patch's size in bytes, once built.
    pub size: Option<i64>,
    /// `size` over the full image's size, once built.
    pub ratio: Option<f64>,
    pub sha256: Option<String>,
    pub attempts: i32,
    pub built_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/admin/firmware/{id}/deltas`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeltaList {
    pub firmware_id: Uuid,
    pub version: String,
    /// The full image's size, which each ratio is relative to.
    pub size: i64,
    pub items: Vec<DeltaView>,
}

impl DeltaList {
    pub fn new(release: &firmware::Model, rows: Vec<firmware_delta::Model>) -> Self {
        let full = release.size;
        let items = rows
            .into_iter()
            .map(|r| DeltaView {
                ratio: r.size.filter(|_| full > 0).map(|s| (s as f64 / full as f64 * 1e4).round() / 1e4),
                from_sha256: Some(r.from_sha256).filter(|s| !s.is_empty()),
                from_version: r.from_version,
                from_firmware_id: r.from_firmware_id,
                devices: r.devices,
                state: r.state,
                reason: r.reason,
                format: r.format,
                size: r.size,
                sha256: r.sha256,
                attempts: r.attempts,
                built_at: r.built_at,
                updated_at: r.updated_at,
            })
            .collect();
        Self { firmware_id: release.id, version: release.version.clone(), size: full, items }
    }
}
