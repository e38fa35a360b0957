//! Images checked as their bytes arrive in order: [`ImageDigest`], the whole-image `image`
//! check (spec 1.0 manifests, or a last check of what was written to flash), and
//! [`SequentialChunks`], the `chunk` check at every chunk boundary for output that is produced
//! in order, such as a delta patch's applier's.

use sha2::{Digest, Sha256};

use crate::check::{Check, Rejection};
use crate::chunks::{TableSource, VerifiedImage, VerifiedTable};
use crate::manifest::Manifest;

/// `image`, streamed: feed the image in order, in pieces of any size, then
/// [`finish`](Self::finish). Its state is a SHA-256 and a length.
#[derive(Clone)]
pub struct ImageDigest {
    size: u64,
    sha256: [u8; 32],
    hasher: Sha256,
    len: u64,
}

impl ImageDigest {
    /// Starts checking the image `manifest` names.
    pub fn new(manifest: &Manifest<'_>) -> Self {
        Self { size: manifest.size, sha256: manifest.sha256, hasher: Sha256::new(), len: 0 }
    }

    /// Bytes fed so far.
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next bytes of the image. Refused as soon as they go past the manifest's size.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Rejection> {
        self.len = self.len.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        if self.len > self.size {
            return Err(Rejection::new(Check::Image, "the image is larger than size"));
        }
        self.hasher.update(bytes);
        Ok(())
    }

    /// Whether the image had exactly the manifest's size and SHA-256.
    pub fn finish(self) -> Result<VerifiedImage, Rejection> {
        if self.len != self.size {
            return Err(Rejection::new(Check::Image, "the image is not size bytes"));
        }
        let digest: [u8; 32] = self.hasher.finalize().into();
        match digest == self.sha256 {
            true => Ok(VerifiedImage { size: self.size, sha256: self.sha256 }),
            false => Err(Rejection::new(Check::Image, "the image's SHA-256 is not sha256")),
        }
    }
}

/// `chunk`, for an image produced in order (a delta patch applied on the watch): it hashes the
/// bytes as they pass and, at each chunk boundary, compares the chunk's SHA-256 with its table
/// entry, so that a bad patch is refused at its first bad chunk rather than after the whole
/// image. It holds no bytes: a running SHA-256, the position, and the table reader.
///
/// Call [`feed`](Self::feed) from the applier's sink before writing the bytes; once it returns
/// an error, stop (return the error from the sink: the applier stops too) and discard the
/// output. Bytes of a chunk are only known good at its boundary: at most one chunk of written
/// output is unverified at any time, and nothing is until [`finish`](Self::finish).
pub struct SequentialChunks<T> {
    table: VerifiedTable,
    source: T,
    hasher: Sha256,
    /// Bytes fed so far.
    pos: u64,
    /// The chunk being hashed.
    index: u32,
    /// Bytes of it still to come.
    left: u32,
    failed: Option<Rejection>,
}

impl<T: TableSource> SequentialChunks<T> {
    /// Starts at the first chunk. `source` must read the table [`crate::TableCheck`] verified.
    pub fn new(table: VerifiedTable, source: T) -> Self {
        let left = table.chunk_len(0).unwrap_or(0);
        Self { table, source, hasher: Sha256::new(), pos: 0, index: 0, left, failed: None }
    }

    /// Bytes fed so far.
    pub const fn position(&self) -> u64 {
        self.pos
    }

    /// Chunks that passed so far.
    pub const fn chunks_verified(&self) -> u32 {
        self.index
    }

    /// The next bytes of the image, in order. Refused at the end of the first chunk whose
    /// SHA-256 is not its table entry, or as soon as the bytes go past the image's size; after
    /// that, everything is refused with the same rejection.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Rejection> {
        if let Some(failed) = self.failed {
            return Err(failed);
        }
        while !bytes.is_empty() {
            if self.left == 0 {
                return Err(self.fail("the image is larger than size"));
            }
            let take = usize::try_from(self.left).map_or(bytes.len(), |left| left.min(bytes.len()));
            let (now, rest) = bytes.split_at_checked(take).unwrap_or((bytes, &[]));
            self.hasher.update(now);
            bytes = rest;
            let taken = u32::try_from(now.len()).unwrap_or(u32::MAX);
            self.left = self.left.saturating_sub(taken);
            self.pos = self.pos.saturating_add(u64::from(taken));
            if self.left == 0 {
                self.end_chunk()?;
            }
        }
        Ok(())
    }

    /// Compares the chunk just completed with its entry and moves to the next one.
    fn end_chunk(&mut self) -> Result<(), Rejection> {
        let digest: [u8; 32] = core::mem::take(&mut self.hasher).finalize().into();
        match self.source.entry(self.index) {
            Some(entry) if entry == digest => {}
            Some(_) => return Err(self.fail("the chunk's SHA-256 is not its table entry")),
            None => return Err(self.fail("the table entry cannot be read")),
        }
        self.index = self.index.saturating_add(1);
        self.left = self.table.chunk_len(self.index).unwrap_or(0);
        Ok(())
    }

    fn fail(&mut self, reason: &'static str) -> Rejection {
        let rejection = Rejection::new(Check::Chunk, reason);
        self.failed = Some(rejection);
        rejection
    }

    /// The image, if exactly `size` bytes came and every chunk passed.
    pub fn finish(self) -> Result<VerifiedImage, Rejection> {
        if let Some(failed) = self.failed {
            return Err(failed);
        }
        match self.index == self.table.spec().count {
            true => Ok(VerifiedImage { size: self.table.size(), sha256: *self.table.sha256() }),
            false => Err(Rejection::new(Check::Chunk, "the image ended before its last chunk")),
        }
    }
}
