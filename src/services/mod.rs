//! Use cases: each joins the database, the blob store and signing under the domain's rules.
//! Every write is one database transaction, attributed to the caller's `sub`.

pub mod channel_access;
pub mod chunks;
pub mod deltas;
pub mod devices;
pub mod downloads;
pub mod floors;
pub mod limits;
pub mod metrics_scrape;
pub mod offers;
pub mod relay_sums;
pub mod releases;
pub mod reports;
pub mod rollout_engine;
pub mod rollouts;
pub mod sweep;
pub mod timeline;
pub mod upload;
