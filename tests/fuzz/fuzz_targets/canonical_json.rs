//! Canonical JSON (RFC 8785 as manifests use it). Input: any bytes; those that parse as JSON are
//! canonicalised. Properties: only values holding a non-integer number are refused; the output
//! is JSON that parses back to the same value, is its own canonical form (idempotent), and is
//! byte for byte what a second, independent writer gives (serde_json's compact writer over the
//! value with every object's keys sorted: the same escaping, no whitespace).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nowatch_ota_core::signing::canonical_json;
use serde_json::Value;

fn has_non_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => !(n.is_i64() || n.is_u64()),
        Value::Array(items) => items.iter().any(has_non_integer),
        Value::Object(map) => map.values().any(has_non_integer),
        _ => false,
    }
}

/// The value with every object rebuilt in sorted key order (whatever map type serde_json uses).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        other => other.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let out = match canonical_json(&value) {
        Ok(out) => out,
        Err(e) => {
            assert!(has_non_integer(&value), "refused a value of integers only: {e}");
            return;
        }
    };
    assert!(!has_non_integer(&value), "accepted a non-integer number");
    let text = std::str::from_utf8(&out).unwrap_or_else(|e| panic!("canonical JSON is not UTF-8: {e}"));
    let reparsed: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("canonical JSON {text:?} does not parse: {e}"));
    assert_eq!(reparsed, value, "{text}");
    assert_eq!(canonical_json(&reparsed).ok().as_deref(), Some(&out[..]), "not idempotent: {text}");
    let other = serde_json::to_vec(&sorted(&value)).unwrap_or_else(|e| panic!("serde_json: {e}"));
    assert_eq!(String::from_utf8_lossy(&other), text);
});
