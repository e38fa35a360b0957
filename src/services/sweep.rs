//! Storage hygiene: staging objects older than `storage.staging_ttl_s` (abandoned or crashed
//! uploads), multipart uploads left incomplete (S3), images no release references (deleted
//! drafts, lost upload races), patches no ready delta of a published release refers to
//! (rebuilt, revoked, dropped builds) and chunk tables no release records are deleted. All wait out the same TTL, so an upload in flight is
//! never swept from under itself.
//!
//! An image is deleted only if, at the moment of the delete, it is still unmodified since
//! before the TTL (`BlobStore::delete_if_unmodified_since`), not merely in the listing the sweep
//! started from: an upload of the same bytes moves a new copy into place before it writes its
//! row, and that copy must survive the sweep that listed the old one.

use std::time::{Duration, SystemTime};

use crate::db;
use crate::state::AppState;
use crate::storage::ObjectKey;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub staging: usize,
    pub orphans: usize,
    /// Incomplete multipart uploads aborted.
    pub multipart: usize,
}

pub async fn run(state: &AppState, ttl: Duration) -> anyhow::Result<SweepReport> {
    let cutoff = SystemTime::now().checked_sub(ttl).unwrap_or(SystemTime::UNIX_EPOCH);
    let staging = state.store.sweep_staging(ttl).await?;
    let multipart = state.store.abort_incomplete_uploads(ttl).await?;
    let mut orphans = 0;
    for object in state.store.list(ObjectKey::FIRMWARE_PREFIX).await? {
        let Some(key @ ObjectKey::Firmware(digest)) = ObjectKey::parse(&object.key) else {
            continue;
        };
        if object.modified > cutoff || db::firmware::sha256_in_use(&state.db, &digest.to_hex()).await? {
            continue;
        }
        if state.store.delete_if_unmodified_since(&key, cutoff).await? {
            orphans += 1;
        }
    }
    for object in state.store.list(ObjectKey::DELTA_PREFIX).await? {
        let Some(key @ ObjectKey::Delta(digest)) = ObjectKey::parse(&object.key) else {
            continue;
        };
        if object.modified > cutoff || db::deltas::patch_in_use(&state.db, &digest.to_hex()).await? {
            continue;
        }
        if state.store.delete_if_unmodified_since(&key, cutoff).await? {
            orphans += 1;
        }
    }
    for object in state.store.list(ObjectKey::CHUNKS_PREFIX).await? {
        let Some(key @ ObjectKey::Chunks(digest)) = ObjectKey::parse(&object.key) else {
            continue;
        };
        if object.modified > cutoff || db::chunk_tables::in_use(&state.db, &digest.to_hex()).await? {
            continue;
        }
        if state.store.delete_if_unmodified_since(&key, cutoff).await? {
            orphans += 1;
        }
    }
    Ok(SweepReport { staging, orphans, multipart })
}
