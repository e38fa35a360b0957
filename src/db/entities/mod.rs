//! sea-orm entities, one per table of the first migration.

pub mod device;
pub mod device_report;
pub mod firmware;
pub mod firmware_hardware;
pub mod hardware_floor;
pub mod rollout;
pub mod rollout_event;
