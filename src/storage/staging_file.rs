//! The filesystem backend's upload writer: a blocking thread that writes the staging file while a
//! thread of its own hashes the same bytes, and makes the file durable at the end.
//!
//! Why it looks like this (bench/PROFILE.md, upload): on one thread, hashing and the kernel's copy
//! into the page cache took turns, and each costs about as much as the other per byte. The copy
//! into fresh page-cache pages was also the most erratic cost: 0.7 to 2.6 s of CPU per GiB from
//! one upload to the next on the benchmark VM. So the file is opened with `O_DIRECT` where the
//! filesystem allows it: bytes gather in one aligned 4 MiB block and go to the disk from there,
//! with no page cache in between and no write-back left for the final `fdatasync`. Where
//! `O_DIRECT` is refused (tmpfs, some overlay set-ups, other systems), chunks are written as
//! they arrived (`writev`) and write-back is started every 16 MiB instead.

use std::fs::File;
use std::io::{IoSlice, Write};
use std::path::Path;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::domain::Sha256Digest;

/// What the upload's writer thread is asked to do.
pub(super) enum WriteOp {
    Append(Vec<Bytes>),
    /// Everything arrived: make it durable. A queue closed without it means the upload failed,
    /// and the writer stops without syncing a file that will be deleted.
    Finish,
}

/// Batches waiting for the hasher: with the writer's queue, this bounds an upload's memory.
const HASH_QUEUE: usize = 4;

/// `O_DIRECT` needs buffers, offsets and lengths aligned to the device's logical block size;
/// 4096 covers both 512-byte and 4K devices.
const DIRECT_ALIGN: usize = 4096;

/// Bytes written per `O_DIRECT` call: large enough that the disk, not the call, sets the pace.
const DIRECT_BLOCK: usize = 4 * 1024 * 1024;

/// Without `O_DIRECT`, uploads ask the kernel to start writing back every this many bytes, so
/// the final `fdatasync` finds little left to do instead of the whole image.
const WRITE_BACK_EVERY: u64 = 16 * 1024 * 1024;

/// Writes what the queue brings to `path` and hashes it; the size and SHA-256 once the file is
/// durable, `None` if the queue closed without [`WriteOp::Finish`].
pub(super) fn write_durably(
    path: &Path,
    mut queue: mpsc::Receiver<WriteOp>,
) -> std::io::Result<Option<(u64, Sha256Digest)>> {
    let mut file = StagingFile::create(path)?;
    let hasher = HashingThread::spawn()?;
    while let Some(op) = queue.blocking_recv() {
        match op {
            WriteOp::Append(batch) => {
                // A clone of the batch is a reference count per chunk, not a copy.
                hasher.hash(batch.clone())?;
                file.append(&batch)?;
            }
            WriteOp::Finish => {
                let digest = hasher.finish()?;
                let size = file.finish()?;
                return Ok(Some((size, Sha256Digest::from_bytes(digest))));
            }
        }
    }
    Ok(None) // dropping `hasher` ends its thread
}

/// SHA-256 on a thread of its own: batches go in, the digest comes out once all were sent.
struct HashingThread {
    batches: std::sync::mpsc::SyncSender<Vec<Bytes>>,
    thread: std::thread::JoinHandle<[u8; 32]>,
}

impl HashingThread {
    fn spawn() -> std::io::Result<Self> {
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<Bytes>>(HASH_QUEUE);
        let thread = std::thread::Builder::new().name("upload-hasher".into()).spawn(move || {
            let mut hasher = Sha256::new();
            for chunk in received.iter().flatten() {
                hasher.update(&chunk);
            }
            hasher.finalize().into()
        })?;
        Ok(Self { batches, thread })
    }

    fn hash(&self, batch: Vec<Bytes>) -> std::io::Result<()> {
        self.batches.send(batch).map_err(|_| std::io::Error::other("the upload's hasher stopped"))
    }

    fn finish(self) -> std::io::Result<[u8; 32]> {
        drop(self.batches);
        self.thread.join().map_err(|_| std::io::Error::other("the upload's hasher panicked"))
    }
}

/// The staging file being written, and how.
struct StagingFile {
    file: File,
    /// With `O_DIRECT`: the block that gathers bytes until it is full.
    direct: Option<AlignedBlock>,
    written: u64,
    /// Without `O_DIRECT`: where the last write-back hint ended.
    hinted: u64,
}

impl StagingFile {
    /// With `O_DIRECT` if the filesystem takes it, else buffered.
    fn create(path: &Path) -> std::io::Result<Self> {
        match open_direct(path) {
            Ok(file) => Ok(Self { file, direct: Some(AlignedBlock::new()), written: 0, hinted: 0 }),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Self::buffered(path),
            Err(e) => Err(e),
        }
    }

    fn buffered(path: &Path) -> std::io::Result<Self> {
        Ok(Self { file: File::create(path)?, direct: None, written: 0, hinted: 0 })
    }

    fn append(&mut self, chunks: &[Bytes]) -> std::io::Result<()> {
        let Some(block) = &mut self.direct else {
            write_all_vectored(&self.file, chunks)?;
            self.written += chunks.iter().map(|chunk| chunk.len() as u64).sum::<u64>();
            if self.written - self.hinted >= WRITE_BACK_EVERY {
                start_write_back(&self.file, self.hinted, self.written - self.hinted);
                self.hinted = self.written;
            }
            return Ok(());
        };
        for chunk in chunks {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                rest = block.fill_from(rest);
                if block.is_full() {
                    (&self.file).write_all(block.filled())?;
                    block.clear();
                }
            }
            self.written += chunk.len() as u64;
        }
        Ok(())
    }

    /// Writes what is left and waits until the file is on the disk; its size.
    fn finish(self) -> std::io::Result<u64> {
        if let Some(block) = &self.direct {
            let filled = block.filled();
            let aligned = filled.len() / DIRECT_ALIGN * DIRECT_ALIGN;
            (&self.file).write_all(&filled[..aligned])?;
            if aligned < filled.len() {
                // The tail is shorter than a block: `O_DIRECT` cannot write it.
                stop_direct(&self.file)?;
                (&self.file).write_all(&filled[aligned..])?;
            }
        }
        self.file.sync_data()?;
        Ok(self.written)
    }
}

/// A buffer of [`DIRECT_BLOCK`] bytes whose start is aligned to [`DIRECT_ALIGN`]: a slice of a
/// slightly larger `Vec`, so no unsafe allocation is needed.
struct AlignedBlock {
    memory: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBlock {
    fn new() -> Self {
        let memory = vec![0; DIRECT_BLOCK + DIRECT_ALIGN];
        let start = memory.as_ptr().align_offset(DIRECT_ALIGN);
        Self { memory, start, len: 0 }
    }

    /// Copies as much of `bytes` as fits; what did not fit.
    fn fill_from<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let n = bytes.len().min(DIRECT_BLOCK - self.len);
        let at = self.start + self.len;
        self.memory[at..at + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        &bytes[n..]
    }

    fn is_full(&self) -> bool {
        self.len == DIRECT_BLOCK
    }

    fn filled(&self) -> &[u8] {
        &self.memory[self.start..self.start + self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> std::io::Result<File> {
    Err(std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// Turns `O_DIRECT` off for the rest of the file.
#[cfg(target_os = "linux")]
fn stop_direct(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain `fcntl` calls on a descriptor that `file` keeps open; no memory is passed.
    let done = unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_DIRECT) == 0
    };
    if done { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn stop_direct(_file: &File) -> std::io::Result<()> {
    Ok(())
}

/// `write_all` for a list of buffers, in as few `writev` calls as the kernel allows.
fn write_all_vectored(mut file: &File, chunks: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|chunk| IoSlice::new(chunk)).collect();
    let mut remaining = &mut slices[..];
    IoSlice::advance_slices(&mut remaining, 0); // skips empty chunks
    while !remaining.is_empty() {
        match file.write_vectored(remaining) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut remaining, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts writing `len` bytes at `offset` back to the disk without waiting (Linux); the final
/// `sync_data` still waits for all of it. A hint only: a failure shows up at that sync.
#[cfg(target_os = "linux")]
fn start_write_back(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `file` is borrowed; the call reads no memory.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_write_back(_file: &File, _offset: u64, _len: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around the block and alignment edges, in odd chunk sizes and batches.
    fn cases() -> impl Iterator<Item = (usize, Vec<u8>, Vec<Vec<Bytes>>)> {
        let totals = [
            0,
            1,
            4095,
            4096,
            4097,
            DIRECT_BLOCK - 1,
            DIRECT_BLOCK,
            DIRECT_BLOCK + 4097,
            3 * DIRECT_BLOCK + 7,
        ];
        totals.into_iter().map(|total| {
            let bytes: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
            let chunks: Vec<Bytes> = bytes.chunks(65_521).map(Bytes::copy_from_slice).collect();
            let batches = chunks.chunks(3).map(<[Bytes]>::to_vec).collect();
            (total, bytes, batches)
        })
    }

    /// The file must hold exactly the bytes sent, whichever way it was written.
    #[test]
    fn direct_and_buffered_files_hold_every_byte_whatever_the_sizes() {
        let dir = tempfile::tempdir().unwrap();
        for (total, bytes, batches) in cases() {
            for direct in [true, false] {
                let path = dir.path().join(format!("staging-{total}-{direct}"));
                let mut file = match direct {
                    true => StagingFile::create(&path).unwrap(),
                    false => StagingFile::buffered(&path).unwrap(),
                };
                for batch in &batches {
                    file.append(batch).unwrap();
                }
                assert_eq!(file.finish().unwrap(), total as u64);
                assert_eq!(std::fs::read(&path).unwrap(), bytes, "{total} bytes, direct: {direct}");
            }
        }
    }

    #[test]
    fn the_writer_returns_the_size_and_digest_of_what_it_was_sent() {
        let dir = tempfile::tempdir().unwrap();
        for (total, bytes, batches) in cases() {
            let (tx, rx) = mpsc::channel(4);
            let path = dir.path().join(format!("staging-{total}"));
            let writer = std::thread::spawn(move || write_durably(&path, rx));
            for batch in batches {
                tx.blocking_send(WriteOp::Append(batch)).unwrap();
            }
            tx.blocking_send(WriteOp::Finish).unwrap();
            let (size, digest) = writer.join().unwrap().unwrap().unwrap();
            assert_eq!(size, total as u64);
            assert_eq!(digest, Sha256Digest::from_bytes(Sha256::digest(&bytes).into()));
        }
    }

    #[test]
    fn a_queue_closed_without_finish_gives_no_result() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel(4);
        tx.blocking_send(WriteOp::Append(vec![Bytes::from_static(b"half an image")])).unwrap();
        drop(tx);
        assert!(write_durably(&dir.path().join("staging"), rx).unwrap().is_none());
    }
}
