//! The checks a watch makes, named as the relay spec and `nowatch_ota_core::signing::DEVICE_CHECKS`
//! name them, and [`Rejection`]: which one refused, and a short fixed reason.

use core::fmt;

/// One device check. [`Check::name`] is the spec's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// A trusted key's ed25519 signature verifies over the bytes of `signed` as served.
    Signature,
    /// The signed body is a manifest object the verifier reads, and `type` is
    /// `nowatch-firmware-manifest`.
    Type,
    /// Now is before `expires_at`.
    Expiry,
    /// `hardware` is exactly `[the device's hardware]`.
    Hardware,
    /// The manifest's channel is the device's or a more stable one.
    Channel,
    /// `version` is above the device's current version.
    Newer,
    /// The device's current version is at least `min_from_version`.
    MinFromVersion,
    /// `version` is at least `min_version` and the device's own stored floor.
    Floor,
    /// The whole image has the manifest's size and SHA-256 (and the fields naming the image,
    /// `size`, `sha256`, `firmware_id`, `mandatory`, are well formed).
    Image,
    /// The chunk table is 32 bytes per chunk and has the manifest's `chunk_table_sha256` (and the
    /// chunk fields are both present or both absent, and well formed).
    ChunkTable,
    /// A chunk has its table entry's SHA-256 and its expected length.
    Chunk,
}

impl Check {
    /// Every check, in the order a device makes them.
    pub const ALL: [Check; 11] = [
        Check::Signature,
        Check::Type,
        Check::Expiry,
        Check::Hardware,
        Check::Channel,
        Check::Newer,
        Check::MinFromVersion,
        Check::Floor,
        Check::Image,
        Check::ChunkTable,
        Check::Chunk,
    ];

    /// The spec's name: `signature`, `type`, `expiry`, `hardware`, `channel`, `newer`,
    /// `min_from_version`, `floor`, `image`, `chunk_table`, `chunk`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Type => "type",
            Self::Expiry => "expiry",
            Self::Hardware => "hardware",
            Self::Channel => "channel",
            Self::Newer => "newer",
            Self::MinFromVersion => "min_from_version",
            Self::Floor => "floor",
            Self::Image => "image",
            Self::ChunkTable => "chunk_table",
            Self::Chunk => "chunk",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the verifier refused: the check that failed and a fixed, human-readable reason (no
/// allocation, so a watch can log it as it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The check that refused.
    pub check: Check,
    /// What it found, in a few words.
    pub reason: &'static str,
}

impl Rejection {
    /// A rejection by `check` for `reason`.
    pub const fn new(check: Check, reason: &'static str) -> Self {
        Self { check, reason }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check.name(), self.reason)
    }
}

impl core::error::Error for Rejection {}
