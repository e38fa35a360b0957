//! Semantic versions (semver 2.0) parsed in place and compared by precedence, without a heap:
//! major, minor and patch as numbers, pre-release and build metadata as the text they are.

use core::cmp::Ordering;

/// A semver 2.0 version, borrowed from the text it was parsed from: `MAJOR.MINOR.PATCH`, then
/// optionally `-PRE` (dot-separated identifiers) and `+BUILD`. No leading `v`, no whitespace, no
/// leading zeros in numbers; major, minor and patch fit 64 bits.
///
/// Compare versions with [`Version::cmp_precedence`] (semver's precedence: build metadata
/// ignored). `==` compares the text, build metadata included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    major: u64,
    minor: u64,
    patch: u64,
    pre: &'a str,
    build: &'a str,
    text: &'a str,
}

/// A text that is not a semver 2.0 version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionError;

impl core::fmt::Display for VersionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("not a semver 2.0 version")
    }
}

impl core::error::Error for VersionError {}

impl<'a> Version<'a> {
    /// Parses `text`, which must be exactly one version.
    pub fn parse(text: &'a str) -> Result<Self, VersionError> {
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let mut numbers = core.split('.');
        let mut number = || numbers.next().and_then(numeric).ok_or(VersionError);
        let (major, minor, patch) = (number()?, number()?, number()?);
        if numbers.next().is_some() {
            return Err(VersionError);
        }
        if pre.is_some_and(|pre| !identifiers(pre, true)) || build.is_some_and(|b| !identifiers(b, false)) {
            return Err(VersionError);
        }
        Ok(Self { major, minor, patch, pre: pre.unwrap_or(""), build: build.unwrap_or(""), text })
    }

    /// The major version.
    pub const fn major(&self) -> u64 {
        self.major
    }

    /// The minor version.
    pub const fn minor(&self) -> u64 {
        self.minor
    }

    /// The patch version.
    pub const fn patch(&self) -> u64 {
        self.patch
    }

    /// The pre-release identifiers, dot-separated (empty for a release).
    pub const fn pre(&self) -> &'a str {
        self.pre
    }

    /// The build metadata (empty if there is none).
    pub const fn build(&self) -> &'a str {
        self.build
    }

    /// The text it was parsed from.
    pub const fn as_str(&self) -> &'a str {
        self.text
    }

    /// Semver precedence: major, minor, patch numerically; a pre-release is below its release;
    /// pre-releases compare identifier by identifier (numeric ones numerically and below
    /// alphanumeric ones, which compare in ASCII order), and a shorter list whose identifiers all
    /// equal the longer one's first ones is lower. Build metadata is ignored.
    pub fn cmp_precedence(&self, other: &Version<'_>) -> Ordering {
        let numbers = (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        numbers.then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => cmp_pre(self.pre, other.pre),
        })
    }
}

impl core::fmt::Display for Version<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.text)
    }
}

/// A number without leading zeros that fits 64 bits.
fn numeric(text: &str) -> Option<u64> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.bytes().try_fold(0u64, |acc, d| {
        let d = char::from(d).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// Dot-separated, non-empty identifiers of `[0-9A-Za-z-]`; numeric pre-release identifiers
/// without leading zeros.
fn identifiers(text: &str, pre: bool) -> bool {
    text.split('.').all(|id| {
        let charset = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let leading_zero = id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit());
        charset && !(pre && leading_zero)
    })
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = cmp_identifier(x, y);
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

fn cmp_identifier(a: &str, b: &str) -> Ordering {
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    match (digits(a), digits(b)) {
        // No leading zeros, so the longer number is the larger one, however long.
        (true, true) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn precedence_follows_the_semver_spec_example() {
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "2.0.0",
            "2.1.0",
            "2.1.1",
        ];
        for pair in chain.windows(2) {
            let (a, b) = (Version::parse(pair[0]).unwrap(), Version::parse(pair[1]).unwrap());
            assert_eq!(a.cmp_precedence(&b), Ordering::Less, "{} < {}", pair[0], pair[1]);
            assert_eq!(b.cmp_precedence(&a), Ordering::Greater);
        }
        let (a, b) = (Version::parse("1.0.0+a").unwrap(), Version::parse("1.0.0+b.0").unwrap());
        assert_eq!(a.cmp_precedence(&b), Ordering::Equal);
    }

    #[test]
    fn malformed_versions_are_refused() {
        for bad in [
            "",
            "1",
            "1.0",
            "v1.0.0",
            "1.0.0.0",
            "01.0.0",
            "1.01.0",
            "1.0.00",
            "1.0.0-",
            "1.0.0+",
            "1.0.0-01",
            "1.0.0-a..b",
            "1.0.0-a_b",
            " 1.0.0",
            "1.0.0 ",
            "1.0.0+a+b",
            "18446744073709551616.0.0",
            "-1.0.0",
            "1.0.0-é",
        ] {
            assert_eq!(Version::parse(bad), Err(VersionError), "{bad:?}");
            assert!(semver::Version::parse(bad).is_err(), "semver takes {bad:?}");
        }
    }

    fn random_version(rng: &mut StdRng) -> String {
        const PIECES: [&str; 16] =
            ["0", "1", "2", "10", "01", "a", "b", "alpha", "rc", "-", "x-1", "", "9", "11", "0a", "Z"];
        let number = |rng: &mut StdRng| PIECES[rng.random_range(0..5)];
        let mut text = format!("{}.{}.{}", number(rng), number(rng), number(rng));
        for (sep, chance) in [('-', 2), ('+', 3)] {
            if rng.random_range(0..chance) == 0 {
                text.push(sep);
                for i in 0..rng.random_range(1..4) {
                    if i > 0 {
                        text.push('.');
                    }
                    text.push_str(PIECES[rng.random_range(0..PIECES.len())]);
                }
            }
        }
        if rng.random_range(0..40) == 0 {
            text.insert(rng.random_range(0..=text.len()), ['.', '+', '-', 'v', '0'][rng.random_range(0..5)]);
        }
        text
    }

    #[test]
    fn parsing_and_precedence_agree_with_the_semver_crate() {
        let mut rng = StdRng::seed_from_u64(22);
        let mut parsed = Vec::new();
        for _ in 0..20_000 {
            let text = random_version(&mut rng);
            let ours = Version::parse(&text);
            let theirs = semver::Version::parse(&text);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{text:?}: {ours:?} / {theirs:?}");
            if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                assert_eq!(
                    (ours.major(), ours.minor(), ours.patch()),
                    (theirs.major, theirs.minor, theirs.patch)
                );
                assert_eq!(ours.pre(), theirs.pre.as_str());
                assert_eq!(ours.build(), theirs.build.as_str());
                parsed.push(text);
            }
        }
        assert!(parsed.len() > 5_000, "only {} parsed", parsed.len());
        for _ in 0..50_000 {
            let a = &parsed[rng.random_range(0..parsed.len())];
            let b = &parsed[rng.random_range(0..parsed.len())];
            let ours = Version::parse(a).unwrap().cmp_precedence(&Version::parse(b).unwrap());
            let theirs =
                semver::Version::parse(a).unwrap().cmp_precedence(&semver::Version::parse(b).unwrap());
            assert_eq!(ours, theirs, "{a} vs {b}");
        }
    }

    #[test]
    fn long_numeric_identifiers_compare_as_numbers() {
        let a = Version::parse("1.0.0-99999999999999999999999").unwrap();
        let b = Version::parse("1.0.0-100000000000000000000000").unwrap();
        assert_eq!(a.cmp_precedence(&b), Ordering::Less);
    }
}
