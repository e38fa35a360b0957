//! Log timestamps as tracing-subscriber's default timer writes them (RFC 3339, UTC,
//! microseconds: `2026-11-24T09:41:49.771475Z`), with the part up to the second formatted once
//! a second per thread: formatting the whole date on every line was much of the cost of a
//! proxied request's log line (bench/PROFILE.md, "log timestamps").

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

pub struct UtcMicros;

thread_local! {
    /// The second last formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        write_timestamp(w, now.as_secs(), now.subsec_micros())
    }
}

pub(super) fn write_timestamp(w: &mut impl fmt::Write, second: u64, micros: u32) -> fmt::Result {
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            let time = i64::try_from(second).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0));
            *text = time.unwrap_or_default().format("%Y-%m-%dT%H:%M:%S").to_string();
            *cached = second;
        }
        w.write_str(text)
    })?;
    let mut fraction = *b".000000Z";
    let mut rest = micros;
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    w.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_the_default_timer_writes_them() {
        let mut out = String::new();
        write_timestamp(&mut out, 1_795_513_309, 771_475).unwrap();
        assert_eq!(out, "2026-11-24T09:41:49.771475Z");
        out.clear();
        write_timestamp(&mut out, 1_795_513_310, 5).unwrap();
        assert_eq!(out, "2026-11-24T09:41:50.000005Z");
    }
}
