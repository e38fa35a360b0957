//! The chunk table streamed, chunks in any order, and whole images.

use nowatch_ota_watch::{
    Check, ChunkVerdict, ImageCheck, ImageDigest, Manifest, TableCheck, TableSource, VerifiedTable,
    bitmap_len, verify_manifest,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::helpers::*;

fn manifest(envelope: &str) -> Manifest<'_> {
    verify_manifest(envelope.as_bytes(), &keys(), &device(), NOW).unwrap()
}

fn verified_table(manifest: &Manifest<'_>, table: &[u8]) -> VerifiedTable {
    let mut check = TableCheck::new(manifest).unwrap();
    check.feed(table);
    check.finish().unwrap()
}

#[test]
fn the_table_verifies_fed_in_any_split() {
    let image = image(20_000, 20);
    let table = table(&image, 1024);
    let envelope = envelope(&body_v11(&image, 1024));
    let manifest = manifest(&envelope);
    let mut rng = StdRng::seed_from_u64(1);
    for _ in 0..50 {
        let mut check = TableCheck::new(&manifest).unwrap();
        assert_eq!(check.expected_len(), 20 * 32);
        let mut rest = &table[..];
        while !rest.is_empty() {
            let (piece, after) = rest.split_at(rng.random_range(0..=rest.len().min(100)));
            check.feed(piece);
            rest = after;
        }
        let verified = check.finish().unwrap();
        assert_eq!(verified.spec().count, 20);
    }
}

#[test]
fn a_tampered_short_or_long_table_is_refused() {
    let image = image(20_000, 21);
    let table = table(&image, 1024);
    let envelope = envelope(&body_v11(&image, 1024));
    let manifest = manifest(&envelope);
    let refused = |bytes: &[u8]| {
        let mut check = TableCheck::new(&manifest).unwrap();
        check.feed(bytes);
        check.finish().unwrap_err()
    };
    let mut tampered = table.clone();
    tampered[100] ^= 0x80;
    assert_eq!(refused(&tampered).check, Check::ChunkTable);
    assert_eq!(refused(&table[..table.len() - 1]).check, Check::ChunkTable);
    assert_eq!(refused(&[&table[..], &[0]].concat()).check, Check::ChunkTable);
    assert_eq!(refused(&[]).check, Check::ChunkTable);
}

#[test]
fn a_manifest_without_a_table_has_no_table_check() {
    let envelope = envelope(&body_v10(&image(100, 22)));
    assert_eq!(TableCheck::new(&manifest(&envelope)).err().map(|r| r.check), Some(Check::ChunkTable));
}

#[test]
fn chunks_in_any_order_verify_and_finish_waits_for_the_last() {
    let image = image(10 * 4096 + 123, 23);
    let table = table(&image, 4096);
    let envelope = envelope(&body_v11(&image, 4096));
    let manifest = manifest(&envelope);
    let verified = verified_table(&manifest, &table);
    assert_eq!(bitmap_len(11), 2);
    let mut bitmap = [0xffu8; 2];
    let mut check = ImageCheck::new(verified, &table[..], &mut bitmap).unwrap();
    let chunks: Vec<&[u8]> = image.chunks(4096).collect();
    assert_eq!(check.count(), 11);
    let mut order: Vec<u32> = (0..11).collect();
    order.shuffle(&mut StdRng::seed_from_u64(2));
    for (n, &i) in order.iter().enumerate() {
        assert_eq!(check.next_missing(), (0..11).find(|j| !order[..n].contains(j)));
        assert_eq!(check.finish().unwrap_err().check, Check::Chunk, "finished with {n} chunks");
        assert_eq!(check.check_chunk(i, chunks[i as usize]), ChunkVerdict::Accepted);
        // Again: still fine, still counted once.
        assert!(check.check_chunk(i, chunks[i as usize]).is_accepted());
        assert_eq!(check.accepted(), n as u32 + 1);
        assert!(check.is_accepted(i));
    }
    assert_eq!(check.next_missing(), None);
    let image_ok = check.finish().unwrap();
    assert_eq!((image_ok.size, image_ok.sha256), (image.len() as u64, sha256(&image)));
}

#[test]
fn a_tampered_chunk_is_rejected_and_the_others_accepted() {
    let image = image(8 * 512, 24);
    let table = table(&image, 512);
    let envelope = envelope(&body_v11(&image, 512));
    let verified = verified_table(&manifest(&envelope), &table);
    let mut bitmap = [0u8; 1];
    let mut check = ImageCheck::new(verified, &table[..], &mut bitmap).unwrap();
    let mut bad = image[3 * 512..4 * 512].to_vec();
    bad[17] ^= 1;
    let ChunkVerdict::Rejected(rejection) = check.check_chunk(3, &bad) else {
        panic!("accepted a bad chunk")
    };
    assert_eq!(rejection.check, Check::Chunk);
    assert_eq!(rejection.reason, "the chunk's SHA-256 is not its table entry");
    // Another chunk's bytes at this index: rejected too.
    assert!(!check.check_chunk(3, &image[..512]).is_accepted());
    for (i, chunk) in image.chunks(512).enumerate() {
        if i != 3 {
            assert!(check.check_chunk(i as u32, chunk).is_accepted(), "chunk {i}");
        }
    }
    assert_eq!(check.missing().collect::<Vec<_>>(), [3]);
    assert!(check.finish().is_err());
    assert!(check.check_chunk(3, &image[3 * 512..4 * 512]).is_accepted());
    // A good chunk accepted stays accepted when bad bytes are offered for it later.
    assert!(!check.check_chunk(3, &bad).is_accepted());
    assert!(check.finish().is_ok());
}

#[test]
fn wrong_indexes_and_lengths_are_rejected_and_the_last_chunk_is_short() {
    let image = image(3 * 1024 + 1, 25);
    let table = table(&image, 1024);
    let envelope = envelope(&body_v11(&image, 1024));
    let verified = verified_table(&manifest(&envelope), &table);
    assert_eq!(
        (verified.chunk_len(2), verified.chunk_len(3), verified.chunk_len(4)),
        (Some(1024), Some(1), None)
    );
    let mut bitmap = [0u8; 1];
    let mut check = ImageCheck::new(verified, &table[..], &mut bitmap).unwrap();
    let reason = |v: ChunkVerdict| match v {
        ChunkVerdict::Rejected(r) => {
            assert_eq!(r.check, Check::Chunk);
            r.reason
        }
        ChunkVerdict::Accepted => "accepted",
    };
    assert_eq!(reason(check.check_chunk(4, &image[..1])), "no chunk has this index");
    assert_eq!(reason(check.check_chunk(u32::MAX, &image[..1])), "no chunk has this index");
    // The last chunk is the 1-byte remainder, not a whole chunk.
    assert_eq!(reason(check.check_chunk(3, &image[3 * 1024..])), "accepted");
    assert_eq!(
        reason(check.check_chunk(3, &[&image[3 * 1024..], &[0]].concat())),
        "the chunk has the wrong length"
    );
    assert_eq!(reason(check.check_chunk(0, &image[..1023])), "the chunk has the wrong length");
    assert_eq!(reason(check.check_chunk(0, &image[..1025])), "the chunk has the wrong length");
    assert_eq!(check.missing().collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn a_bitmap_too_short_is_refused_and_a_longer_one_cleared() {
    let image = image(9 * 512, 26);
    let table = table(&image, 512);
    let envelope = envelope(&body_v11(&image, 512));
    let verified = verified_table(&manifest(&envelope), &table);
    assert!(ImageCheck::new(verified, &table[..], &mut [0u8; 1]).is_err());
    let mut bitmap = [0xffu8; 8];
    let check = ImageCheck::new(verified, &table[..], &mut bitmap).unwrap();
    assert_eq!(check.missing().count(), 9);
}

/// A table reader that fails: what a flash read error looks like.
struct Unreadable;

impl TableSource for Unreadable {
    fn entry(&mut self, _: u32) -> Option<[u8; 32]> {
        None
    }
}

#[test]
fn an_unreadable_table_entry_rejects_the_chunk() {
    let image = image(600, 27);
    let table = table(&image, 512);
    let envelope = envelope(&body_v11(&image, 512));
    let verified = verified_table(&manifest(&envelope), &table);
    let mut bitmap = [0u8; 1];
    let mut check = ImageCheck::new(verified, Unreadable, &mut bitmap).unwrap();
    assert!(!check.check_chunk(0, &image[..512]).is_accepted());
}

#[test]
fn an_empty_image_has_no_chunks_and_is_complete() {
    let envelope = envelope(&body_v11(&[], 4096));
    let manifest = manifest(&envelope);
    assert_eq!(manifest.chunks.map(|c| c.count), Some(0));
    let verified = verified_table(&manifest, &[]);
    let check = ImageCheck::new(verified, &[][..], &mut []).unwrap();
    assert_eq!(check.next_missing(), None);
    assert!(check.finish().is_ok());
    assert!(ImageDigest::new(&manifest).finish().is_ok());
}

#[test]
fn the_whole_image_check_takes_any_split_and_refuses_other_bytes() {
    let image = image(5000, 28);
    let envelope = envelope(&body_v10(&image));
    let manifest = manifest(&envelope);
    let mut digest = ImageDigest::new(&manifest);
    for piece in image.chunks(333) {
        digest.feed(piece).unwrap();
    }
    assert_eq!(digest.finish().unwrap().sha256, sha256(&image));
    let whole = |bytes: &[u8]| {
        let mut digest = ImageDigest::new(&manifest);
        digest.feed(bytes)?;
        digest.finish()
    };
    let mut tampered = image.clone();
    tampered[4999] ^= 2;
    assert_eq!(whole(&tampered).unwrap_err().check, Check::Image);
    assert_eq!(whole(&image[..4999]).unwrap_err().check, Check::Image);
    assert_eq!(whole(&[&image[..], &[0]].concat()).unwrap_err().check, Check::Image);
}

#[test]
fn a_check_resumed_from_its_bitmap_goes_on_where_it_stopped() {
    let image = image(11 * 512 + 7, 29);
    let table = table(&image, 512);
    let envelope = envelope(&body_v11(&image, 512));
    let verified = verified_table(&manifest(&envelope), &table);
    let chunks: Vec<&[u8]> = image.chunks(512).collect();
    let mut bitmap = [0u8; 2];
    let mut check = ImageCheck::new(verified, &table[..], &mut bitmap).unwrap();
    for i in [0, 3, 4, 11] {
        assert!(check.check_chunk(i, chunks[i as usize]).is_accepted());
    }
    // Restarted: the bitmap came back from flash, with a stray bit past the last chunk.
    bitmap[1] |= 0x80;
    let mut check = ImageCheck::resume(verified, &table[..], &mut bitmap).unwrap();
    assert_eq!(check.accepted(), 4);
    assert_eq!(check.missing().collect::<Vec<_>>(), [1, 2, 5, 6, 7, 8, 9, 10]);
    for i in check.missing().collect::<Vec<_>>() {
        assert!(check.check_chunk(i, chunks[i as usize]).is_accepted());
    }
    assert!(check.finish().is_ok());
    assert_eq!(bitmap, [0xff, 0x0f]);
}
