//! The proxy's prefixes, matched on the decoded path (which [`unsafe_path`] has checked).

use std::borrow::Cow;

use percent_encoding::percent_decode;

#[cfg(doc)]
use nowatch_ota_core::request_path::unsafe_path;

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
