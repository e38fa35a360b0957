//! The rules of nowatch-ota that need no server: the domain types (versions, ids, digests, Range
//! headers, rollout and selection rules), which request paths are safe, manifest signing and
//! verification, chunk tables and delta patches.
//!
//! A crate of its own so that what links it stays small: the fuzz targets (`tests/fuzz`) build
//! in minutes instead of compiling actix, sea-orm and the AWS SDK with coverage instrumentation,
//! and a device-side tool can verify manifests with the very code that signs them. The service
//! re-exports both modules (`nowatch_ota::domain`, `nowatch_ota::signing`).

pub mod chunks;
pub mod delta;
pub mod domain;
pub mod request_path;
pub mod signing;
