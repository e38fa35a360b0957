//! Version, id and digest parsing. Input: any bytes, taken as UTF-8 (lossily); a second line,
//! if any, is a second version to compare with the first.
//! Properties: what parses prints back to a string that parses to an equal value (and prints
//! the same again), precedence is a total order, ids accepted are short printable ASCII that can
//! never be a path or an option, and serde agrees with `parse`.
#![no_main]

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use nowatch_ota_core::domain::{Channel, DeviceId, HardwareId, Sha256Digest, Version};

fn check_version(s: &str) -> Option<Version> {
    let from_json = serde_json::from_value::<Version>(serde_json::Value::String(s.to_owned()));
    let Ok(v) = Version::parse(s) else {
        assert!(from_json.is_err(), "serde accepted {s:?} that parse refused");
        return None;
    };
    assert!(from_json.is_ok_and(|j| j == v));
    assert!(s.len() <= 128);
    let printed = v.to_string();
    let reparsed = Version::parse(&printed).unwrap_or_else(|e| panic!("{s:?} printed as {printed:?}: {e}"));
    assert_eq!(reparsed, v, "{s:?} -> {printed:?}");
    assert_eq!(reparsed.to_string(), printed, "printing is not stable for {s:?}");
    assert_eq!(reparsed.semver(), v.semver(), "{s:?} lost build metadata or more in {printed:?}");
    let key = Version::parse(&v.precedence_key()).unwrap_or_else(|e| panic!("precedence key of {s:?}: {e}"));
    assert_eq!(key.cmp(&v), Ordering::Equal);
    assert!(key.semver().build.is_empty());
    Some(v)
}

fn check_id<T: std::fmt::Display>(
    s: &str,
    parse: fn(&str) -> Result<T, nowatch_ota_core::domain::ParseError>,
    max: usize,
    json: fn(serde_json::Value) -> bool,
) {
    let ok = parse(s).is_ok_and(|id| id.to_string() == s);
    assert_eq!(ok, parse(s).is_ok(), "{s:?} did not print as itself");
    assert_eq!(json(serde_json::Value::String(s.to_owned())), ok, "serde and parse disagree on {s:?}");
    if ok {
        assert!(!s.is_empty() && s.len() <= max, "{s:?}");
        assert!(s.bytes().all(|b| b.is_ascii_graphic()), "{s:?} has a byte outside printable ASCII");
        assert!(s.as_bytes()[0].is_ascii_alphanumeric(), "{s:?} starts like an option or a hidden file");
        assert!(!s.contains('/') && !s.contains('\\'), "{s:?} could be a path");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (first, second) = text.split_once('\n').unwrap_or((&text, ""));

    let a = check_version(first);
    let b = check_version(second);
    if let (Some(a), Some(b)) = (a, b) {
        assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        assert_eq!(a == b, a.cmp(&b) == Ordering::Equal);
        assert_eq!(a == b, a.precedence_key() == b.precedence_key(), "{a} vs {b}");
    }

    check_id(first, HardwareId::parse, 64, |v| serde_json::from_value::<HardwareId>(v).is_ok());
    check_id(first, DeviceId::parse, 128, |v| serde_json::from_value::<DeviceId>(v).is_ok());
    check_id(first, Channel::parse, 32, |v| serde_json::from_value::<Channel>(v).is_ok());
    if Channel::parse(first).is_ok() {
        assert!(!first.bytes().any(|b| b.is_ascii_uppercase()), "channel {first:?} has capitals");
    }

    if let Ok(digest) = Sha256Digest::parse(first) {
        assert_eq!(digest.to_hex(), first.to_ascii_lowercase());
        assert_eq!(Sha256Digest::parse(&digest.to_string()), Ok(digest));
    }
});
