//! detools' size fields (`pack_size` / `unpack_size`): a signed varint whose first byte holds the
//! sign (0x40) and the low 6 bits, each further byte 7 more bits, least significant first; bit 0x80
//! says another byte follows. Zero is the single byte 0x00.

use super::PatchError;

/// A size field is at most this long: 6 + 9 × 7 = 69 bits cover any `i64`, and a bound stops a
/// patch of endless continuation bytes from keeping the applier busy without producing anything.
const MAX_BYTES: u8 = 10;

/// Appends `value` as detools' C `pack_size` writes it, byte for byte.
pub(crate) fn pack_size(value: i64, out: &mut Vec<u8>) {
    if value == 0 {
        out.push(0);
        return;
    }
    let sign = if value < 0 { 0x40 } else { 0 };
    let mut rest = value.unsigned_abs();
    out.push(0x80 | sign | (rest & 0x3f) as u8);
    rest >>= 6;
    while rest > 0 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    // The last byte says no byte follows.
    if let Some(last) = out.last_mut() {
        *last &= 0x7f;
    }
}

/// Reads one size field a byte at a time, as the patch arrives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SizeReader {
    magnitude: u64,
    /// Bytes read so far of the current field; 0 between fields.
    bytes: u8,
    negative: bool,
}

impl SizeReader {
    pub(crate) const fn new() -> Self {
        Self { magnitude: 0, bytes: 0, negative: false }
    }

    /// Takes the next byte; `Some(value)` once the field is complete (the reader is then ready for
    /// the next one). Refuses a field whose value does not fit an `i64`.
    pub(crate) fn push(&mut self, byte: u8) -> Result<Option<i64>, PatchError> {
        let more = byte & 0x80 != 0;
        if self.bytes == 0 {
            self.negative = byte & 0x40 != 0;
            self.magnitude = u64::from(byte & 0x3f);
        } else {
            if self.bytes >= MAX_BYTES {
                return Err(PatchError::SizeOverflow);
            }
            let shift = 6 + 7 * u32::from(self.bytes - 1);
            let bits = u64::from(byte & 0x7f);
            if bits != 0 {
                // Bits shifted out of 64 would be silently lost.
                if shift >= 64 || (bits << shift) >> shift != bits {
                    return Err(PatchError::SizeOverflow);
                }
                self.magnitude |= bits << shift;
            }
        }
        self.bytes += 1;
        if more {
            return Ok(None);
        }
        let magnitude = i64::try_from(self.magnitude).map_err(|_| PatchError::SizeOverflow)?;
        let negative = self.negative;
        *self = Self::new();
        Ok(Some(if negative { -magnitude } else { magnitude }))
    }
}
