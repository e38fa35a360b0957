//! The RAM probe: the whole flow (manifest, table, every chunk in any order, finish, then the
//! same image in order and whole) for a 1 MiB image in 4 KiB chunks, each step on a thread whose
//! stack was painted first, and the size of every state type.
//!
//! Stack high-water, the method: `paint` writes a pattern, with volatile writes through a raw
//! pointer, over 64 KiB of the thread's stack below its own frame (the stack grows down, and
//! this memory is not in use yet); the step runs; `high_water` scans the painted region from its
//! bottom up for the first word that is no longer the pattern, the deepest byte the step's
//! calls wrote. The figure is the distance from the caller's frame (`base`, a local of
//! `measure`) to that byte: the step's whole stack, a few bytes of the caller's frame included.
//! A word the step wrote with the very pattern would hide, so it can only under-read by a word
//! per coincidence (the pattern is a 64-bit constant).
//! x86_64 figures: the verifier's code is the same on a Cortex-M, its frames are not (other
//! registers, other backends of SHA-256 and of the curve arithmetic); see watch/README.md.

use std::hint::black_box;

use ed25519_dalek::{Signer, SigningKey};
use nowatch_ota_watch::{
    ChunkVerdict, DeviceFacts, ImageCheck, ImageDigest, Manifest, SequentialChunks, TableCheck, TrustedKey,
    VerifiedTable, Version, bitmap_len, verify_manifest,
};
use sha2::{Digest, Sha256};

const PATTERN: u64 = 0xa5c3_5a3c_96e1_1e69;
const PAINT: usize = 64 * 1024;
const IMAGE: usize = 1 << 20;
const CHUNK: usize = 4096;
const NOW: u64 = 1_780_272_000;

/// Paints `PAINT` bytes of stack below this frame (and a margin for it); returns their top.
#[inline(never)]
fn paint() -> usize {
    let marker = 0u8;
    let top = (std::ptr::addr_of!(marker) as usize - 512) & !7;
    for addr in (top - PAINT..top).step_by(8) {
        // SAFETY: below the live frames of this thread's 1 MiB stack, which nothing uses yet.
        unsafe { (addr as *mut u64).write_volatile(PATTERN) };
    }
    top
}

/// The lowest address below `top` that is no longer the pattern.
#[inline(never)]
fn lowest_written(top: usize) -> usize {
    (top - PAINT..top)
        .step_by(8)
        // SAFETY: the region `paint` wrote, in this thread's stack.
        .find(|&addr| unsafe { (addr as *const u64).read_volatile() } != PATTERN)
        .unwrap_or(top)
}

/// Bytes of stack `step` used, measured as described above.
#[inline(never)]
fn measure<R>(step: impl FnOnce() -> R) -> (R, usize) {
    let base = 0u8;
    let base = std::ptr::addr_of!(base) as usize;
    let top = paint();
    let result = black_box(step)();
    let low = lowest_written(top);
    assert!(low > top - PAINT, "the step used more than the painted {PAINT} bytes");
    (result, base - low)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            match i <= group.len() {
                true => out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize])),
                false => out.push('='),
            }
        }
    }
    out
}

/// The signed envelope of a 1 MiB image, as the server serves it, and its table.
fn fixture(key: &SigningKey, image: &[u8]) -> (String, Vec<u8>) {
    let table: Vec<u8> = image.chunks(CHUNK).flat_map(|c| <[u8; 32]>::from(Sha256::digest(c))).collect();
    let s = format!(
        concat!(
            r#"{{"channel":"beta","chunk_size":{},"chunk_table_sha256":"{}","expires_at":"2026-07-01T00:00:00Z","#,
            r#""firmware_id":"0b6f3f7e-8a52-4c3e-9d0e-3f1f6c2a9b11","hardware":["nw-watch-a1"],"#,
            r#""issued_at":"2026-05-01T00:00:00Z","mandatory":false,"min_from_version":"1.0.0","#,
            r#""min_version":"1.0.0","sha256":"{}","size":{},"spec_version":"1.1","#,
            r#""type":"nowatch-firmware-manifest","version":"2.1.0"}}"#
        ),
        CHUNK,
        hex(&Sha256::digest(&table)),
        hex(&Sha256::digest(image)),
        image.len(),
    );
    let key_id = hex(&Sha256::digest(key.verifying_key().as_bytes()));
    let sig = base64(&key.sign(s.as_bytes()).to_bytes());
    (format!(r#"{{"signed":{s},"signatures":[{{"key_id":"{key_id}","sig":"{sig}"}}]}}"#), table)
}

fn key_sign(key: &SigningKey, message: &[u8]) -> ed25519_dalek::Signature {
    key.sign(message)
}

fn run() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let image: Vec<u8> = (0..IMAGE as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let (envelope, table) = fixture(&key, &image);
    let trusted = [TrustedKey::new(key.verifying_key().to_bytes())];
    let device = DeviceFacts {
        hardware: "nw-watch-a1",
        current_version: Version::parse("2.0.0").unwrap(),
        channel: None,
        floor: None,
    };
    let mut rows = Vec::new();

    // The envelope and body read, the signature entries skipped: no curve arithmetic.
    let stranger = [TrustedKey::new([9; 32])];
    let (refused, stack) = measure(|| verify_manifest(envelope.as_bytes(), &stranger, &device, NOW).err());
    assert!(refused.is_some());
    rows.push(("verify_manifest, no key trusted (JSON)", stack));
    // The signature alone, as ed25519-dalek verifies it.
    let (verifies, stack) = measure(|| {
        let signed = &envelope[10..envelope.find(r#","signatures""#).unwrap()];
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key.verifying_key().to_bytes()).unwrap();
        key.verify_strict(signed.as_bytes(), &key_sign(&SigningKey::from_bytes(&[1; 32]), signed.as_bytes()))
    });
    verifies.unwrap();
    rows.push(("ed25519 verify_strict alone", stack));
    let (manifest, stack) = measure(|| verify_manifest(envelope.as_bytes(), &trusted, &device, NOW));
    let manifest: Manifest<'_> = manifest.unwrap();
    rows.push(("verify_manifest", stack));

    // The table as a phone relays it: 244-byte BLE notifications.
    let (verified, stack) = measure(|| {
        let mut check = TableCheck::new(&manifest)?;
        for piece in table.chunks(244) {
            check.feed(piece);
        }
        check.finish()
    });
    let verified: VerifiedTable = verified.unwrap();
    rows.push(("TableCheck (feed, finish)", stack));

    let count = manifest.chunks.unwrap().count;
    let mut bitmap = vec![0u8; bitmap_len(count)];
    let (done, stack) = measure(|| {
        let mut check = ImageCheck::new(verified, &table[..], &mut bitmap)?;
        // Any order: odd chunks, then even ones.
        for index in (1..count).step_by(2).chain((0..count).step_by(2)) {
            let start = index as usize * CHUNK;
            let chunk = &image[start..(start + CHUNK).min(image.len())];
            assert_eq!(check.check_chunk(index, chunk), ChunkVerdict::Accepted);
        }
        assert_eq!(check.next_missing(), None);
        check.finish()
    });
    done.unwrap();
    rows.push(("ImageCheck (check_chunk x256, finish)", stack));

    let (done, stack) = measure(|| {
        let mut check = SequentialChunks::new(verified, &table[..]);
        for piece in image.chunks(1000) {
            check.feed(piece)?;
        }
        check.finish()
    });
    done.unwrap();
    rows.push(("SequentialChunks (feed, finish)", stack));

    let (done, stack) = measure(|| {
        let mut check = ImageDigest::new(&manifest);
        for piece in image.chunks(1000) {
            check.feed(piece)?;
        }
        check.finish()
    });
    done.unwrap();
    rows.push(("ImageDigest (feed, finish)", stack));

    println!("stack high-water, bytes (x86_64, release, opt-level s):");
    for (step, bytes) in &rows {
        println!("  {step:<40} {bytes:>6}");
    }
    println!("  {:<40} {:>6}", "max", rows.iter().map(|r| r.1).max().unwrap_or(0));
    println!("state, bytes (size_of):");
    for (name, size) in [
        ("Manifest", size_of::<Manifest<'_>>()),
        ("TrustedKey", size_of::<TrustedKey>()),
        ("DeviceFacts", size_of::<DeviceFacts<'_>>()),
        ("TableCheck", size_of::<TableCheck>()),
        ("VerifiedTable", size_of::<VerifiedTable>()),
        ("ImageCheck<&[u8]>", size_of::<ImageCheck<'_, &[u8]>>()),
        ("SequentialChunks<&[u8]>", size_of::<SequentialChunks<&[u8]>>()),
        ("ImageDigest", size_of::<ImageDigest>()),
        ("bitmap, 1 MiB in 4 KiB chunks", bitmap_len(count)),
    ] {
        println!("  {name:<40} {size:>6}");
    }
}

fn main() {
    std::thread::Builder::new().stack_size(1 << 20).spawn(run).unwrap().join().unwrap();
}
