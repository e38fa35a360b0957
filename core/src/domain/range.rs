//! HTTP `Range` for image downloads: one range, `bytes=a-b`, `bytes=a-` or `bytes=-n`.

/// What a `Range` header asks of an object of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range (absent, malformed or multi-range): serve the whole object. RFC 9110
    /// lets a server ignore a Range it does not support, which clients handle.
    Whole,
    /// Inclusive `start..=end`, within the object.
    Part { start: u64, end: u64 },
    /// Syntactically fine but outside the object: 416.
    Unsatisfiable,
}

impl RangeRequest {
    pub fn parse(header: Option<&str>, len: u64) -> Self {
        let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
            return Self::Whole;
        };
        if spec.contains(',') {
            return Self::Whole;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return Self::Whole;
        };
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        match (first.trim(), last.trim()) {
            ("", suffix) => match number(suffix) {
                None => Self::Whole,
                Some(0) => Self::Unsatisfiable,
                Some(_) if len == 0 => Self::Unsatisfiable,
                Some(n) => Self::Part { start: len.saturating_sub(n), end: len - 1 },
            },
            (start, end) => {
                let Some(start) = number(start) else {
                    return Self::Whole;
                };
                let end = match end {
                    "" => u64::MAX,
                    e => match number(e) {
                        Some(e) => e,
                        None => return Self::Whole,
                    },
                };
                if end < start {
                    return Self::Whole;
                }
                if start >= len {
                    return Self::Unsatisfiable;
                }
                Self::Part { start, end: end.min(len - 1) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::{self, *};

    fn p(h: &str) -> RangeRequest {
        RangeRequest::parse(Some(h), 1000)
    }

    #[test]
    fn single_ranges_of_every_form() {
        assert_eq!(p("bytes=0-99"), Part { start: 0, end: 99 });
        assert_eq!(p("bytes=900-"), Part { start: 900, end: 999 });
        assert_eq!(p("bytes=-100"), Part { start: 900, end: 999 });
        assert_eq!(p("bytes=-5000"), Part { start: 0, end: 999 });
        assert_eq!(p("bytes=990-5000"), Part { start: 990, end: 999 });
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        assert_eq!(p("bytes=1000-"), Unsatisfiable);
        assert_eq!(p("bytes=-0"), Unsatisfiable);
        for ignored in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=",
            "bytes=--1",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(p(ignored), Whole, "{ignored}");
        }
        assert_eq!(RangeRequest::parse(None, 10), Whole);
    }
}
