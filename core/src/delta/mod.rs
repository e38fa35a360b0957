//! Delta updates in the detools 0.53 "sequential" patch format, uncompressed or compressed with
//! heatshrink: the generator the server runs ([`create_patch`]) and the streaming applier a
//! watch runs ([`Applier`], no heap, fixed buffers), plus [`apply_patch`] for whole patches in
//! memory. Python detools applies what [`create_patch`] writes, and [`Applier`] applies detools'
//! own patches of these two compressions (`tests/delta/`, `core/tests/detools.rs`).
//!
//! A patch: one byte `patch_type << 4 | compression` (sequential 0; none 0, heatshrink 4), the
//! new image's size, and, unless that is 0, the body, compressed as a whole: a data-format size
//! (0: none), then chunks of diff data (added bytewise to the old image), extra data (copied) and
//! an adjustment of the position in the old image, until the new image is complete. Sizes are
//! detools' signed varints (`size.rs`); heatshrink streams start with a byte of their window and
//! lookahead sizes (`heatshrink/`).
//!
//! The format carries no checksum: a changed byte inside diff or extra data only changes the
//! output. The service checks the new image against the signed SHA-256 of its manifest.

mod apply;
mod bsdiff;
mod heatshrink;
mod size;
#[cfg(test)]
mod tests;

pub use apply::{Applier, ApplyError, Source, SourceError};

const PATCH_TYPE_SEQUENTIAL: u8 = 0;
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_HEATSHRINK: u8 = 4;

/// How the body of a patch is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// heatshrink with a window of 2^`window_sz2` bytes (4 to 15) and back-references of up to
    /// 2^`lookahead_sz2` bytes (3 to `window_sz2` − 1).
    Heatshrink {
        window_sz2: u8,
        lookahead_sz2: u8,
    },
}

impl Compression {
    /// detools' defaults: a 256-byte window, back-references of up to 128 bytes.
    pub const HEATSHRINK: Compression = Compression::Heatshrink { window_sz2: 8, lookahead_sz2: 7 };

    /// detools' name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Heatshrink { .. } => "heatshrink",
        }
    }

    /// Refuses heatshrink sizes heatshrink itself refuses, which [`create_patch`] would panic on.
    pub fn check(&self) -> Result<(), PatchError> {
        match *self {
            Compression::None => Ok(()),
            Compression::Heatshrink { window_sz2, lookahead_sz2 } => {
                match heatshrink::valid_parameters(window_sz2, lookahead_sz2) {
                    true => Ok(()),
                    false => Err(PatchError::HeatshrinkParameters { window_sz2, lookahead_sz2 }),
                }
            }
        }
    }
}

/// Why a patch was refused. Each is structural: the format lets the applier see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("patch type {0} is not supported: only sequential patches (0) are")]
    PatchType(u8),
    #[error("compression {name} ({0}) is not supported: only none (0) and heatshrink (4) are", name = compression_name(*.0))]
    Compression(u8),
    #[error(
        "heatshrink parameters window {window_sz2} bits, lookahead {lookahead_sz2} bits are invalid: \
         heatshrink needs a window of 4 to 15 bits and a lookahead of 3 bits to one less than the window"
    )]
    HeatshrinkParameters { window_sz2: u8, lookahead_sz2: u8 },
    #[error(
        "the patch's heatshrink window of 2^{window_sz2} bytes is larger than this applier's \
         2^{max_sz2}: create the patch with a window of at most {max_sz2} bits"
    )]
    WindowTooLarge { window_sz2: u8, max_sz2: u8 },
    #[error("data-format patches (detools --data-format) are not supported")]
    DataFormat,
    #[error("a size field does not fit 64 bits")]
    SizeOverflow,
    #[error("a size is negative")]
    NegativeSize,
    #[error("{len} bytes at {to_pos} would write past the end of the new image ({to_size} bytes)")]
    WritePastEnd { to_pos: u64, len: u64, to_size: u64 },
    #[error("diff data of {len} bytes at {offset} would read outside the old image ({from_size} bytes)")]
    ReadOutsideFrom { offset: u64, len: u64, from_size: u64 },
    #[error("adjustment {adjustment} at {from_pos} would move outside the old image ({from_size} bytes)")]
    AdjustmentOutsideFrom { from_pos: u64, adjustment: i64, from_size: u64 },
    #[error("the patch ended before the new image was complete")]
    Truncated,
    #[error("the patch goes on after the new image is complete")]
    TrailingData,
    #[error("an earlier error stopped this patch")]
    Stopped,
}

fn compression_name(code: u8) -> &'static str {
    match code {
        0 => "none",
        1 => "lzma",
        2 => "crle",
        3 => "bz2",
        4 => "heatshrink",
        5 => "zstd",
        6 => "lz4",
        _ => "unknown",
    }
}

/// A sequential patch that turns `from` into `to`, as detools' `create_patch(..., compression)`
/// with its default divsufsort suffix array and no data format. With [`Compression::None`] the
/// patch is detools' byte for byte; with heatshrink the decompressed body is, and with windows of
/// up to 256 bytes (detools' default among them) the bitstream is the smallest encoding of it
/// heatshrink allows (an optimal parse where detools' encoder is greedy): 2.6 % smaller than
/// detools' patch of its esp8266 pair, never larger on the pairs we measured (bench/delta).
/// Larger windows get a near-optimal parse (the encoder's `MAX_CANDIDATES`).
///
/// Panics if `compression` fails [`Compression::check`], or if `from` is 2 GiB or larger.
pub fn create_patch(from: &[u8], to: &[u8], compression: Compression) -> Vec<u8> {
    if let Err(error) = compression.check() {
        panic!("{error}");
    }
    let mut patch = Vec::new();
    let code = match compression {
        Compression::None => COMPRESSION_NONE,
        Compression::Heatshrink { .. } => COMPRESSION_HEATSHRINK,
    };
    patch.push(PATCH_TYPE_SEQUENTIAL << 4 | code);
    size::pack_size(image_size(to), &mut patch);
    if to.is_empty() {
        return patch;
    }
    match compression {
        Compression::None => body(from, to, &mut patch),
        Compression::Heatshrink { window_sz2, lookahead_sz2 } => {
            let mut plain = Vec::new();
            body(from, to, &mut plain);
            patch.push(heatshrink::header(window_sz2, lookahead_sz2));
            heatshrink::compress(&plain, window_sz2, lookahead_sz2, &mut patch);
        }
    }
    patch
}

/// The uncompressed body: no data format, then the bsdiff chunks.
fn body(from: &[u8], to: &[u8], out: &mut Vec<u8>) {
    size::pack_size(0, out);
    bsdiff::write_chunks(from, to, out);
}

fn image_size(image: &[u8]) -> i64 {
    // Slices never exceed isize::MAX bytes.
    image.len() as i64
}

/// Applies a whole patch to `from` and returns the new image: for std users (the server, the
/// CLI, tests). A device streams through [`Applier`] instead.
pub fn apply_patch(from: &[u8], patch: &[u8]) -> Result<Vec<u8>, ApplyError> {
    let mut applier = Applier::<{ 1 << 15 }>::new();
    let mut to = Vec::new();
    let mut source = from;
    applier.push(patch, &mut source, &mut |bytes: &[u8]| {
        to.extend_from_slice(bytes);
        Ok(())
    })?;
    applier.finish()?;
    Ok(to)
}

/// Length of the common prefix of `a` and `b`, compared eight bytes at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or_default());
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        if x != y {
            return i + (x ^ y).trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    i + a[i..n].iter().zip(&b[i..n]).take_while(|(x, y)| x == y).count()
}
