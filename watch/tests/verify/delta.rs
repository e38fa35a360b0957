//! A delta patch applied on the watch (`nowatch_ota_core::delta::Applier`), its output checked
//! chunk by chunk as it is produced ([`SequentialChunks`]): a bad patch is refused at the end of
//! its first bad chunk, not after the whole image.

use nowatch_ota_core::delta::{Applier, ApplyError, Compression, apply_patch, create_patch};
use nowatch_ota_watch::{Check, ImageDigest, Rejection, SequentialChunks, TableCheck, verify_manifest};

use crate::helpers::*;

/// An old image and a new one that differs from it here and there, as a firmware update does.
fn images() -> (Vec<u8>, Vec<u8>) {
    let old = image(64 * 1024 + 300, 40);
    let mut new = old.clone();
    for at in (0..new.len()).step_by(997) {
        new[at] = new[at].wrapping_add(1);
    }
    new.splice(20_000..20_000, image(700, 41));
    (old, new)
}

/// What the watch does: the patch in 512-byte pieces through the applier, every output byte
/// through `SequentialChunks` (and, belt and braces, `ImageDigest`) before it is "written".
/// Returns the verdict and the bytes written when it came.
fn apply_on_watch(old: &[u8], new: &[u8], patch: &[u8], chunk_size: usize) -> (Result<(), Rejection>, usize) {
    let envelope = envelope(&body_v11(new, chunk_size));
    let manifest = verify_manifest(envelope.as_bytes(), &keys(), &device(), NOW).unwrap();
    let table = table(new, chunk_size);
    let mut table_check = TableCheck::new(&manifest).unwrap();
    table_check.feed(&table);
    let mut chunks = SequentialChunks::new(table_check.finish().unwrap(), &table[..]);
    let mut whole = ImageDigest::new(&manifest);
    let mut flash = Vec::new();
    let mut applier = Applier::<256>::new();
    for piece in patch.chunks(512) {
        let pushed = applier.push(piece, &mut &old[..], &mut |bytes: &[u8]| {
            chunks.feed(bytes)?;
            whole.feed(bytes)?;
            flash.extend_from_slice(bytes);
            Ok::<_, Rejection>(())
        });
        match pushed {
            Ok(()) => {}
            Err(ApplyError::Sink(rejection)) => return (Err(rejection), chunks.position() as usize),
            Err(other) => panic!("the applier refused the patch: {other}"),
        }
    }
    applier.finish().unwrap();
    let verdict = chunks.finish().map(|_| ());
    if verdict.is_ok() {
        assert_eq!(flash, new);
        assert!(whole.finish().is_ok());
    }
    (verdict, flash.len())
}

#[test]
fn a_good_patch_verifies_chunk_by_chunk() {
    let (old, new) = images();
    for compression in [Compression::None, Compression::HEATSHRINK] {
        let patch = create_patch(&old, &new, compression);
        assert_eq!(apply_on_watch(&old, &new, &patch, 4096), (Ok(()), new.len()));
        assert_eq!(apply_on_watch(&old, &new, &patch, 512), (Ok(()), new.len()));
    }
}

#[test]
fn a_patch_giving_a_wrong_byte_is_refused_at_the_end_of_that_chunk() {
    let (old, new) = images();
    for (bad_at, chunk_size) in [(5000usize, 4096usize), (0, 512), (new.len() - 1, 4096), (40_000, 1024)] {
        let mut wrong = new.clone();
        wrong[bad_at] ^= 0x40;
        let patch = create_patch(&old, &wrong, Compression::HEATSHRINK);
        let (verdict, position) = apply_on_watch(&old, &new, &patch, chunk_size);
        let rejection = verdict.unwrap_err();
        assert_eq!(
            (rejection.check, rejection.reason),
            (Check::Chunk, "the chunk's SHA-256 is not its table entry")
        );
        let chunk_end = ((bad_at / chunk_size + 1) * chunk_size).min(new.len());
        assert_eq!(position, chunk_end, "bad byte at {bad_at}, chunks of {chunk_size}");
    }
}

#[test]
fn a_tampered_patch_byte_is_refused_at_its_first_bad_chunk() {
    let (old, new) = images();
    let patch = create_patch(&old, &new, Compression::None);
    let mut refused_early = 0;
    for at in (1..patch.len()).step_by(patch.len() / 97) {
        let mut tampered = patch.clone();
        tampered[at] ^= 0x10;
        let Ok(output) = apply_patch(&old, &tampered) else { continue };
        let Some(first_bad) = output.iter().zip(&new).position(|(a, b)| a != b) else { continue };
        let (verdict, position) = apply_on_watch(&old, &new, &tampered, 4096);
        assert_eq!(verdict.unwrap_err().check, Check::Chunk, "patch byte {at}");
        assert_eq!(position, ((first_bad / 4096 + 1) * 4096).min(new.len()), "patch byte {at}");
        refused_early += usize::from(position < new.len());
    }
    assert!(refused_early > 10, "only {refused_early} tampered patches were refused before the end");
}

#[test]
fn output_shorter_or_longer_than_the_image_is_refused() {
    let (_, new) = images();
    let envelope = envelope(&body_v11(&new, 4096));
    let manifest = verify_manifest(envelope.as_bytes(), &keys(), &device(), NOW).unwrap();
    let table = table(&new, 4096);
    let verified = {
        let mut check = TableCheck::new(&manifest).unwrap();
        check.feed(&table);
        check.finish().unwrap()
    };
    let mut short = SequentialChunks::new(verified, &table[..]);
    short.feed(&new[..new.len() - 1]).unwrap();
    assert_eq!(short.chunks_verified(), (new.len() / 4096) as u32);
    assert_eq!(short.finish().unwrap_err().check, Check::Chunk);
    let mut long = SequentialChunks::new(verified, &table[..]);
    long.feed(&new).unwrap();
    assert_eq!(long.feed(&[0]).unwrap_err().check, Check::Chunk);
    assert!(long.feed(&[]).is_err(), "a refusal sticks");
    assert!(long.finish().is_err());
}
