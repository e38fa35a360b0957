//! The chunk table (spec 1.1) and chunks checked against it: the table streamed through
//! [`TableCheck`] as it arrives (it may be larger than RAM), then chunks in any order through
//! [`ImageCheck`], which keeps one bit per chunk in a bitmap the caller provides.

use sha2::{Digest, Sha256};

use crate::check::{Check, Rejection};
use crate::manifest::{ChunkSpec, Manifest};

/// Bytes of bitmap [`ImageCheck`] needs for `count` chunks: one bit each.
pub const fn bitmap_len(count: u32) -> usize {
    // `count / 8` rounded up, in usize (at least 32 bits wherever this crate builds).
    count.div_ceil(8) as usize
}

/// A chunk table whose length and SHA-256 are the manifest's: what [`ImageCheck`] and
/// [`crate::SequentialChunks`] check chunks against. Only [`TableCheck::finish`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedTable {
    spec: ChunkSpec,
    size: u64,
    sha256: [u8; 32],
}

impl VerifiedTable {
    /// The manifest's chunk fields.
    pub const fn spec(&self) -> &ChunkSpec {
        &self.spec
    }

    /// The image size in bytes.
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// SHA-256 of the whole image.
    pub const fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The length of chunk `index`: `chunk_size`, or what is left for the last one; `None`
    /// past the last.
    pub fn chunk_len(&self, index: u32) -> Option<u32> {
        if index >= self.spec.count {
            return None;
        }
        let start = u64::from(index).checked_mul(u64::from(self.spec.chunk_size))?;
        let left = self.size.checked_sub(start)?;
        left.min(u64::from(self.spec.chunk_size)).try_into().ok()
    }
}

/// `chunk_table`, streamed: feed the table's bytes in order, in pieces of any size, then
/// [`finish`](Self::finish). Its state is a SHA-256 and a length.
#[derive(Clone)]
pub struct TableCheck {
    spec: ChunkSpec,
    size: u64,
    sha256: [u8; 32],
    hasher: Sha256,
    len: u64,
}

impl TableCheck {
    /// Starts checking the table of `manifest`; refused if the manifest has none (spec 1.0:
    /// check the image with [`crate::ImageDigest`]).
    pub fn new(manifest: &Manifest<'_>) -> Result<Self, Rejection> {
        let spec =
            manifest.chunks.ok_or(Rejection::new(Check::ChunkTable, "the manifest has no chunk table"))?;
        Ok(Self { spec, size: manifest.size, sha256: manifest.sha256, hasher: Sha256::new(), len: 0 })
    }

    /// The table's length in bytes: 32 per chunk.
    pub fn expected_len(&self) -> u64 {
        u64::from(self.spec.count).saturating_mul(32)
    }

    /// The next bytes of the table.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len = self.len.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    }

    /// Whether the table had exactly 32 bytes per chunk and the manifest's SHA-256.
    pub fn finish(self) -> Result<VerifiedTable, Rejection> {
        if self.len != self.expected_len() {
            return Err(Rejection::new(Check::ChunkTable, "the table is not 32 bytes per chunk"));
        }
        let digest: [u8; 32] = self.hasher.finalize().into();
        if digest != self.spec.table_sha256 {
            return Err(Rejection::new(Check::ChunkTable, "the table's SHA-256 is not chunk_table_sha256"));
        }
        Ok(VerifiedTable { spec: self.spec, size: self.size, sha256: self.sha256 })
    }
}

/// Where the verified table's entries are: flash on a watch, a slice in RAM
/// (`impl TableSource for &[u8]`).
pub trait TableSource {
    /// Entry `index` (SHA-256 of chunk `index`), or `None` if it cannot be read.
    fn entry(&mut self, index: u32) -> Option<[u8; 32]>;
}

impl TableSource for &[u8] {
    fn entry(&mut self, index: u32) -> Option<[u8; 32]> {
        let start = usize::try_from(index).ok()?.checked_mul(32)?;
        let bytes = self.get(start..start.checked_add(32)?)?;
        bytes.try_into().ok()
    }
}

/// What [`ImageCheck::check_chunk`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkVerdict {
    /// The chunk is the one the table names: keep it.
    Accepted,
    /// It is not: drop these bytes and ask for the chunk again. A chunk accepted before stays
    /// accepted.
    Rejected(Rejection),
}

impl ChunkVerdict {
    /// Whether the chunk was accepted.
    pub const fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted)
    }
}

/// An image that passed: every chunk (or every byte, in order) checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedImage {
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, as the manifest gives it.
    pub sha256: [u8; 32],
}

/// `chunk`, for chunks arriving in any order (a phone relaying them, retries): each is checked
/// against its table entry, and a bit per chunk in the caller's bitmap remembers which were
/// accepted.
pub struct ImageCheck<'b, T> {
    table: VerifiedTable,
    source: T,
    bitmap: &'b mut [u8],
    accepted: u32,
}

impl<'b, T: TableSource> ImageCheck<'b, T> {
    /// Starts with no chunk accepted: clears the first [`bitmap_len`]`(count)` bytes of
    /// `bitmap` (which may be longer); refused if it is shorter. `source` must read the table
    /// [`TableCheck`] verified.
    pub fn new(table: VerifiedTable, source: T, bitmap: &'b mut [u8]) -> Result<Self, Rejection> {
        let bitmap = bitmap
            .get_mut(..bitmap_len(table.spec.count))
            .ok_or(Rejection::new(Check::Chunk, "the bitmap is shorter than bitmap_len(count)"))?;
        bitmap.fill(0);
        Ok(Self { table, source, bitmap, accepted: 0 })
    }

    /// Continues from a bitmap kept across a restart (in flash, say): chunks whose bit is set
    /// count as accepted, and bits past the last chunk are cleared. The bits are trusted, not
    /// re-checked: pass only a bitmap an `ImageCheck` of this same table wrote, next to the
    /// chunks it accepted (or re-check the chunks in flash with [`check_chunk`](Self::check_chunk)
    /// after [`new`](Self::new) instead).
    pub fn resume(table: VerifiedTable, source: T, bitmap: &'b mut [u8]) -> Result<Self, Rejection> {
        let count = table.spec.count;
        let bitmap = bitmap
            .get_mut(..bitmap_len(count))
            .ok_or(Rejection::new(Check::Chunk, "the bitmap is shorter than bitmap_len(count)"))?;
        let used = count % 8;
        if let (Some(last), true) = (bitmap.last_mut(), used != 0) {
            *last &= u8::MAX.checked_shr(8u32.saturating_sub(used)).unwrap_or(0);
        }
        let accepted = bitmap.iter().fold(0u32, |n, byte| n.saturating_add(byte.count_ones()));
        Ok(Self { table, source, bitmap, accepted })
    }

    /// Checks chunk `index`: its length (`chunk_size`, or the remainder for the last) and its
    /// SHA-256 against table entry `index`.
    pub fn check_chunk(&mut self, index: u32, bytes: &[u8]) -> ChunkVerdict {
        let rejected = |reason| ChunkVerdict::Rejected(Rejection::new(Check::Chunk, reason));
        let Some(len) = self.table.chunk_len(index) else { return rejected("no chunk has this index") };
        if usize::try_from(len).ok() != Some(bytes.len()) {
            return rejected("the chunk has the wrong length");
        }
        let Some(entry) = self.source.entry(index) else { return rejected("the table entry cannot be read") };
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if digest != entry {
            return rejected("the chunk's SHA-256 is not its table entry");
        }
        if let Some((byte, mask)) = bit(self.bitmap, index)
            && *byte & mask == 0
        {
            *byte |= mask;
            self.accepted = self.accepted.saturating_add(1);
        }
        ChunkVerdict::Accepted
    }

    /// Whether chunk `index` has been accepted.
    pub fn is_accepted(&self, index: u32) -> bool {
        let Ok(at) = usize::try_from(index / 8) else { return false };
        self.bitmap.get(at).is_some_and(|byte| byte & (1 << (index % 8)) != 0)
    }

    /// How many distinct chunks have been accepted.
    pub const fn accepted(&self) -> u32 {
        self.accepted
    }

    /// How many chunks the image has.
    pub const fn count(&self) -> u32 {
        self.table.spec.count
    }

    /// The table this checks against.
    pub const fn table(&self) -> &VerifiedTable {
        &self.table
    }

    /// The lowest index not yet accepted, or `None` when all are.
    pub fn next_missing(&self) -> Option<u32> {
        self.missing().next()
    }

    /// Every index not yet accepted, in order: what to ask for next.
    pub fn missing(&self) -> Missing<'_> {
        Missing { bitmap: self.bitmap, next: 0, count: self.table.spec.count }
    }

    /// The image, once every chunk has been accepted.
    pub fn finish(&self) -> Result<VerifiedImage, Rejection> {
        match self.accepted == self.table.spec.count {
            true => Ok(VerifiedImage { size: self.table.size, sha256: self.table.sha256 }),
            false => Err(Rejection::new(Check::Chunk, "a chunk is still missing")),
        }
    }
}

/// The byte of `bitmap` holding `index`'s bit, and the bit.
fn bit(bitmap: &mut [u8], index: u32) -> Option<(&mut u8, u8)> {
    let byte = bitmap.get_mut(usize::try_from(index / 8).ok()?)?;
    Some((byte, 1 << (index % 8)))
}

/// The indexes an [`ImageCheck`] still misses, in order ([`ImageCheck::missing`]).
pub struct Missing<'a> {
    bitmap: &'a [u8],
    next: u32,
    count: u32,
}

impl Iterator for Missing<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        while self.next < self.count {
            let index = self.next;
            self.next = self.next.saturating_add(1);
            let byte = self.bitmap.get(usize::try_from(index / 8).ok()?).copied().unwrap_or(0);
            if byte == 0xff {
                // A whole byte of accepted chunks: skip to the next byte.
                self.next = (index | 7).saturating_add(1);
                continue;
            }
            if byte & (1 << (index % 8)) == 0 {
                return Some(index);
            }
        }
        None
    }
}
