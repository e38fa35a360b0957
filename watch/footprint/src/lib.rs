//! The code-size probe: `nw_update` runs everything a watch runs (manifest, table, chunks in any
//! order, chunks in order, whole image) so that the linker keeps all of the verifier and only
//! it. Build with `cargo build --release` here and read the sizes off the static library
//! (watch/README.md, "Code size").
#![no_std]
// No `unsafe` block; `#[unsafe(no_mangle)]` is why `unsafe_code` is not forbidden here.

use nowatch_ota_watch::{
    ChunkVerdict, DeviceFacts, ImageCheck, ImageDigest, SequentialChunks, TableCheck, TableSource,
    TrustedKey, Version, verify_manifest,
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Reads table entry `index` from flash.
pub type ReadEntry = extern "C" fn(index: u32, entry: &mut [u8; 32]) -> bool;
/// Reads chunk `index` (from the phone, or flash) and returns its length.
pub type ReadChunk = extern "C" fn(index: u32, chunk: &mut [u8; 4096]) -> u32;

struct Flash(ReadEntry);

impl TableSource for Flash {
    fn entry(&mut self, index: u32) -> Option<[u8; 32]> {
        let mut entry = [0; 32];
        (self.0)(index, &mut entry).then_some(entry)
    }
}

/// 0 if the update verifies, else 1 + the index of the check that refused, in
/// [`nowatch_ota_watch::Check::ALL`].
#[unsafe(no_mangle)]
pub extern "C" fn nw_update(
    envelope: &[u8; 2048],
    len: usize,
    key: &[u8; 32],
    now: u64,
    read_entry: ReadEntry,
    read_chunk: ReadChunk,
    bitmap: &mut [u8; 32],
) -> u8 {
    let code = |r: nowatch_ota_watch::Rejection| {
        let index = nowatch_ota_watch::Check::ALL.iter().position(|c| *c == r.check).unwrap_or(0);
        u8::try_from(index).unwrap_or(0).saturating_add(1)
    };
    let Ok(current_version) = Version::parse("1.0.0") else { return 255 };
    let device = DeviceFacts { hardware: "nw-watch-a1", current_version, channel: None, floor: None };
    let keys = [TrustedKey::new(*key)];
    let manifest = match verify_manifest(envelope.get(..len).unwrap_or_default(), &keys, &device, now) {
        Ok(manifest) => manifest,
        Err(r) => return code(r),
    };
    let mut digest = ImageDigest::new(&manifest);
    let Ok(mut table) = TableCheck::new(&manifest) else { return 254 };
    let count = manifest.chunks.map_or(0, |c| c.count);
    for index in 0..count {
        let mut entry = [0; 32];
        if !read_entry(index, &mut entry) {
            return 253;
        }
        table.feed(&entry);
    }
    let table = match table.finish() {
        Ok(table) => table,
        Err(r) => return code(r),
    };
    let mut chunk = [0u8; 4096];
    let mut any_order = match ImageCheck::new(table, Flash(read_entry), bitmap) {
        Ok(check) => check,
        Err(r) => return code(r),
    };
    let mut in_order = SequentialChunks::new(table, Flash(read_entry));
    while let Some(index) = any_order.next_missing() {
        let n = usize::try_from(read_chunk(index, &mut chunk)).unwrap_or(0);
        let bytes = chunk.get(..n).unwrap_or_default();
        if let ChunkVerdict::Rejected(r) = any_order.check_chunk(index, bytes) {
            return code(r);
        }
        if let Err(r) = in_order.feed(bytes).and_then(|()| digest.feed(bytes)) {
            return code(r);
        }
    }
    match any_order.finish().and(in_order.finish()).and(digest.finish()) {
        Ok(_) => 0,
        Err(r) => code(r),
    }
}
