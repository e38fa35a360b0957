//! Canonical JSON (the subset of RFC 8785 that manifests use): UTF-8, object keys sorted by code
//! point, no insignificant whitespace, integers only, RFC 8785 string escaping. Python's
//! `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` gives the same bytes
//! for these values, so any client can recompute what a signature covers. (RFC 8785 itself sorts
//! keys by UTF-16 code units; the two orders differ only for keys mixing U+E000..U+FFFF with
//! characters above U+FFFF, and manifest keys are fixed ASCII names.)

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CanonicalJsonError {
    #[error("canonical JSON allows integers only, found {0}")]
    NotAnInteger(String),
}

/// Serialises `value` canonically.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalJsonError> {
    let mut out = Vec::with_capacity(512);
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if !(n.is_i64() || n.is_u64()) {
                return Err(CanonicalJsonError::NotAnInteger(n.to_string()));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            // `str` ordering is byte ordering of UTF-8, which is code point ordering.
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{0C}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_whitespace_dropped() {
        let v = json!({"b": 1, "a": [true, null, "x"], "A": {"z": -2, "y": 18446744073709551615u64}});
        let out = String::from_utf8(canonical_json(&v).unwrap()).unwrap();
        assert_eq!(out, r#"{"A":{"y":18446744073709551615,"z":-2},"a":[true,null,"x"],"b":1}"#);
    }

    #[test]
    fn strings_escape_as_rfc_8785() {
        let v = json!("q\"\\\u{1}\n\u{7f}é\u{2028}");
        let out = String::from_utf8(canonical_json(&v).unwrap()).unwrap();
        assert_eq!(out, "\"q\\\"\\\\\\u0001\\n\u{7f}é\u{2028}\"");
    }

    #[test]
    fn floats_are_refused() {
        assert!(canonical_json(&json!({"a": 1.5})).is_err());
    }
}
