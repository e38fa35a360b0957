//! The line of a forwarded request, written straight into the log buffer in the bytes the
//! subscriber's formatter would write for it (compact or JSON).
//!
//! Going through `tracing::info!` cost a proxied request more than the rest of its logging
//! (bench/PROFILE.md): a visitor and a `fmt::Write` call per field, value escaping, and the
//! level's styling. This line has four fields whose text is known to need no
//! escaping in the compact format (a sanitised request id, an HTTP method token, a URI path,
//! which cannot hold spaces or control characters) and only JSON's in the other.
//!
//! Only when the subscriber writes plain text (no colours: a terminal gets the formatter's own
//! line) and only if the event is enabled: `RUST_LOG` still decides. The line has no span
//! fields because the proxy logs it outside any span (before tracing-actix-web's request span).

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use super::batched_writer::BatchedWriter;
use super::timestamp::write_timestamp;

/// Where and how lines go; set by `telemetry::init` once its subscriber is installed.
static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

struct AccessLog {
    writer: BatchedWriter,
    json: bool,
}

thread_local! {
    /// The line being put together, kept between requests so its buffer is reused.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Makes [`log`] write to `writer` from now on (the first call wins, as the subscriber's does).
pub(super) fn install(writer: BatchedWriter, json: bool) {
    let _ = ACCESS_LOG.set(AccessLog { writer, json });
}

/// The fields of a finished request's line.
pub struct AccessFields<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
}

/// Logs the `INFO request finished` line of `fields`: straight into the buffer when a plain
/// writer is installed, else through `tracing` (colours, or no subscriber set up by us).
pub fn log(fields: &AccessFields<'_>) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return; // `RUST_LOG` or `log.level` turned it off
    }
    let Some(log) = ACCESS_LOG.get() else {
        return through_tracing(fields);
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    LINE.with_borrow_mut(|line| {
        line.clear();
        format_line(line, log.json, now.as_secs(), now.subsec_micros(), fields);
        // Writing into the buffer cannot fail; a full buffer is written out by this thread.
        let _ = log.writer.clone().write_all(line.as_bytes());
    });
}

/// The same line as an event, for the subscriber's formatter.
fn through_tracing(fields: &AccessFields<'_>) {
    tracing::info!(
        request_id = %fields.request_id,
        method = %fields.method,
        path = %fields.path,
        status = fields.status,
        "request finished"
    );
}

fn format_line(line: &mut String, json: bool, second: u64, micros: u32, fields: &AccessFields<'_>) {
    let mut status = itoa::Buffer::new();
    let status = status.format(fields.status);
    if json {
        line.push_str("{\"timestamp\":\"");
        let _ = write_timestamp(line, second, micros);
        line.push_str("\",\"level\":\"INFO\",\"message\":\"request finished\",\"request_id\":");
        push_json_string(line, fields.request_id);
        line.push_str(",\"method\":");
        push_json_string(line, fields.method);
        line.push_str(",\"path\":");
        push_json_string(line, fields.path);
        line.push_str(",\"status\":");
        line.push_str(status);
        line.push_str("}\n");
    } else {
        let _ = write_timestamp(line, second, micros);
        for (text, value) in [
            ("  INFO request finished request_id=", fields.request_id),
            (" method=", fields.method),
            (" path=", fields.path),
            (" status=", status),
        ] {
            line.push_str(text);
            line.push_str(value);
        }
        line.push('\n');
    }
}

/// `value` as a JSON string, escaped as serde_json escapes it.
fn push_json_string(line: &mut String, value: &str) {
    line.push('"');
    let mut plain_from = 0;
    for (at, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        line.push_str(&value[plain_from..at]);
        if escape.is_empty() {
            line.push_str(&format!("\\u{byte:04x}"));
        } else {
            line.push_str(escape);
        }
        plain_from = at + 1;
    }
    line.push_str(&value[plain_from..]);
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::super::batched_writer::tests::Captured;
    use super::*;

    /// What tracing-subscriber's formatter writes for the same event, with the same settings
    /// `telemetry::init` uses, so the fast line cannot drift from the formatter's.
    fn formatter_line(json: bool, fields: &AccessFields<'_>) -> String {
        let output = Captured::default();
        let (writer, guard) = BatchedWriter::spawn(output.clone()).unwrap();
        let builder = tracing_subscriber::fmt()
            .with_target(false)
            .with_timer(super::super::timestamp::UtcMicros)
            .with_ansi(false)
            .with_writer(writer);
        if json {
            let subscriber = builder.json().flatten_event(true).with_current_span(true).finish();
            tracing::subscriber::with_default(subscriber, || through_tracing(fields));
        } else {
            tracing::subscriber::with_default(builder.compact().finish(), || through_tracing(fields));
        }
        drop(guard); // writes the line out
        String::from_utf8(output.0.lock().unwrap().clone()).unwrap()
    }

    fn fast_line(json: bool, fields: &AccessFields<'_>) -> String {
        let mut line = String::new();
        format_line(&mut line, json, 1_795_513_309, 771_475, fields);
        line
    }

    /// The timestamps differ: the formatter's is the clock's.
    fn without_timestamp(line: &str, json: bool) -> String {
        let at = if json { line.find("\",\"level\"").unwrap() } else { line.find("  INFO").unwrap() };
        line[at..].to_owned()
    }

    #[test]
    fn the_fast_line_is_the_formatters_line_in_both_formats() {
        let cases = [
            AccessFields { request_id: "abc-1", method: "GET", path: "/v1/user", status: 200 },
            AccessFields {
                request_id: "0f6ab0a4-3c41-4d55-9b8e-7b1fd1fd9c1e",
                method: "PATCH",
                path: "/v1/measurement/%E2%82%AC/x\"y\\z",
                status: 502,
            },
            AccessFields { request_id: "", method: "M-SEARCH", path: "/", status: 99 },
        ];
        for json in [false, true] {
            for fields in &cases {
                let fast = fast_line(json, fields);
                assert_eq!(
                    without_timestamp(&fast, json),
                    without_timestamp(&formatter_line(json, fields), json),
                    "json: {json}"
                );
            }
        }
        assert!(fast_line(false, &cases[0]).starts_with("2026-11-24T09:41:49.771475Z  INFO "));
        assert!(fast_line(true, &cases[0]).starts_with("{\"timestamp\":\"2026-11-24T09:41:49.771475Z\","));
    }

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for value in ["plain", "q\"uote", "back\\slash", "ctl\u{1}\u{1f}\n\r\t\u{8}\u{c}end", "€ ünï"] {
            let mut line = String::new();
            push_json_string(&mut line, value);
            assert_eq!(line, serde_json::to_string(value).unwrap());
        }
    }
}
