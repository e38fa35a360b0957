//! Which paths the proxy may forward. Decisions are made on the percent-decoded path, so an
//! encoding cannot make a path look like one prefix here and resolve to another route upstream.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// How many rounds of percent-decoding are checked: enough that a double-encoded `%252e%252e`
/// cannot reach a backend (or a framework behind it) that decodes twice.
const DECODE_ROUNDS: usize = 3;

/// Why a path is refused, or `None` if it is safe to forward: no `.` or `..` segment (also
/// percent-encoded, once or more, and also before a `;` parameter), no backslash, no NUL.
pub fn unsafe_path(raw: &str) -> Option<&'static str> {
    let mut current: Cow<'_, [u8]> = Cow::Borrowed(raw.as_bytes());
    for _ in 0..DECODE_ROUNDS {
        if let Some(why) = unsafe_bytes(&current) {
            return Some(why);
        }
        let decoded: Cow<'_, [u8]> = percent_decode(&current).into();
        if decoded == current {
            return None;
        }
        current = Cow::Owned(decoded.into_owned());
    }
    unsafe_bytes(&current)
}

fn unsafe_bytes(path: &[u8]) -> Option<&'static str> {
    if path.contains(&b'\\') {
        return Some("a path may not contain a backslash");
    }
    if path.contains(&0) {
        return Some("a path may not contain NUL");
    }
    let dot_segment = path.split(|b| *b == b'/').any(|segment| {
        let name = segment.split(|b| *b == b';').next().unwrap_or_default();
        name == b"." || name == b".."
    });
    dot_segment.then_some("a path may not contain . or .. segments")
}

/// The configured prefixes, each with the tag it reports under (its last segment).
#[derive(Debug, Clone)]
pub struct Prefixes(Vec<(String, String)>);

impl Prefixes {
    pub fn new(prefixes: &[String]) -> Self {
        Self(
            prefixes
                .iter()
                .map(|p| {
                    let path = p.trim_end_matches('/').to_owned();
                    let tag = path.rsplit('/').next().unwrap_or_default().to_owned();
                    (path, tag)
                })
                .collect(),
        )
    }

    /// The tag of the prefix `raw` (a safe path) falls under, on a segment boundary.
    pub fn tag_of(&self, raw: &str) -> Option<&str> {
        let decoded: Cow<'_, [u8]> = percent_decode(raw.as_bytes()).into();
        self.0
            .iter()
            .find(|(prefix, _)| {
                let prefix = prefix.as_bytes();
                decoded.starts_with(prefix) && matches!(decoded.get(prefix.len()), None | Some(b'/'))
            })
            .map(|(_, tag)| tag.as_str())
    }
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
        ] {
            assert!(unsafe_path(path).is_some(), "{path}");
        }
        for path in
            ["/v1/user", "/v1/user/x", "/v1/user/...", "/v1/user/.x", "/v1/user/a%20b", "/v1/user/%25"]
        {
            assert_eq!(unsafe_path(path), None, "{path}");
        }
    }

    #[test]
    fn prefixes_match_on_a_segment_boundary_of_the_decoded_path() {
        let prefixes = Prefixes::new(&["/v1/user".into(), "/v1/day-feedback/".into(), "/v2/auth".into()]);
        assert_eq!(prefixes.tag_of("/v1/user"), Some("user"));
        assert_eq!(prefixes.tag_of("/v1/user/settings"), Some("user"));
        assert_eq!(prefixes.tag_of("/v1/%75ser/settings"), Some("user"));
        assert_eq!(prefixes.tag_of("/v1/day-feedback"), Some("day-feedback"));
        assert_eq!(prefixes.tag_of("/v2/auth/login"), Some("auth"));
        assert_eq!(prefixes.tag_of("/v1/username"), None);
        assert_eq!(prefixes.tag_of("/v1/use"), None);
        assert_eq!(prefixes.tag_of("/v1/auth"), None);
    }
}
