//! The retry cut-off: a device that reported `failed` for a release
//! `rollout.max_failures_per_device` times is not offered that release again, so a watch does
//! not flash a bad build over and over. It gets the next best release or nothing, until a newer
//! release exists (selection prefers it anyway) or an admin clears its failures.
//!
//! The update check learns this from memory, never the database: an instance that takes the
//! report cuts the device off at once, and every instance reloads the set from `device_report`
//! with each catalog rebuild (`firmware.catalog_refresh_s`), which also carries an admin's clear
//! to the other instances.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::db::entities::device_report;

#[derive(Default)]
pub struct CutOffs {
    by_device: RwLock<HashMap<String, Vec<Uuid>>>,
    /// Whether any device is cut off: the check's fast path reads one atomic, not the map.
    any: AtomicBool,
}

impl CutOffs {
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

    /// Replaces the set with what `device_report` says now (`failures >= max`; 0 turns the
    /// cut-off off).
    pub async fn reload(&self, db: &impl ConnectionTrait, max: u32) -> Result<(), DbErr> {
        let mut fresh: HashMap<String, Vec<Uuid>> = HashMap::new();
        if max > 0 {
            let rows: Vec<(String, Uuid)> = device_report::Entity::find()
                .select_only()
                .column(device_report::Column::DeviceId)
                .column(device_report::Column::FirmwareId)
                // `failures > 0` is the partial index's own condition (migration 5), stated so
                // that SQLite, which does not infer it from `>=`, reads the index too.
                .filter(device_report::Column::Failures.gt(0))
                .filter(device_report::Column::Failures.gte(i32::try_from(max).unwrap_or(i32::MAX)))
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
