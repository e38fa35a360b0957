//! sea-orm entities, one per table.

pub mod admin_audit;
pub mod device;
pub mod device_report;
pub mod firmware;
pub mod firmware_delta;
pub mod firmware_hardware;
pub mod hardware_floor;
pub mod rollout;
pub mod rollout_event;
pub mod rollout_owner_count;
pub mod rollout_report_count;
pub mod rollout_uncounted_count;
