//! Request path safety (`request_path::unsafe_path`, which decides what the proxy may forward).
//! Input: any bytes, as a path when they are UTF-8. Properties: it never panics, and a path it
//! accepts has, in every percent-decoding down to the form that no longer changes (decoded here
//! by a decoder of this file's own, then NFKC-folded), no `.` or `..` segment, no backslash and
//! no NUL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nowatch_ota_core::request_path::unsafe_path;
use unicode_normalization::UnicodeNormalization;

/// One round of percent-decoding; a `%` not followed by two hex digits stays as it is.
fn decode_once(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn dangerous(path: &str) -> bool {
    let folded: String = path.nfkc().collect();
    folded.contains('\\')
        || folded.contains('\0')
        || folded.split('/').any(|s| matches!(s.split(';').next().unwrap_or_default().trim(), "." | ".."))
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if unsafe_path(path).is_some() {
        return;
    }
    let mut current = path.as_bytes().to_vec();
    loop {
        let text = std::str::from_utf8(&current)
            .unwrap_or_else(|_| panic!("accepted {path:?}, which decodes to bytes that are not UTF-8"));
        assert!(!dangerous(text), "accepted {path:?}, which decodes to {text:?}");
        let next = decode_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
});
