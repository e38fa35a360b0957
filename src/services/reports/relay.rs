//! What the phone says of an update it relays to the watch over Bluetooth LE: how far the
//! transfer got and how many chunks the watch rejected (each one sent again). Kept with the
//! device's latest report for the release, summed by the rollout view, so admins see where
//! relayed updates stall. Progress only: it never moves a rollout's health.

use serde::{Deserialize, Serialize};

use crate::db::entities::device_report;
use crate::error::ApiError;

/// Who relays the update to the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RelayVia {
    Phone,
}

/// `relay` in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayReport {
    pub via: RelayVia,
    /// Bytes of the update (the image, or the patch) the watch has accepted so far: at most
    /// the image's size.
    #[schema(maximum = 9_223_372_036_854_775_807_u64)]
    pub bytes_delivered: u64,
    /// Chunks the watch rejected so far (a corrupted or tampered piece, sent again).
    #[schema(maximum = 2_147_483_647_u64)]
    pub chunks_rejected: u64,
}

/// The most a device may say it rejected: far above any real relay, far below an overflow of
/// the rollout's sum.
const MAX_CHUNKS_REJECTED: u64 = i32::MAX as u64;

impl RelayReport {
    /// The report's figures as stored, if they fit the release of `size` bytes.
    pub fn checked(&self, size: i64) -> Result<(i64, i64), ApiError> {
        let bytes = i64::try_from(self.bytes_delivered).ok().filter(|b| *b <= size).ok_or_else(|| {
            ApiError::field(
                "relay.bytes_delivered",
                format!("must be at most the image's size, {size} bytes"),
            )
        })?;
        if self.chunks_rejected > MAX_CHUNKS_REJECTED {
            return Err(ApiError::field(
                "relay.chunks_rejected",
                format!("must be at most {MAX_CHUNKS_REJECTED}"),
            ));
        }
        Ok((bytes, self.chunks_rejected as i64))
    }

    /// The relay a stored report carries, if it was relayed.
    pub fn of(row: &device_report::Model) -> Option<Self> {
        let (bytes, rejected) = (row.relay_bytes_delivered?, row.relay_chunks_rejected?);
        Some(Self {
            via: RelayVia::Phone,
            bytes_delivered: u64::try_from(bytes).unwrap_or_default(),
            chunks_rejected: u64::try_from(rejected).unwrap_or_default(),
        })
    }
}
