//! Storage hygiene: staging objects older than `storage.staging_ttl_s` (abandoned or crashed
//! uploads) and images no release references (deleted drafts, lost upload races) are deleted.
//! Both wait out the same TTL, so an upload in flight is never swept from under itself.

use std::time::{Duration, SystemTime};

use crate::db;
use crate::state::AppState;
use crate::storage::{ObjectKey, StorageError};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub staging: usize,
    pub orphans: usize,
}

pub async fn run(state: &AppState, ttl: Duration) -> anyhow::Result<SweepReport> {
    let staging = state.store.sweep_staging(ttl).await?;
    let cutoff = SystemTime::now().checked_sub(ttl).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut orphans = 0;
    for object in state.store.list(ObjectKey::FIRMWARE_PREFIX).await? {
        let Some(key @ ObjectKey::Firmware(digest)) = ObjectKey::parse(&object.key) else {
            continue;
        };
        if object.modified <= cutoff && !db::firmware::sha256_in_use(&state.db, &digest.to_hex()).await? {
            match state.store.delete(&key).await {
                Ok(()) | Err(StorageError::NotFound(_)) => orphans += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(SweepReport { staging, orphans })
}
