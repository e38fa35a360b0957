//! heatshrink, the LZSS of detools' `heatshrink` compression: an encoder that finds the smallest
//! bitstream the format allows (server side), and a streaming decoder that works in a fixed window
//! of at most `WINDOW` bytes (device side).
//!
//! The bitstream, as heatshrink 0.4 (and the `heatshrink2` package detools wraps) writes it: bits
//! most significant first; tag 1 then 8 bits is a literal byte; tag 0 then `window_sz2` bits of
//! distance − 1 and `lookahead_sz2` bits of length − 1 is a back-reference into the bytes already
//! produced; the last byte is padded with zero bits. The reference decoder's window starts as
//! zeros, so a back-reference before the start of the stream yields zeros; this decoder does the
//! same, and this encoder never writes one.

mod decode;
mod encode;

pub(crate) use decode::Decoder;
pub(crate) use encode::compress;

/// The smallest window heatshrink allows, in bits.
pub(crate) const MIN_WINDOW_SZ2: u8 = 4;
/// The largest window heatshrink allows (`HEATSHRINK_MAX_WINDOW_BITS`), in bits.
pub(crate) const MAX_WINDOW_SZ2: u8 = 15;
/// The smallest lookahead heatshrink allows, in bits.
pub(crate) const MIN_LOOKAHEAD_SZ2: u8 = 3;

/// Whether heatshrink accepts these sizes: it refuses a lookahead as large as the window.
pub(crate) fn valid_parameters(window_sz2: u8, lookahead_sz2: u8) -> bool {
    (MIN_WINDOW_SZ2..=MAX_WINDOW_SZ2).contains(&window_sz2)
        && (MIN_LOOKAHEAD_SZ2..window_sz2).contains(&lookahead_sz2)
}

/// detools' one-byte header before the bitstream (`compression/heatshrink.py`).
pub(crate) fn header(window_sz2: u8, lookahead_sz2: u8) -> u8 {
    ((window_sz2 - MIN_WINDOW_SZ2) << 4) | (lookahead_sz2 - MIN_LOOKAHEAD_SZ2)
}

/// The sizes a header byte names, valid or not: `(window_sz2, lookahead_sz2)`.
pub(crate) fn parse_header(byte: u8) -> (u8, u8) {
    ((byte >> 4) + MIN_WINDOW_SZ2, (byte & 0x0f) + MIN_LOOKAHEAD_SZ2)
}
