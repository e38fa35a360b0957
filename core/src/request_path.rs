//! Which request paths are safe to route or forward. Decisions are made on every percent-decoding of the path,
//! down to the form that no longer changes, so an encoding cannot make a path look like one
//! prefix here and resolve to another route upstream, however many times a backend (or a
//! framework behind it) decodes it.

use std::borrow::Cow;

use percent_encoding::percent_decode;
use unicode_normalization::UnicodeNormalization;

/// Decoding rounds before a path that still changes is refused: no client needs a path encoded
/// eight times over, and the bound keeps the work per request small.
const MAX_DECODE_ROUNDS: usize = 8;

/// Why a path is refused, or `None` if it is safe to forward. Refused, in any of its decodings,
/// also once NFKC has folded compatibility characters (fullwidth dots, slashes, backslashes): a
/// dot segment (also with whitespace around it or before a `;` parameter), a backslash, NUL,
/// bytes that are not UTF-8 (overlong `%c0%ae` among them); and a path still changing after
/// [`MAX_DECODE_ROUNDS`].
pub fn unsafe_path(raw: &str) -> Option<&'static str> {
    let mut current: Cow<'_, [u8]> = Cow::Borrowed(raw.as_bytes());
    for _ in 0..MAX_DECODE_ROUNDS {
        if let Some(why) = unsafe_bytes(&current) {
            return Some(why);
        }
        let decoded: Cow<'_, [u8]> = percent_decode(&current).into();
        if decoded == current {
            return None;
        }
        current = Cow::Owned(decoded.into_owned());
    }
    Some("a path may not be percent-encoded more than 8 times over")
}

fn unsafe_bytes(path: &[u8]) -> Option<&'static str> {
    let Ok(path) = std::str::from_utf8(path) else {
        return Some("a path must be UTF-8 once percent-decoded");
    };
    // Judged as a backend that folds compatibility characters would see it: fullwidth `．`,
    // `／` and `＼` become `.`, `/` and `\`, so the path is folded whole, then split.
    let folded: Cow<'_, str> = match path.is_ascii() {
        true => Cow::Borrowed(path),
        false => Cow::Owned(path.nfkc().collect()),
    };
    if folded.contains('\\') {
        return Some("a path may not contain a backslash");
    }
    if folded.contains('\0') {
        return Some("a path may not contain NUL");
    }
    folded.split('/').any(dot_segment).then_some("a path may not contain . or .. segments")
}

/// `.` or `..`, before any `;` parameter, once trimmed of whitespace.
fn dot_segment(segment: &str) -> bool {
    matches!(segment.split(';').next().unwrap_or_default().trim(), "." | "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_backslashes_and_nul_are_unsafe_however_encoded() {
        for path in [
            "/v1/user/../admin/firmware",
            "/v1/user/./x",
            "/v1/user/..",
            "/v1/user/%2e%2e/admin",
            "/v1/user/%2E%2E/%2E%2E/healthz",
            "/v1/user/.%2e/admin",
            "/v1/user/%252e%252e/admin",
            "/v1/user%2f..%2fadmin",
            "/v1/user/..;x/admin",
            "/v1/user\\..\\admin",
            "/v1/user/%5c",
            "/v1/user/%00",
            "/v1/user/%2525252e%2525252e/admin",
            "/v1/user/..%20/admin",
            "/v1/user/%09../admin",
            "/v1/user/%c0%ae%c0%ae/admin",
            "/v1/user/%ef%bc%8e%ef%bc%8e/admin",
            "/v1/user/%e2%80%a5",
            "/v1/user/%ff",
            "/v1/user/%25252525252525252541",
            "/v1/user/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin",
            "/v1/user/..%EF%BC%8F..%EF%BC%8Fv1%EF%BC%8Fadmin",
            "/v1/user/..%EF%BC%BCadmin",
        ] {
            assert!(unsafe_path(path).is_some(), "{path}");
        }
        for path in [
            "/v1/user",
            "/v1/user/x",
            "/v1/user/...",
            "/v1/user/.x",
            "/v1/user/a%20b",
            "/v1/user/%25",
            "/v1/user/%e2%9c%93",
            "/v1/user/%2525",
        ] {
            assert_eq!(unsafe_path(path), None, "{path}");
        }
    }
}
