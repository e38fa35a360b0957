//! Random and mutated input, from a seeded RNG so that every run is the same: nothing panics,
//! and whatever verifies is what was signed.

use nowatch_ota_watch::{ChunkVerdict, ImageCheck, TableCheck, verify_manifest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::helpers::*;

const TOKENS: [&[u8]; 16] = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"\\",
    b"\\u",
    b"null",
    b"-0.5e+3",
    b"\"signed\"",
    b"\"signatures\"",
    b" ",
    b"\xff",
    b"\"key_id\"",
];

/// `bytes` with a few random edits: a byte changed, inserted or removed, a JSON token inserted,
/// a slice repeated or cut.
fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.random_range(1..4) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..6) {
            0 if at < bytes.len() => bytes[at] = rng.random(),
            1 => bytes.insert(at, rng.random()),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                bytes.splice(at..at, token.iter().copied());
            }
            4 => {
                let end = rng.random_range(at..=bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => bytes.truncate(at),
        }
    }
}

#[test]
fn random_and_mutated_envelopes_never_panic_and_only_the_signed_bytes_verify() {
    let mut rng = StdRng::seed_from_u64(2026);
    let image = image(3000, 50);
    let good = envelope(&body_v11(&image, 512));
    let reference = verify_manifest(good.as_bytes(), &keys(), &device(), NOW).unwrap();
    let (mut verified, mut runs) = (0, 0);
    for round in 0..3000 {
        let mut bytes = match round % 4 {
            0 => (0..rng.random_range(0..300)).map(|_| rng.random()).collect(),
            _ => good.clone().into_bytes(),
        };
        mutate(&mut rng, &mut bytes);
        let now = match rng.random_range(0..4) {
            0 => rng.random(),
            _ => NOW,
        };
        runs += 1;
        if let Ok(manifest) = verify_manifest(&bytes, &keys(), &device(), now) {
            // Only an edit outside <S> (whitespace, an ignored member) can still verify.
            verified += 1;
            assert_eq!(manifest, reference, "{}", String::from_utf8_lossy(&bytes));
        }
    }
    assert_eq!(runs, 3000);
    assert!(verified < 3000, "every mutation verified");
}

#[test]
fn random_tables_and_chunks_never_panic_and_match_a_reference() {
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..40 {
        let size = rng.random_range(0..6000);
        let image = image(size, round);
        let table = table(&image, 512);
        let envelope = envelope(&body_v11(&image, 512));
        let manifest = verify_manifest(envelope.as_bytes(), &keys(), &device(), NOW).unwrap();
        let mut fed = table.clone();
        if rng.random_bool(0.3) {
            mutate(&mut rng, &mut fed);
        }
        let mut check = TableCheck::new(&manifest).unwrap();
        let mut rest = &fed[..];
        while !rest.is_empty() {
            let (piece, after) = rest.split_at(rng.random_range(0..=rest.len()));
            check.feed(piece);
            rest = after;
        }
        let Ok(verified) = check.finish() else {
            assert_ne!(fed, table);
            continue;
        };
        assert_eq!(fed, table);
        let count = image.len().div_ceil(512);
        let mut bitmap = vec![0u8; nowatch_ota_watch::bitmap_len(count as u32)];
        let mut chunks = ImageCheck::new(verified, &table[..], &mut bitmap).unwrap();
        let mut accepted = vec![false; count];
        for _ in 0..count * 3 {
            let index = rng.random_range(0..count as u32 + 2);
            let good = image.chunks(512).nth(index as usize).unwrap_or(&[]);
            let mut bytes = good.to_vec();
            if rng.random_bool(0.3) {
                mutate(&mut rng, &mut bytes);
            }
            let expect = (index as usize) < count && bytes == good;
            assert_eq!(chunks.check_chunk(index, &bytes) == ChunkVerdict::Accepted, expect, "chunk {index}");
            if expect {
                accepted[index as usize] = true;
            }
        }
        let missing: Vec<u32> = (0..count as u32).filter(|&i| !accepted[i as usize]).collect();
        assert_eq!(chunks.missing().collect::<Vec<_>>(), missing);
        assert_eq!(chunks.finish().is_ok(), missing.is_empty());
    }
}
