//! The filesystem backend: one directory, keys as relative paths. Writes go to a staging file
//! that is fsynced before it is renamed into place, so a crash never leaves a partial image
//! under a final key.

use std::io::SeekFrom;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{BlobStream, ByteRange, HashingCounter, ObjectInfo, ObjectKey, StorageError};
use crate::domain::Sha256Digest;

/// Read buffer for downloads: large enough to keep syscalls rare, small enough per connection.
const READ_CHUNK: usize = 256 * 1024;

pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub async fn new(root: PathBuf) -> std::io::Result<Self> {
        for prefix in [ObjectKey::FIRMWARE_PREFIX, ObjectKey::STAGING_PREFIX] {
            tokio::fs::create_dir_all(root.join(prefix)).await?;
        }
        Ok(Self { root })
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.to_string())
    }

    pub(super) async fn put<S, E>(
        &self,
        key: &ObjectKey,
        mut body: S,
        limit: u64,
    ) -> Result<(u64, Sha256Digest), StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut file = tokio::fs::File::create(self.path(key)).await?;
        let mut counter = HashingCounter::new(limit);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StorageError::Client(format!("file: upload interrupted: {e}")))?;
            counter.update(&chunk)?;
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        Ok(counter.finish())
    }

    pub(super) async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        let target = self.path(to);
        tokio::fs::rename(self.path(from), &target).await?;
        // The rename is durable only once the directory entry is.
        if let Some(dir) = target.parent() {
            tokio::fs::File::open(dir).await?.sync_all().await?;
        }
        Ok(())
    }

    pub(super) async fn size(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn open(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<BlobStream, StorageError> {
        let mut file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(key.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let stream = match range {
            None => ReaderStream::with_capacity(file, READ_CHUNK).map_err(StorageError::from).boxed(),
            Some(range) => {
                file.seek(SeekFrom::Start(range.start)).await?;
                ReaderStream::with_capacity(file.take(range.len()), READ_CHUNK)
                    .map_err(StorageError::from)
                    .boxed()
            }
        };
        Ok(stream)
    }

    pub(super) async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        // Keys are `<dir>/<name>`: list the directory and filter by the rest of the prefix.
        let (dir, name_prefix) = prefix.split_once('/').unwrap_or((prefix, ""));
        let mut entries = match tokio::fs::read_dir(self.root.join(dir)).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(name_prefix) {
                continue;
            }
            let meta = entry.metadata().await?;
            if meta.is_file() {
                out.push(ObjectInfo {
                    key: format!("{dir}/{name}"),
                    size: meta.len(),
                    modified: meta.modified()?,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub(super) async fn check(&self) -> Result<(), StorageError> {
        let meta = tokio::fs::metadata(self.root.join(ObjectKey::FIRMWARE_PREFIX)).await?;
        if meta.permissions().readonly() {
            return Err(StorageError::Io(std::io::Error::other("blob directory is read-only")));
        }
        Ok(())
    }
}
