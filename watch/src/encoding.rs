//! Lowercase hex and padded standard base64, decoded into fixed arrays: the only encodings a
//! manifest uses (digests and key ids; signatures).

use crate::json::hex_digit;

/// 64 lowercase hex digits as 32 bytes.
pub(crate) fn hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let bytes = text.as_bytes();
    if bytes.len() != 64 || bytes.iter().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [high, low] = pair else { return None };
        let value = hex_digit(*high)?.checked_mul(16)?.checked_add(hex_digit(*low)?)?;
        *byte = u8::try_from(value).ok()?;
    }
    Some(out)
}

/// An ed25519 signature: 88 characters of standard base64 ending in `==`, whose unused low bits
/// are zero (the one encoding of 64 bytes).
pub(crate) fn base64_64(text: &str) -> Option<[u8; 64]> {
    let (data, padding) = text.as_bytes().split_at_checked(86)?;
    if padding != b"==" {
        return None;
    }
    let mut out = [0u8; 64];
    let mut slots = out.iter_mut();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in data {
        acc = acc.checked_shl(6)? | sextet(c)?;
        bits = bits.checked_add(6)?;
        if bits >= 8 {
            bits = bits.checked_sub(8)?;
            let byte = acc.checked_shr(bits)? & 0xff;
            *slots.next()? = u8::try_from(byte).ok()?;
            acc &= 1u32.checked_shl(bits)?.checked_sub(1)?;
        }
    }
    // 86 characters carry 516 bits: 64 bytes and 4 bits that must be zero.
    match (slots.next(), acc) {
        (None, 0) => Some(out),
        _ => None,
    }
}

fn sextet(c: u8) -> Option<u32> {
    let value = match c {
        b'A'..=b'Z' => c.checked_sub(b'A')?,
        b'a'..=b'z' => c.checked_sub(b'a')?.checked_add(26)?,
        b'0'..=b'9' => c.checked_sub(b'0')?.checked_add(52)?,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_64_digits() {
        let text = "00ff10aB";
        assert_eq!(hex32(text), None);
        let good = "0123456789abcdef".repeat(4);
        let bytes = hex32(&good).unwrap();
        assert_eq!(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(), good);
        assert_eq!(hex32(&good.to_uppercase()), None);
        assert_eq!(hex32(&good[1..]), None);
        assert_eq!(hex32(&format!("{}g", &good[1..])), None);
    }

    #[test]
    fn base64_takes_the_one_encoding_of_64_bytes() {
        let zeros = format!("{}==", "A".repeat(86));
        assert_eq!(base64_64(&zeros), Some([0; 64]));
        let ones = format!("{}w==", "/".repeat(85));
        assert_eq!(base64_64(&ones), Some([0xff; 64]));
        // Low bits set: another spelling of the same bytes, refused.
        assert_eq!(base64_64(&format!("{}/==", "/".repeat(85))), None);
        assert_eq!(base64_64(&format!("{}=", "A".repeat(87))), None);
        assert_eq!(base64_64(&format!("{}-==", "A".repeat(85))), None);
        assert_eq!(base64_64(&"A".repeat(88)), None);
    }
}
