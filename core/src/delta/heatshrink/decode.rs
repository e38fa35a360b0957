//! The streaming heatshrink decoder: input as it arrives, output into a window of `WINDOW` bytes
//! that the caller reads before asking for more. Nothing else is kept: the bits of an operation not
//! yet complete and what is left of a back-reference being copied.

/// Decoder state for windows up to `WINDOW` bytes (a power of two, at most 2^15).
pub(crate) struct Decoder<const WINDOW: usize> {
    /// The last `WINDOW` bytes produced, at `position - distance` for a back-reference. A ring of
    /// the largest window serves every smaller one: it holds at least the last 2^window_sz2
    /// bytes, and starts as zeros as the reference decoder's does.
    window: [u8; WINDOW],
    /// Bits read from the input and not yet decoded, in the low `pending_bits` bits; at most
    /// 30 bits of an incomplete operation plus one byte.
    pending: u64,
    pending_bits: u8,
    /// Where the next byte goes in `window`.
    position: u16,
    /// Bytes of the current back-reference still to copy, and its distance.
    copy_left: u16,
    copy_distance: u16,
    window_sz2: u8,
    lookahead_sz2: u8,
}

impl<const WINDOW: usize> Decoder<WINDOW> {
    pub(crate) const fn new() -> Self {
        Self {
            window: [0; WINDOW],
            pending: 0,
            pending_bits: 0,
            position: 0,
            copy_left: 0,
            copy_distance: 0,
            window_sz2: super::MIN_WINDOW_SZ2,
            lookahead_sz2: super::MIN_LOOKAHEAD_SZ2,
        }
    }

    /// Starts a stream with these sizes, which the caller has checked are valid and fit `WINDOW`.
    pub(crate) fn start(&mut self, window_sz2: u8, lookahead_sz2: u8) {
        *self = Self::new();
        self.window_sz2 = window_sz2;
        self.lookahead_sz2 = lookahead_sz2;
    }

    /// Decodes from `input` (advancing it) into the window until the end of the window's ring
    /// or of what `input` allows, and returns the range of `window()` just written; an empty range
    /// means `input` is used up and no complete operation is left to decode.
    pub(crate) fn produce(&mut self, input: &mut &[u8]) -> (usize, usize) {
        let start = usize::from(self.position);
        let mut at = start;
        while at < WINDOW {
            if self.copy_left > 0 {
                self.window[at] = self.window[(at + WINDOW - usize::from(self.copy_distance)) % WINDOW];
                at += 1;
                self.copy_left -= 1;
                continue;
            }
            if !self.fill(input, 1) {
                break;
            }
            if self.peek(1) == 1 {
                if !self.fill(input, 9) {
                    break;
                }
                self.window[at] = self.take(9) as u8;
                at += 1;
            } else {
                if !self.fill(input, 1 + self.window_sz2 + self.lookahead_sz2) {
                    break;
                }
                self.take(1);
                // Both fit u16: a distance is at most 2^15, a length 2^14.
                self.copy_distance = self.take(self.window_sz2) as u16 + 1;
                self.copy_left = self.take(self.lookahead_sz2) as u16 + 1;
            }
        }
        self.position = (at % WINDOW) as u16;
        (start, at)
    }

    pub(crate) fn window(&self) -> &[u8; WINDOW] {
        &self.window
    }

    /// Whether the stream may end here: nothing left to copy, and what is left of the input only
    /// the zero bits that pad the last byte.
    pub(crate) fn at_clean_end(&self) -> bool {
        self.copy_left == 0 && self.pending_bits < 8 && self.pending == 0
    }

    /// Makes at least `bits` bits pending, reading whole bytes; false if `input` runs out first.
    fn fill(&mut self, input: &mut &[u8], bits: u8) -> bool {
        while self.pending_bits < bits {
            let Some((&byte, rest)) = input.split_first() else {
                return false;
            };
            self.pending = (self.pending << 8) | u64::from(byte);
            self.pending_bits += 8;
            *input = rest;
        }
        true
    }

    fn peek(&self, bits: u8) -> u64 {
        (self.pending >> (self.pending_bits - bits)) & ((1 << bits) - 1)
    }

    fn take(&mut self, bits: u8) -> u64 {
        let value = self.peek(bits);
        self.pending_bits -= bits;
        self.pending &= (1 << self.pending_bits) - 1;
        value
    }
}
