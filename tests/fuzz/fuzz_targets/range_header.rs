//! `Range` header parsing. Input: `<object length>\n<header>` (a length that is not a number is
//! taken as the byte count of the first line; a header that is not UTF-8 stands for no header).
//! Properties: a part lies within the object, no header means the whole object, surrounding
//! whitespace changes nothing, and a part written back as `bytes=a-b` parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nowatch_ota_core::domain::range::RangeRequest;

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let len =
        std::str::from_utf8(first).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(first.len() as u64);
    let header = std::str::from_utf8(rest).ok();

    let parsed = RangeRequest::parse(header, len);
    match header {
        None => assert_eq!(parsed, RangeRequest::Whole),
        Some(h) => {
            assert_eq!(
                RangeRequest::parse(Some(&format!(" \t{h} ")), len),
                parsed,
                "whitespace around {h:?}"
            );
        }
    }
    if let RangeRequest::Part { start, end } = parsed {
        assert!(start <= end && end < len, "{header:?} on {len} bytes gave {start}..={end}");
        let again = RangeRequest::parse(Some(&format!("bytes={start}-{end}")), len);
        assert_eq!(again, parsed, "bytes={start}-{end} on {len} bytes");
    }
    if len == 0 {
        assert!(!matches!(parsed, RangeRequest::Part { .. }), "a part of an empty object from {header:?}");
    }
});
