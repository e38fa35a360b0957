//! The delta applier (`nowatch_ota_core::delta`) on arbitrary patches. Input: one byte `n`, one
//! byte `split`, then an old image of `n` bytes (fewer if the input ends), then the patch.
//! Properties: no panic; the output never grows past the patch's `to_size`; a successful finish
//! means exactly `to_size` bytes were produced; feeding the patch in two pieces (cut at `split`
//! scaled to its length) or one byte at a time gives the same result as feeding it whole, and the
//! same as `apply_patch` wherever the 256-byte window suffices.
#![no_main]

use std::convert::Infallible;

use libfuzzer_sys::fuzz_target;
use nowatch_ota_core::delta::{Applier, ApplyError, PatchError, apply_patch};

/// Applies `patch` fed in the given pieces, checking the output against `to_size` as it grows.
fn apply<'a>(from: &[u8], pieces: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, ApplyError> {
    let mut applier = Applier::<256>::new();
    let mut to = Vec::new();
    for piece in pieces {
        applier.push(piece, &mut &from[..], &mut |bytes: &[u8]| {
            to.extend_from_slice(bytes);
            Ok::<_, Infallible>(())
        })?;
        let to_size = applier.to_size().unwrap_or(0);
        assert!(to.len() as u64 <= to_size, "{} bytes out for a to_size of {to_size}", to.len());
    }
    let to_size = applier.finish()?;
    assert_eq!(to.len() as u64, to_size);
    Ok(to)
}

fuzz_target!(|data: &[u8]| {
    let [n, split, rest @ ..] = data else { return };
    let (from, patch) = rest.split_at(usize::from(*n).min(rest.len()));
    let cut = patch.len() * usize::from(*split) / 255;

    let whole = apply(from, [patch]);
    assert_eq!(apply(from, [&patch[..cut], &patch[cut..]]), whole, "cut at {cut}");
    if patch.len() <= 4096 {
        assert_eq!(apply(from, patch.chunks(1)), whole, "byte by byte");
    }
    match (&whole, apply_patch(from, patch)) {
        // The larger window of apply_patch takes what this one refuses.
        (Err(ApplyError::Patch(PatchError::WindowTooLarge { .. })), _) => {}
        (whole, full) => assert_eq!(whole, &full),
    }
});
