//! Hashing and counting bytes as they stream, with the size limit enforced on the way.

use sha2::{Digest, Sha256};

use super::StorageError;
use crate::domain::Sha256Digest;

/// Feeds every chunk through SHA-256 and a byte count; errors once the count passes `limit`.
pub struct HashingCounter {
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl HashingCounter {
    pub fn new(limit: u64) -> Self {
        Self { hasher: Sha256::new(), size: 0, limit }
    }

    pub fn update(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(StorageError::TooLarge(self.limit));
        }
        self.hasher.update(chunk);
        Ok(())
    }

    pub fn finish(self) -> (u64, Sha256Digest) {
        (self.size, Sha256Digest::from_bytes(self.hasher.finalize().into()))
    }
}
