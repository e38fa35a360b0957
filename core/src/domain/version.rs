//! Firmware versions: semver 2.0, a leading `v` accepted and dropped, ordered by semver
//! precedence (pre-releases below their release, build metadata ignored).

use std::cmp::Ordering;
use std::fmt;

use super::ParseError;

/// A parsed firmware version. `Ord` is semver precedence, so two versions that differ only in
/// build metadata compare equal: for one hardware id they are the same release.
#[derive(Debug, Clone)]
pub struct Version(semver::Version);

impl Version {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        if value.len() > 128 {
            return Err(ParseError("must be at most 128 characters".into()));
        }
        let trimmed = value.strip_prefix('v').unwrap_or(value);
        semver::Version::parse(trimmed)
            .map(Self)
            .map_err(|e| ParseError(format!("{value:?} is not a semantic version ({e})")))
    }

    /// The version without build metadata: equal for equal precedence, so it can carry a unique
    /// index in the database.
    pub fn precedence_key(&self) -> String {
        let mut v = self.0.clone();
        v.build = semver::BuildMetadata::EMPTY;
        v.to_string()
    }

    pub fn semver(&self) -> &semver::Version {
        &self.0
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp_precedence(&other.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn leading_v_is_dropped_and_prereleases_sort_below_their_release() {
        assert_eq!(v("v1.2.0").to_string(), "1.2.0");
        assert!(v("1.2.0-beta.2") < v("1.2.0"));
        assert!(v("1.2.0-beta.2") > v("1.2.0-beta.1"));
        assert!(v("1.2.0-beta.10") > v("1.2.0-beta.2"));
    }

    #[test]
    fn build_metadata_does_not_change_precedence() {
        assert_eq!(v("1.2.0+a"), v("1.2.0+b"));
        assert_eq!(v("1.2.0+a").precedence_key(), "1.2.0");
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "1.2", "1.2.3.4", "v", "01.2.3", "1.2.3-"] {
            assert!(Version::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
