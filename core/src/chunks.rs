//! The chunk table of an image: the SHA-256 of each `chunk_size` bytes (the last chunk may be
//! shorter), 32 raw bytes each, concatenated. A manifest of spec 1.1 signs the table's SHA-256,
//! so a watch fed the image piece by piece by a phone can check each chunk as it arrives, reject
//! exactly a bad one and resume at any chunk boundary. The service builds tables with
//! [`ChunkHasher`]; watches check them with the `nowatch-ota-watch` crate.

use sha2::{Digest, Sha256};

/// Bytes per chunk unless `firmware.chunk_size` says otherwise: a BLE relay of a few kB/s
/// resends at most this much after a bad piece, and the table costs 32 bytes per chunk
/// (8 KiB per MiB of image).
pub const DEFAULT_CHUNK_SIZE: u32 = 4096;
/// The chunk sizes allowed: powers of two in this range.
pub const MIN_CHUNK_SIZE: u32 = 512;
pub const MAX_CHUNK_SIZE: u32 = 65536;
/// Bytes of one table entry.
pub const ENTRY_LEN: u64 = 32;

/// Whether `chunk_size` is one the format allows.
pub fn valid_chunk_size(chunk_size: u32) -> bool {
    chunk_size.is_power_of_two() && (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size)
}

/// How many chunks an image of `size` bytes has.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

/// The table's length in bytes.
pub fn table_len(size: u64, chunk_size: u32) -> u64 {
    chunk_count(size, chunk_size).saturating_mul(ENTRY_LEN)
}

/// Builds a chunk table while the image streams past, and the image's own size and SHA-256,
/// holding one chunk's hash state: never the image.
pub struct ChunkHasher {
    chunk_size: u64,
    chunk: Sha256,
    in_chunk: u64,
    image: Sha256,
    size: u64,
}

impl ChunkHasher {
    pub fn new(chunk_size: u32) -> Self {
        Self {
            chunk_size: u64::from(chunk_size.max(1)),
            chunk: Sha256::new(),
            in_chunk: 0,
            image: Sha256::new(),
            size: 0,
        }
    }

    /// Hashes `bytes`; appends to `table` the entry of every chunk they complete.
    pub fn update(&mut self, mut bytes: &[u8], table: &mut Vec<u8>) {
        self.image.update(bytes);
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = usize::try_from(self.chunk_size - self.in_chunk).unwrap_or(usize::MAX);
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.chunk.update(now);
            self.in_chunk += now.len() as u64;
            if self.in_chunk == self.chunk_size {
                table.extend_from_slice(&std::mem::take(&mut self.chunk).finalize());
                self.in_chunk = 0;
            }
            bytes = rest;
        }
    }

    /// Appends the last, shorter chunk's entry if there is one; the image's size and SHA-256.
    pub fn finish(self, table: &mut Vec<u8>) -> (u64, [u8; 32]) {
        if self.in_chunk > 0 {
            table.extend_from_slice(&self.chunk.finalize());
        }
        (self.size, self.image.finalize().into())
    }
}

/// The whole table of `image` at once (tests and tools; the service streams).
pub fn chunk_table(image: &[u8], chunk_size: u32) -> Vec<u8> {
    let mut table = Vec::new();
    let mut hasher = ChunkHasher::new(chunk_size);
    hasher.update(image, &mut table);
    hasher.finish(&mut table);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_definition(image: &[u8], chunk_size: u32) -> Vec<u8> {
        image.chunks(chunk_size as usize).flat_map(|c| Sha256::digest(c).to_vec()).collect()
    }

    #[test]
    fn the_table_is_the_digest_of_each_chunk_whatever_the_pieces() {
        let image: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for size in [1, 511, 512, 513, 4096, 9999, 10_000] {
            let image = &image[..size];
            let expected = by_definition(image, 512);
            assert_eq!(chunk_table(image, 512), expected);
            assert_eq!(expected.len() as u64, table_len(size as u64, 512));
            for piece in [1, 7, 512, 1000] {
                let mut table = Vec::new();
                let mut hasher = ChunkHasher::new(512);
                image.chunks(piece).for_each(|p| hasher.update(p, &mut table));
                let (len, sha) = hasher.finish(&mut table);
                assert_eq!(table, expected, "size {size}, pieces of {piece}");
                assert_eq!((len, sha.to_vec()), (size as u64, Sha256::digest(image).to_vec()));
            }
        }
    }

    #[test]
    fn chunk_sizes_are_powers_of_two_from_512_to_65536() {
        assert!(valid_chunk_size(512) && valid_chunk_size(4096) && valid_chunk_size(65536));
        assert!(!valid_chunk_size(256) && !valid_chunk_size(4095) && !valid_chunk_size(131_072));
        assert!(!valid_chunk_size(0));
        assert_eq!(chunk_count(0, 4096), 0);
        assert_eq!(chunk_count(4097, 4096), 2);
    }
}
