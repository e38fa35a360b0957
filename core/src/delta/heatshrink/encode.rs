//! The heatshrink encoder: an optimal parse. A literal costs 9 bits and a back-reference
//! 1 + `window_sz2` + `lookahead_sz2` bits whatever its distance and length, so the cheapest
//! encoding of the whole input is found by dynamic programming from its end over, at each
//! position, the longest match within the window.
//!
//! Only the longest match matters: the cost of the cheapest encoding of `data[i..]` never grows
//! with `i` (drop a leading literal, or shorten a leading back-reference by one byte and keep its
//! distance, and what is left encodes `data[i + 1..]` for no more bits), so among back-references
//! of length 1 to `m` at `i`, the one of length `m` is never worse. The parse is therefore exact
//! given the matches, and linear in the input once they are found.

use crate::delta::common_prefix;

/// A hash-chain walk gives up after this many candidates. With detools' 256-byte window (and any
/// smaller one) a chain is never longer, so the parse is exact there. Larger windows take the
/// longest of the nearest 256 candidates: on 16 MiB of random bits, a 2^15-byte window took
/// 19 s with 256, 78 s with 1024 and 7 minutes with 4096, while the esp8266 patch with that
/// window is 3.8 % larger than with 4096.
const MAX_CANDIDATES: usize = 1 << 8;

const NONE: usize = usize::MAX;

/// Bits of a literal: its tag and the byte.
const LITERAL_BITS: u64 = 9;

/// The longest match at one position: `len` 0 for none (then the position is a literal).
#[derive(Clone, Copy, Default)]
struct Match {
    len: u16,
    distance: u16,
}

/// Appends the heatshrink bitstream of `data` (without detools' header byte).
///
/// Panics unless the parameters are ones heatshrink accepts ([`super::valid_parameters`]).
pub(crate) fn compress(data: &[u8], window_sz2: u8, lookahead_sz2: u8, out: &mut Vec<u8>) {
    assert!(
        super::valid_parameters(window_sz2, lookahead_sz2),
        "invalid heatshrink parameters: window {window_sz2} bits, lookahead {lookahead_sz2} bits"
    );
    let mut matches = longest_matches(data, 1 << window_sz2, 1 << lookahead_sz2);
    choose(&mut matches, 1 + u64::from(window_sz2) + u64::from(lookahead_sz2), 1 << lookahead_sz2);

    let mut bits = BitWriter { out, pending: 0, count: 0 };
    let mut i = 0;
    while i < data.len() {
        let Match { len, distance } = matches[i];
        if len == 0 {
            bits.push(1, 1);
            bits.push(u32::from(data[i]), 8);
            i += 1;
        } else {
            bits.push(0, 1);
            bits.push(u32::from(distance) - 1, window_sz2);
            bits.push(u32::from(len) - 1, lookahead_sz2);
            i += usize::from(len);
        }
    }
    bits.finish();
}

/// For each position, the longest match that starts at most `window` bytes before it (never
/// before the start of `data`), at most `max_len` bytes long, and its distance (the nearest when
/// several are as long). Matches of two bytes and more are found through hash chains of the
/// next two bytes, kept only for the positions still in the window; a one-byte match through the
/// last position of each byte value (worth taking when a back-reference costs under 9 bits).
fn longest_matches(data: &[u8], window: usize, max_len: usize) -> Vec<Match> {
    let mut matches = vec![Match::default(); data.len()];
    let mut head = vec![NONE; 1 << 16];
    let mut previous = vec![NONE; window];
    let mut last_of_byte = [NONE; 256];
    let ring = window - 1;

    for i in 0..data.len() {
        let limit = max_len.min(data.len() - i);
        let (mut best_len, mut best_distance) = (0, 0);
        if i + 1 < data.len() {
            let hash = usize::from(data[i]) << 8 | usize::from(data[i + 1]);
            let mut candidate = head[hash];
            let mut tries = 0;
            while candidate != NONE && i - candidate <= window && tries < MAX_CANDIDATES {
                // A candidate can only beat the best so far if it matches one byte further.
                if data[candidate + best_len] == data[i + best_len] {
                    let len = common_prefix(&data[candidate..candidate + limit], &data[i..i + limit]);
                    if len > best_len {
                        (best_len, best_distance) = (len, i - candidate);
                        if len == limit {
                            break;
                        }
                    }
                }
                candidate = previous[candidate & ring];
                tries += 1;
            }
            previous[i & ring] = head[hash];
            head[hash] = i;
        }
        let byte = usize::from(data[i]);
        if best_len == 0 && last_of_byte[byte] != NONE && i - last_of_byte[byte] <= window {
            (best_len, best_distance) = (1, i - last_of_byte[byte]);
        }
        last_of_byte[byte] = i;
        // Both fit: a length is at most 2^14 (lookahead < window <= 2^15), a distance 2^15.
        matches[i] = Match { len: best_len as u16, distance: best_distance as u16 };
    }
    matches
}

/// The dynamic programming, from the end: keeps at each position the back-reference if it makes
/// the rest cheapest, and turns it into a literal otherwise. The costs of the next `max_len`
/// positions are all it needs, so they live in a ring.
fn choose(matches: &mut [Match], backref_bits: u64, max_len: usize) {
    let ring_len = (max_len + 1).next_power_of_two();
    let mask = ring_len - 1;
    let mut cost = vec![0u64; ring_len];
    for i in (0..matches.len()).rev() {
        let literal = LITERAL_BITS + cost[(i + 1) & mask];
        let len = usize::from(matches[i].len);
        cost[i & mask] = if len > 0 && backref_bits + cost[(i + len) & mask] <= literal {
            backref_bits + cost[(i + len) & mask]
        } else {
            matches[i].len = 0;
            literal
        };
    }
}

/// Bits most significant first, as heatshrink reads them.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    pending: u64,
    count: u32,
}

impl BitWriter<'_> {
    fn push(&mut self, value: u32, bits: u8) {
        self.pending = (self.pending << bits) | u64::from(value);
        self.count += u32::from(bits);
        while self.count >= 8 {
            self.count -= 8;
            self.out.push((self.pending >> self.count) as u8);
        }
        self.pending &= (1 << self.count) - 1;
    }

    /// Pads the last byte with zero bits, as heatshrink does.
    fn finish(self) {
        if self.count > 0 {
            self.out.push((self.pending << (8 - self.count)) as u8);
        }
    }
}
