//! nowatch-ota: the firmware service of the NOWATCH platform and the front door of its API.
//! Dependencies point inward, in layers (README, "Layout"; `.ci/import-cycles` checks them):
//! startup and middleware → routes → services → (catalog, db, storage, signing, auth, config) → core.

pub mod auth;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod proxy;
pub mod routes;
pub mod services;
pub mod signing;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;

/// The domain types and the delta codec live in `nowatch-ota-core`, shared with the fuzz
/// targets and device-side tools.
pub use nowatch_ota_core::chunks;
pub use nowatch_ota_core::delta;
pub use nowatch_ota_core::domain;
