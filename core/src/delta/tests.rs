#![allow(clippy::unwrap_used)]

use super::heatshrink::{self, Decoder};
use super::size::{SizeReader, pack_size};
use super::*;

/// xorshift64*: random test data without a dependency, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `data` with about one byte in `every` changed, some runs inserted and some removed: what a
/// firmware update looks like to bsdiff.
fn mutate(rng: &mut Rng, data: &[u8], every: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 10);
    let mut i = 0;
    while i < data.len() {
        match rng.below(every) {
            0 => out.push(rng.next() as u8),
            1 => {
                let len = rng.below(40);
                out.extend(rng.bytes(len));
            }
            2 => i += rng.below(40),
            _ => {}
        }
        if let Some(&byte) = data.get(i) {
            out.push(byte);
        }
        i += 1;
    }
    out
}

fn text(n: usize) -> Vec<u8> {
    let words = ["firmware ", "update ", "the ", "watch ", "delta ", "of ", "patch\n", "a "];
    let mut rng = Rng(7);
    let mut out = Vec::new();
    while out.len() < n {
        out.extend_from_slice(words[rng.below(words.len())].as_bytes());
    }
    out.truncate(n);
    out
}

/// Inputs of every kind the encoder meets: random, runs, text, and the bsdiff body of a mutated
/// image (mostly zeros between literal runs).
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = Rng(1);
    let old = rng.bytes(3000);
    let new = mutate(&mut rng, &old, 60);
    let mut body = Vec::new();
    super::body(&old, &new, &mut body);
    vec![
        ("empty", vec![]),
        ("one byte", vec![42]),
        ("random", rng.bytes(2000)),
        ("zeros", vec![0; 5000]),
        ("text", text(4000)),
        ("period 3", b"abc".repeat(700)),
        ("bsdiff body", body),
    ]
}

fn decompress<const WINDOW: usize>(stream: &[u8], window_sz2: u8, lookahead_sz2: u8, step: usize) -> Vec<u8> {
    let mut decoder = Decoder::<WINDOW>::new();
    decoder.start(window_sz2, lookahead_sz2);
    let mut out = Vec::new();
    for mut piece in stream.chunks(step) {
        loop {
            let (start, end) = decoder.produce(&mut piece);
            if start == end {
                break;
            }
            out.extend_from_slice(&decoder.window()[start..end]);
        }
        assert!(piece.is_empty());
    }
    assert!(decoder.at_clean_end());
    out
}

fn compress(data: &[u8], window_sz2: u8, lookahead_sz2: u8) -> Vec<u8> {
    let mut out = Vec::new();
    heatshrink::compress(data, window_sz2, lookahead_sz2, &mut out);
    out
}

#[test]
fn pack_size_writes_detools_bytes() {
    // From detools.bsdiff.pack_size (the C function) in detools 0.53.0.
    let cases: [(i64, &str); 16] = [
        (0, "00"),
        (1, "01"),
        (-1, "41"),
        (63, "3f"),
        (-63, "7f"),
        (64, "8001"),
        (-64, "c001"),
        (127, "bf01"),
        (128, "8002"),
        (8191, "bf7f"),
        (8192, "808001"),
        (-8192, "c08001"),
        (1 << 20, "80808001"),
        (-(1 << 40), "c08080808040"),
        (615_388, "9c8f4b"),
        (i64::MAX, "bfffffffffffffffff01"),
    ];
    for (value, bytes) in cases {
        let mut out = Vec::new();
        pack_size(value, &mut out);
        assert_eq!(hex::encode(&out), bytes, "{value}");
    }
}

#[test]
fn sizes_round_trip() {
    let mut rng = Rng(3);
    let mut values = vec![0, 1, -1, 63, 64, -64, i64::MAX, -i64::MAX, i64::MAX / 2];
    values.extend((0..2000).map(|_| (rng.next() as i64) >> rng.below(64)));
    for value in values {
        let mut bytes = Vec::new();
        pack_size(value, &mut bytes);
        let mut reader = SizeReader::new();
        let (last, init) = bytes.split_last().unwrap();
        for &byte in init {
            assert_eq!(reader.push(byte).unwrap(), None);
        }
        assert_eq!(reader.push(*last).unwrap(), Some(value));
    }
}

#[test]
fn sizes_beyond_i64_are_refused() {
    for bytes in [
        // 2^63: one more than i64::MAX.
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02][..],
        // Bits beyond 64.
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f],
        // Eleven bytes, whatever their value.
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
    ] {
        let mut reader = SizeReader::new();
        let result = bytes.iter().try_for_each(|&b| reader.push(b).map(|_| ()));
        assert_eq!(result, Err(PatchError::SizeOverflow), "{bytes:02x?}");
    }
    // Redundant zero bytes are accepted, as detools' unpack_size accepts them.
    let mut reader = SizeReader::new();
    assert_eq!(reader.push(0x85).unwrap(), None);
    assert_eq!(reader.push(0x80).unwrap(), None);
    assert_eq!(reader.push(0x00).unwrap(), Some(5));
}

#[test]
fn heatshrink_round_trips_every_window_and_lookahead() {
    for (name, data) in samples() {
        for window_sz2 in 4..=8 {
            for lookahead_sz2 in 3..window_sz2 {
                let stream = compress(&data, window_sz2, lookahead_sz2);
                let whole = decompress::<256>(&stream, window_sz2, lookahead_sz2, usize::MAX);
                assert!(whole == data, "{name}, window {window_sz2}, lookahead {lookahead_sz2}");
                let bytewise = decompress::<256>(&stream, window_sz2, lookahead_sz2, 1);
                assert!(
                    bytewise == data,
                    "{name} byte by byte, window {window_sz2}, lookahead {lookahead_sz2}"
                );
            }
        }
    }
}

#[test]
fn heatshrink_round_trips_large_windows() {
    let mut rng = Rng(11);
    let old = rng.bytes(40_000);
    let data = [old.clone(), mutate(&mut rng, &old, 100)].concat();
    for (window_sz2, lookahead_sz2) in [(9, 8), (12, 4), (15, 3), (15, 14)] {
        let stream = compress(&data, window_sz2, lookahead_sz2);
        assert!(decompress::<{ 1 << 15 }>(&stream, window_sz2, lookahead_sz2, 777) == data, "{window_sz2}");
    }
}

/// The parse is optimal: no choice of literals and back-references (any length, any distance in
/// the window) encodes the input in fewer bits. Checked against an exhaustive search on inputs
/// small enough for it.
#[test]
fn heatshrink_parse_is_optimal() {
    let mut rng = Rng(5);
    for round in 0..40 {
        let alphabet = [2, 3, 4, 16, 256][round % 5];
        let data: Vec<u8> = (0..300).map(|_| rng.below(alphabet) as u8).collect();
        for (window_sz2, lookahead_sz2) in [(4, 3), (5, 3), (6, 4), (8, 7)] {
            let (window, max_len) = (1usize << window_sz2, 1usize << lookahead_sz2);
            let backref = 1 + u64::from(window_sz2) + u64::from(lookahead_sz2);
            let mut best = vec![u64::MAX; data.len() + 1];
            best[data.len()] = 0;
            for i in (0..data.len()).rev() {
                best[i] = 9 + best[i + 1];
                for distance in 1..=window.min(i) {
                    let mut len = 0;
                    while len < max_len && i + len < data.len() && data[i + len] == data[i + len - distance] {
                        len += 1;
                        best[i] = best[i].min(backref + best[i + len]);
                    }
                }
            }
            let bytes = compress(&data, window_sz2, lookahead_sz2).len() as u64;
            assert_eq!(
                bytes,
                best[0].div_ceil(8),
                "round {round}, window {window_sz2}, lookahead {lookahead_sz2}"
            );
        }
    }
}

#[test]
fn heatshrink_backreferences_before_the_start_read_zeros() {
    // Bits: tag 0, index 0 (distance 1) in 8 bits, count 1 (length 2) in 4 bits, 3 bits of
    // padding; the reference decoder's zeroed window gives two zeros.
    let stream = [0b0000_0000, 0b0000_1000];
    assert_eq!(decompress::<256>(&stream, 8, 4, 1), vec![0, 0]);
}

fn apply_streaming(from: &[u8], patch: &[u8], step: usize) -> Result<Vec<u8>, ApplyError> {
    let mut applier = Applier::<256>::new();
    let mut to = Vec::new();
    let mut source = from;
    for piece in patch.chunks(step) {
        applier.push(piece, &mut source, &mut |bytes: &[u8]| {
            to.extend_from_slice(bytes);
            Ok::<_, core::convert::Infallible>(())
        })?;
        assert!(to.len() as u64 <= applier.to_size().unwrap_or(0));
    }
    assert_eq!(applier.finish()?, to.len() as u64);
    Ok(to)
}

const COMPRESSIONS: [Compression; 3] =
    [Compression::None, Compression::HEATSHRINK, Compression::Heatshrink { window_sz2: 4, lookahead_sz2: 3 }];

#[test]
fn patches_round_trip() {
    let mut rng = Rng(9);
    let image = rng.bytes(20_000);
    let text = text(10_000);
    let pairs: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("both empty", vec![], vec![]),
        ("to empty", image.clone(), vec![]),
        ("from empty", vec![], image.clone()),
        ("one byte each", vec![1], vec![2]),
        ("identical", image.clone(), image.clone()),
        ("mutated", image.clone(), mutate(&mut rng, &image, 50)),
        ("heavily mutated", image.clone(), mutate(&mut rng, &image, 5)),
        ("unrelated", rng.bytes(5000), rng.bytes(7000)),
        ("text", text.clone(), mutate(&mut rng, &text, 200)),
        ("shrunk", image.clone(), image[5000..12_000].to_vec()),
        ("zeros", vec![0; 10_000], vec![0; 12_000]),
    ];
    for (name, from, to) in &pairs {
        for compression in COMPRESSIONS {
            let patch = create_patch(from, to, compression);
            assert_eq!(apply_patch(from, &patch).as_deref(), Ok(&to[..]), "{name}, {compression:?}");
            for step in [1, 7, 4096] {
                assert_eq!(apply_streaming(from, &patch, step).as_deref(), Ok(&to[..]), "{name} by {step}");
            }
        }
    }
}

#[test]
fn empty_images_are_a_header_and_a_zero_size() {
    for compression in COMPRESSIONS {
        let code = if compression == Compression::None { 0x00 } else { 0x04 };
        assert_eq!(create_patch(b"old", b"", compression), vec![code, 0x00]);
        assert_eq!(apply_patch(b"old", &[code, 0x00]), Ok(vec![]));
        assert_eq!(apply_patch(b"old", &[code, 0x00, 0x00]), Err(PatchError::TrailingData.into()));
    }
}

#[test]
fn an_uncompressed_patch_is_detools_layout() {
    // detools.create_patch(..., compression='none') of the same: a header, the size, no data
    // format, then one chunk of diff data (0 where equal), extra data and the adjustment.
    let patch = create_patch(b"abc", b"abdX", Compression::None);
    assert_eq!(patch, [0x00, 0x04, 0x00, 0x02, 0, 0, 0x02, b'd', b'X', 0x42]);
    let patch = create_patch(b"abcdefghij", b"abcdefXhij", Compression::None);
    assert_eq!(patch, [0x00, 0x0a, 0x00, 0x0a, 0, 0, 0, 0, 0, 0, 241, 0, 0, 0, 0x00, 0x43]);
}

/// Every proper prefix of a patch is refused, and never with the whole image produced.
#[test]
fn truncated_patches_are_refused_at_every_length() {
    let mut rng = Rng(13);
    let from = rng.bytes(3000);
    let to = mutate(&mut rng, &from, 40);
    for compression in COMPRESSIONS {
        let patch = create_patch(&from, &to, compression);
        for len in 0..patch.len() {
            let result = apply_streaming(&from, &patch[..len], 1);
            assert_eq!(
                result,
                Err(PatchError::Truncated.into()),
                "{compression:?}, {len} of {} bytes",
                patch.len()
            );
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut rng = Rng(17);
    let from = rng.bytes(3000);
    let to = mutate(&mut rng, &from, 40);
    for compression in COMPRESSIONS {
        let patch = create_patch(&from, &to, compression);
        for extra in [&[0x00][..], &[0xff], &[0x80], &[0x00, 0x00], &[0x12, 0x34, 0x56, 0x78]] {
            let result = apply_streaming(&from, &[&patch[..], extra].concat(), 1);
            assert_eq!(result, Err(PatchError::TrailingData.into()), "{compression:?} + {extra:02x?}");
        }
    }
    // Nonzero padding bits after the last heatshrink operation.
    let patch = create_patch(&from, &to, Compression::HEATSHRINK);
    let mut padded = patch.clone();
    *padded.last_mut().unwrap() |= 1;
    if padded != patch {
        assert_eq!(apply_patch(&from, &padded), Err(PatchError::TrailingData.into()));
    }
}

#[test]
fn headers_other_than_sequential_none_or_heatshrink_are_refused() {
    for byte in 0..=255u8 {
        let result = apply_patch(b"", &[byte, 0x00]);
        let expected = match (byte >> 4, byte & 0x0f) {
            (0, 0 | 4) => Ok(vec![]),
            (0, compression) => Err(PatchError::Compression(compression).into()),
            (patch_type, _) => Err(PatchError::PatchType(patch_type).into()),
        };
        assert_eq!(result, expected, "{byte:#04x}");
    }
    let error = apply_patch(b"", &[0x01, 0x05]).unwrap_err().to_string();
    assert!(error.contains("lzma"), "{error}");
}

#[test]
fn heatshrink_windows_larger_than_the_applier_are_refused_naming_them() {
    let to = b"some new image".to_vec();
    let patch = create_patch(b"", &to, Compression::Heatshrink { window_sz2: 9, lookahead_sz2: 4 });
    let mut applier = Applier::<256>::new();
    let result = applier.push(&patch, &mut &b""[..], &mut |_: &[u8]| Ok::<_, core::convert::Infallible>(()));
    let error = result.unwrap_err();
    assert_eq!(error, PatchError::WindowTooLarge { window_sz2: 9, max_sz2: 8 }.into());
    assert!(error.to_string().contains("2^9"), "{error}");
    // The same patch applies with a larger window.
    assert_eq!(apply_patch(b"", &patch), Ok(to));
    // Parameters heatshrink itself refuses: a lookahead as large as the window, a window of 16.
    for (byte, window_sz2, lookahead_sz2) in [(0x45, 8, 8), (0xc0, 16, 3)] {
        assert_eq!(
            apply_patch(b"", &[0x04, 0x01, byte]),
            Err(PatchError::HeatshrinkParameters { window_sz2, lookahead_sz2 }.into())
        );
    }
}

/// An uncompressed patch for a 4-byte image whose body is `body`.
fn raw_patch(body: &[u8]) -> Vec<u8> {
    [&[0x00, 0x04][..], body].concat()
}

#[test]
fn structural_errors_are_refused() {
    let from = b"abcdef";
    let cases: [(&str, Vec<u8>, PatchError); 8] = [
        ("data format", raw_patch(&[0x01, 0x00]), PatchError::DataFormat),
        ("negative data format", raw_patch(&[0x41]), PatchError::DataFormat),
        ("negative diff", raw_patch(&[0x00, 0x41]), PatchError::NegativeSize),
        (
            "diff past to",
            raw_patch(&[0x00, 0x05]),
            PatchError::WritePastEnd { to_pos: 0, len: 5, to_size: 4 },
        ),
        (
            "extra past to",
            raw_patch(&[0x00, 0x02, 0, 0, 0x03]),
            PatchError::WritePastEnd { to_pos: 2, len: 3, to_size: 4 },
        ),
        (
            "diff outside from",
            raw_patch(&[0x00, 0x00, 0x00, 0x05, 0x02]),
            PatchError::ReadOutsideFrom { offset: 5, len: 2, from_size: 6 },
        ),
        (
            "adjustment before from",
            raw_patch(&[0x00, 0x01, 0, 0x00, 0x42]),
            PatchError::AdjustmentOutsideFrom { from_pos: 1, adjustment: -2, from_size: 6 },
        ),
        (
            "adjustment past from",
            raw_patch(&[0x00, 0x01, 0, 0x00, 0x06]),
            PatchError::AdjustmentOutsideFrom { from_pos: 1, adjustment: 6, from_size: 6 },
        ),
    ];
    for (name, patch, error) in cases {
        assert_eq!(apply_patch(from, &patch), Err(error.into()), "{name}");
    }
    // Negative to_size.
    assert_eq!(apply_patch(from, &[0x00, 0x41]), Err(PatchError::NegativeSize.into()));
    // The hand-made layout itself is right: diff 2 (a, b + 1), extra 2, adjustment to the end.
    let good = raw_patch(&[0x00, 0x02, 0, 1, 0x02, b'x', b'y', 0x04]);
    assert_eq!(apply_patch(from, &good), Ok(b"acxy".to_vec()));
}

#[test]
fn errors_stop_the_applier() {
    let mut applier = Applier::<256>::new();
    let mut sink = |_: &[u8]| Ok::<_, ()>(());
    let result = applier.push(&[0x30], &mut &b""[..], &mut sink);
    assert_eq!(result, Err(PatchError::PatchType(3).into()));
    assert_eq!(applier.push(&[], &mut &b""[..], &mut sink), Err(PatchError::Stopped.into()));
    assert_eq!(applier.finish(), Err(PatchError::Stopped));
}

#[test]
fn sink_and_source_errors_propagate() {
    let mut rng = Rng(19);
    let from = rng.bytes(1000);
    let to = mutate(&mut rng, &from, 30);
    let patch = create_patch(&from, &to, Compression::HEATSHRINK);

    let mut applier = Applier::<256>::new();
    let mut written = 0;
    let mut full = |bytes: &[u8]| {
        written += bytes.len();
        if written > 500 { Err("flash full") } else { Ok(()) }
    };
    assert_eq!(applier.push(&patch, &mut &from[..], &mut full), Err(ApplyError::Sink("flash full")));

    struct Broken;
    impl Source for Broken {
        fn size(&self) -> u64 {
            1000
        }
        fn read_at(&mut self, _: u64, _: &mut [u8]) -> Result<(), SourceError> {
            Err(SourceError("flash read failed"))
        }
    }
    let mut applier = Applier::<256>::new();
    let result = applier.push(&patch, &mut Broken, &mut |_: &[u8]| Ok::<_, ()>(()));
    assert!(
        matches!(result, Err(ApplyError::Source { error: SourceError("flash read failed"), .. })),
        "{result:?}"
    );
}

#[test]
fn the_applier_is_small() {
    let size = core::mem::size_of::<Applier>();
    println!("size_of::<Applier>() = {size} bytes");
    // As its documentation says: the window, then 216 bytes.
    assert_eq!(size, 256 + 216);
    assert_eq!(core::mem::size_of::<Applier<16>>(), 16 + 216);
    assert!(size < 1024);
}
