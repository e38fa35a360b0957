//! The filesystem backend: one directory, keys as relative paths. Writes go to a staging file
//! that is fsynced before it is renamed into place, so a crash never leaves a partial image
//! under a final key.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::staging_file::{WriteOp, write_durably};
use super::{BlobStream, ByteRange, ObjectInfo, ObjectKey, StorageError};
use crate::domain::Sha256Digest;

/// Bytes per read for downloads: large enough to keep blocking-pool round trips rare, small
/// enough per connection (a connection holds about two of them).
const READ_CHUNK: u64 = 512 * 1024;

/// Batches of received chunks waiting for the writer: bounds an upload's memory (about
/// `WRITE_QUEUE` x `HANDOFF_BYTES`) when the disk is slower than the network.
const WRITE_QUEUE: usize = 4;

/// Received bytes handed to the writer thread at a time.
const HANDOFF_BYTES: usize = 1024 * 1024;

pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub async fn new(root: PathBuf) -> std::io::Result<Self> {
        for prefix in [
            ObjectKey::FIRMWARE_PREFIX,
            ObjectKey::STAGING_PREFIX,
            ObjectKey::DELTA_PREFIX,
            ObjectKey::CHUNKS_PREFIX,
        ] {
            tokio::fs::create_dir_all(root.join(prefix)).await?;
        }
        Ok(Self { root })
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.to_string())
    }

    /// Receives on the caller's task while blocking threads write and hash what arrived before
    /// (`staging_file`), so the network, the hash and the disk overlap; the file is durable on
    /// return.
    /// Chunks are handed over about 1 MiB at a time: one wake-up of the writer per chunk cost
    /// 23,000 `futex` calls per GiB (bench/PROFILE.md).
    pub(super) async fn put<S>(
        &self,
        key: &ObjectKey,
        mut body: S,
    ) -> Result<(u64, Sha256Digest), StorageError>
    where
        S: Stream<Item = Result<Bytes, StorageError>> + Unpin,
    {
        let path = self.path(key);
        let (batches, queue) = mpsc::channel(WRITE_QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_durably(&path, queue));
        let received = async {
            let (mut batch, mut batch_bytes) = (Vec::new(), 0usize);
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                batch_bytes += chunk.len();
                batch.push(chunk);
                if batch_bytes >= HANDOFF_BYTES {
                    batch_bytes = 0;
                    if batches.send(WriteOp::Append(std::mem::take(&mut batch))).await.is_err() {
                        return Ok(()); // the writer failed: its error is the one to report
                    }
                }
            }
            if !batch.is_empty() {
                let _ = batches.send(WriteOp::Append(batch)).await;
            }
            let _ = batches.send(WriteOp::Finish).await;
            Ok::<_, StorageError>(())
        }
        .await;
        drop(batches);
        let written = writer.await.map_err(|e| StorageError::Io(std::io::Error::other(e)))?;
        received?;
        written?.ok_or_else(|| StorageError::Io(std::io::Error::other("the upload's writer stopped early")))
    }

    /// Moves a staging file into place, made new first: the sweep deletes an unreferenced image
    /// only if it is unmodified since before its TTL, so an upload that claims an image (the same
    /// bytes as an orphan) keeps it until its row is written.
    pub(super) async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        let source = self.path(from);
        let touched = source.clone();
        on_blocking_pool(move || Ok(std::fs::File::open(&touched)?.set_modified(SystemTime::now())?)).await?;
        let target = self.path(to);
        tokio::fs::rename(&source, &target).await?;
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

    /// Streams the file (or one range) by positioned reads on the blocking pool, each into a
    /// buffer of its own that is handed on without another copy. The first trip to the pool
    /// opens the file and reads the first chunk too: a 1 MiB range costs two trips, not three.
    pub(super) async fn open(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<BlobStream, StorageError> {
        let path = self.path(key);
        let name = key.to_string();
        // Read buffers are allocated here, on the worker that later frees them, not on the blocking
        // thread: an allocator with per-thread heaps (mimalloc) otherwise keeps each pool
        // thread's freed buffers, and 16 range readers held about 200 MiB (bench/PROFILE.md).
        let first_buffer = Vec::with_capacity(READ_CHUNK as usize);
        let (file, next, end, first) = on_blocking_pool(move || {
            let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StorageError::NotFound(name),
                _ => e.into(),
            })?;
            let (start, end) = match range {
                Some(range) => (range.start, range.end + 1),
                None => (0, file.metadata()?.len()),
            };
            let want = READ_CHUNK.min(end.saturating_sub(start)) as usize;
            let first = read_chunk(&file, start, want, first_buffer)?;
            Ok((file, start + first.len() as u64, end, first))
        })
        .await?;
        let file = Arc::new(file);
        let rest = futures_util::stream::try_unfold(next, move |offset| {
            let file = Arc::clone(&file);
            async move {
                if offset >= end {
                    return Ok(None);
                }
                let want = READ_CHUNK.min(end - offset) as usize;
                let buffer = Vec::with_capacity(want);
                let chunk = on_blocking_pool(move || read_chunk(&file, offset, want, buffer)).await?;
                Ok(Some((chunk, offset + want as u64)))
            }
        });
        let first = (!first.is_empty()).then_some(Ok(first));
        Ok(futures_util::stream::iter(first).chain(rest).boxed())
    }

    /// Deletes the file unless it was modified after `cutoff`; whether it deleted. The file is
    /// first claimed (renamed to a staging name of its own, atomically) and its time read from
    /// what was claimed: an upload that moved a new file into place before the claim has it
    /// put back, one after the claim is not touched. Between claim and restore (microseconds)
    /// the image is missing; a crash in between leaves a staging file the sweep removes.
    pub(super) async fn delete_if_unmodified_since(
        &self,
        key: &ObjectKey,
        cutoff: SystemTime,
    ) -> Result<bool, StorageError> {
        let path = self.path(key);
        let claimed = self.path(&ObjectKey::Staging(uuid::Uuid::new_v4()));
        match tokio::fs::rename(&path, &claimed).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            other => other?,
        }
        let modified = tokio::fs::metadata(&claimed).await.and_then(|meta| meta.modified());
        if modified.as_ref().is_ok_and(|m| *m <= cutoff) {
            tokio::fs::remove_file(&claimed).await?;
            return Ok(true);
        }
        tokio::fs::rename(&claimed, &path).await?;
        modified?;
        Ok(false)
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

/// Runs blocking file work on tokio's blocking pool.
async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| StorageError::Io(std::io::Error::other(e)))?
}

/// Reads exactly `want` bytes at `offset`; a file shorter than its length said is an error, so
/// a client never gets a complete-looking but short image.
/// `buf` is an empty buffer with at least `want` bytes of capacity.
fn read_chunk(
    file: &std::fs::File,
    offset: u64,
    want: usize,
    mut buf: Vec<u8>,
) -> Result<Bytes, StorageError> {
    // Into uninitialised capacity: zeroing the buffer first would cost as much as the read's
    // own copy from the page cache.
    assert!(buf.is_empty() && buf.capacity() >= want, "read_chunk needs an empty buffer of `want` bytes");
    while buf.len() < want {
        let filled = buf.len();
        let at = libc::off_t::try_from(offset + filled as u64).map_err(std::io::Error::other)?;
        // SAFETY: `pread` writes at most `want - filled` bytes at `buf`'s spare capacity, which
        // is at least that long, and `set_len` below covers only the bytes it says it wrote.
        let n = unsafe {
            libc::pread(file.as_raw_fd(), buf.spare_capacity_mut().as_mut_ptr().cast(), want - filled, at)
        };
        match n {
            0 => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            }
            // SAFETY: `pread` initialised these `n` bytes (see above).
            n => unsafe { buf.set_len(filled + n as usize) },
        }
    }
    Ok(Bytes::from(buf))
}
