//! Blob storage: one [`BlobStore`] with two backends, `fs` (the embedded default) and `s3`.
//! Every path is an [`ObjectKey`]; images are content-addressed (`firmware/<sha256>`), and an
//! upload lands in `staging/<uuid>` first, is hashed and sized while it streams, and is moved
//! into place only once verified. A crash leaves at worst a staging object, which the sweep
//! deletes after `storage.staging_ttl_s`.
//!
//! The store is an enum rather than a trait object or a generic so that handlers never carry a
//! type parameter and adding a backend is one match arm per operation.

mod fs;
mod key;
mod s3;
mod s3_errors;
mod s3_multipart;
mod staging_file;
mod stream;

use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::Stream;

pub use fs::FsStore;
pub use key::ObjectKey;
pub use s3::S3Store;
pub use stream::{HashingCounter, IdleTimeout, SizeGuard};

use crate::config::{StorageBackend, StorageSettings};
use crate::domain::Sha256Digest;

/// A byte stream read from the store; `Send` so it can feed an HTTP response.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(String),
    /// The incoming stream passed the size limit; nothing was kept.
    #[error("larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The client's stream failed (disconnect, malformed multipart); nothing was kept.
    #[error("{0}")]
    Client(String),
    #[error("this backend cannot {0}")]
    Unsupported(&'static str),
    #[error("filesystem: {0}")]
    Io(#[from] std::io::Error),
    #[error("s3: {0}")]
    S3(String),
    /// The store could not be reached (refused, cut off, no answer in time): a 503, worth a
    /// retry, where any other failure of the store is a 500.
    #[error("unreachable: {0}")]
    Unavailable(String),
}

/// A finished staging upload: where it is, how big, and its digest.
#[derive(Debug, Clone)]
pub struct StagedBlob {
    pub key: ObjectKey,
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// An inclusive byte range `start..=end`, already checked against the object's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

pub enum BlobStore {
    Fs(FsStore),
    S3(S3Store),
}

impl BlobStore {
    pub async fn from_settings(settings: &StorageSettings) -> anyhow::Result<Self> {
        Ok(match settings.backend {
            StorageBackend::Fs => Self::Fs(FsStore::new(settings.fs.root.clone()).await?),
            StorageBackend::S3 => Self::S3(S3Store::new(&settings.s3).await?),
        })
    }

    /// Streams `body` into a new staging object, hashing and counting as it goes; refuses (and
    /// deletes what it wrote) once more than `limit` bytes arrive or the stream fails.
    pub async fn put_staging<S, E>(&self, body: S, limit: u64) -> Result<StagedBlob, StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let key = ObjectKey::Staging(uuid::Uuid::new_v4());
        let body = SizeGuard::new(body, limit);
        let result = match self {
            Self::Fs(s) => s.put(&key, body).await,
            Self::S3(s) => s.put(&key, body).await,
        };
        match result {
            Ok((size, sha256)) => Ok(StagedBlob { key, size, sha256 }),
            Err(e) => {
                // Best effort: the sweep deletes whatever this misses.
                if let Err(cleanup) = self.delete(&key).await {
                    tracing::warn!(%key, error = %cleanup, "could not delete a failed staging upload");
                }
                Err(e)
            }
        }
    }

    /// Moves a verified staging object to its final key (replacing nothing if the final key,
    /// being content-addressed, already holds the same bytes).
    pub async fn promote(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        match self {
            Self::Fs(s) => s.rename(from, to).await,
            Self::S3(s) => s.rename(from, to).await,
        }
    }

    /// The object's size, or `None` if it does not exist.
    pub async fn size(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        match self {
            Self::Fs(s) => s.size(key).await,
            Self::S3(s) => s.size(key).await,
        }
    }

    /// Streams the object, or one range of it.
    pub async fn open(&self, key: &ObjectKey, range: Option<ByteRange>) -> Result<BlobStream, StorageError> {
        match self {
            Self::Fs(s) => s.open(key, range).await,
            Self::S3(s) => s.open(key, range).await,
        }
    }

    /// A URL that GETs the object without credentials until `ttl` passes (S3 only).
    pub async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> Result<String, StorageError> {
        match self {
            Self::Fs(_) => Err(StorageError::Unsupported("presign URLs")),
            Self::S3(s) => s.presign_get(key, ttl).await,
        }
    }

    /// Deletes the object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self {
            Self::Fs(s) => s.delete(key).await,
            Self::S3(s) => s.delete(key).await,
        }
    }

    /// Deletes the object unless it was modified after `cutoff`, checked at the moment of the
    /// delete rather than from an earlier listing; whether it deleted. A missing object is not
    /// an error (and not deleted).
    pub async fn delete_if_unmodified_since(
        &self,
        key: &ObjectKey,
        cutoff: SystemTime,
    ) -> Result<bool, StorageError> {
        match self {
            Self::Fs(s) => s.delete_if_unmodified_since(key, cutoff).await,
            Self::S3(s) => s.delete_if_unmodified_since(key, cutoff).await,
        }
    }

    /// Aborts multipart uploads (S3) that failed to abort before, and staging ones started more
    /// than `ttl` ago; returns how many. The filesystem store has none.
    pub async fn abort_incomplete_uploads(&self, ttl: Duration) -> Result<usize, StorageError> {
        let cutoff = SystemTime::now().checked_sub(ttl).unwrap_or(SystemTime::UNIX_EPOCH);
        match self {
            Self::Fs(_) => Ok(0),
            Self::S3(s) => s.abort_incomplete(cutoff).await,
        }
    }

    /// Lists the objects whose key starts with `prefix` (`"staging/"`, `"firmware/"`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        match self {
            Self::Fs(s) => s.list(prefix).await,
            Self::S3(s) => s.list(prefix).await,
        }
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), StorageError> {
        match self {
            Self::Fs(s) => s.check().await,
            Self::S3(s) => s.check().await,
        }
    }

    /// Deletes staging objects last modified more than `ttl` ago; returns how many.
    pub async fn sweep_staging(&self, ttl: Duration) -> Result<usize, StorageError> {
        let cutoff = SystemTime::now().checked_sub(ttl).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut swept = 0;
        for object in self.list(ObjectKey::STAGING_PREFIX).await? {
            if object.modified <= cutoff
                && let Some(key) = ObjectKey::parse(&object.key)
            {
                self.delete(&key).await?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Fs(_) => "fs",
            Self::S3(_) => "s3",
        }
    }
}
