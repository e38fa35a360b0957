//! Sets of (device, release) pairs the update check must know without the database, reloaded
//! from `device_report` with every catalog rebuild. Two are kept:
//!
//! - `full_only`: a device that reported `failed` while installing a release from a patch is
//!   offered that release's full image from then on (`device_report.delta_failures`);
//! - the retry cut-off: a device that reported `failed` for a release
//!   `rollout.max_failures_per_device` times is not offered that release again, so a watch does
//!   not flash a bad build over and over. It gets the next best release or nothing, until a
//!   newer release exists (selection prefers it anyway) or an admin clears its failures.
//!
//! An instance that takes the report updates its set at once, and every instance reloads both
//! sets with each catalog rebuild (`firmware.catalog_refresh_s`), which also carries an admin's
//! clear to the other instances.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::db::entities::device_report;

#[derive(Default)]
pub struct DeviceReleases {
    by_device: RwLock<HashMap<String, Vec<Uuid>>>,
    /// Whether any device is cut off: the check's fast path reads one atomic, not the map.
    any: AtomicBool,
}

impl DeviceReleases {
    /// The releases `device` is cut off from, if any.
    pub fn releases_for(&self, device: &str) -> Option<Vec<Uuid>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let map = self.by_device.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(device).cloned()
    }

    pub fn add(&self, device: &str, firmware_id: Uuid) {
        let mut map = self.by_device.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let releases = map.entry(device.to_owned()).or_default();
        if !releases.contains(&firmware_id) {
            releases.push(firmware_id);
        }
        self.any.store(true, Ordering::Release);
    }

    pub fn clear(&self, device: &str) {
        let mut map = self.by_device.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(device);
        self.any.store(!map.is_empty(), Ordering::Release);
    }

    /// Replaces the set with what `device_report` says now: the rows whose `counter` (a column
    /// with a partial index on `counter > 0`) is at least `at_least`; 0 empties the set.
    pub async fn reload(
        &self,
        db: &impl ConnectionTrait,
        counter: device_report::Column,
        at_least: u32,
    ) -> Result<(), DbErr> {
        let mut fresh: HashMap<String, Vec<Uuid>> = HashMap::new();
        if at_least > 0 {
            let rows: Vec<(String, Uuid)> = device_report::Entity::find()
                .select_only()
                .column(device_report::Column::DeviceId)
                .column(device_report::Column::FirmwareId)
                // `> 0` is the partial index's own condition (migrations 5 and 7), stated so
                // that SQLite, which does not infer it from `>=`, reads the index too.
                .filter(counter.gt(0))
                .filter(counter.gte(i32::try_from(at_least).unwrap_or(i32::MAX)))
                .into_tuple()
                .all(db)
                .await?;
            for (device, firmware_id) in rows {
                fresh.entry(device).or_default().push(firmware_id);
            }
        }
        let mut map = self.by_device.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.any.store(!fresh.is_empty(), Ordering::Release);
        *map = fresh;
        Ok(())
    }
}
