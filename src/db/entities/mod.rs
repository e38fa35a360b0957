//! sea-orm entities, one per table.

pub mod device;
pub mod device_report;
pub mod firmware;
pub mod firmware_hardware;
pub mod hardware_floor;
pub mod rollout;
pub mod rollout_event;
pub mod rollout_report_count;
