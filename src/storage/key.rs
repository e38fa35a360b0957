//! Object keys: the one place that knows where things live in the store.

use std::fmt;

use uuid::Uuid;

use crate::domain::Sha256Digest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKey {
    /// A verified image, addressed by its content.
    Firmware(Sha256Digest),
    /// An upload in progress or abandoned.
    Staging(Uuid),
    /// A patch from one image to another, addressed by its content (`services::deltas`).
    Delta(Sha256Digest),
    /// An image's chunk table, addressed by its content (`services::chunks`).
    Chunks(Sha256Digest),
}

impl ObjectKey {
    pub const FIRMWARE_PREFIX: &str = "firmware/";
    pub const STAGING_PREFIX: &str = "staging/";
    pub const DELTA_PREFIX: &str = "delta/";
    pub const CHUNKS_PREFIX: &str = "chunks/";

    /// Parses a key the store listed; anything else (foreign objects in a shared bucket) is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        if let Some(hex) = raw.strip_prefix(Self::FIRMWARE_PREFIX) {
            return Sha256Digest::parse(hex).ok().map(Self::Firmware);
        }
        if let Some(hex) = raw.strip_prefix(Self::DELTA_PREFIX) {
            return Sha256Digest::parse(hex).ok().map(Self::Delta);
        }
        if let Some(hex) = raw.strip_prefix(Self::CHUNKS_PREFIX) {
            return Sha256Digest::parse(hex).ok().map(Self::Chunks);
        }
        let id = raw.strip_prefix(Self::STAGING_PREFIX)?;
        Uuid::parse_str(id).ok().map(Self::Staging)
    }

    pub const fn content_type(&self) -> &'static str {
        "application/octet-stream"
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Firmware(digest) => write!(f, "{}{digest}", Self::FIRMWARE_PREFIX),
            Self::Staging(id) => write!(f, "{}{id}", Self::STAGING_PREFIX),
            Self::Delta(digest) => write!(f, "{}{digest}", Self::DELTA_PREFIX),
            Self::Chunks(digest) => write!(f, "{}{digest}", Self::CHUNKS_PREFIX),
        }
    }
}
