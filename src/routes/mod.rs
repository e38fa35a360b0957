//! Thin HTTP handlers, one module per resource: parse the request, call a service, shape the
//! answer. Mounted by [`crate::startup`].

pub mod admin_devices;
pub mod admin_firmware;
pub mod admin_hardware;
pub mod admin_rollouts;
pub mod docs;
pub mod download;
pub mod firmware;
pub mod health;
pub mod http;
pub mod metrics;
pub mod root;
