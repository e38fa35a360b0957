//! The update verifier a watch runs (issue 22): a manifest exactly as the server serves it, its
//! chunk table and the image's chunks in any order, or the image as one stream, checked in the
//! relay spec's order and naming the check that refused. `no_std`, no allocation, fixed stack,
//! no panic on any input: indexing, arithmetic that can overflow, `unwrap`, `expect` and `panic!`
//! are denied by lint, and `unsafe` is forbidden.
//!
//! ```text
//! verify_manifest(bytes, keys, device, now) -> Manifest     signature .. floor
//! TableCheck::new(&manifest) / feed / finish -> VerifiedTable  chunk_table
//! ImageCheck::new(table, entries, bitmap) / check_chunk(i, bytes) / finish   chunk, any order
//! SequentialChunks::new(table, entries) / feed / finish   chunk, in order (delta output)
//! ImageDigest::new(&manifest) / feed / finish   image, whole (spec 1.0 manifests)
//! ```
//!
//! A firmware's update task, in short (`no_run`: the transport and flash are the firmware's):
//!
//! ```no_run
//! use nowatch_ota_watch::*;
//!
//! # fn phone_manifest() -> &'static [u8] { b"" }
//! # fn phone_table_piece() -> Option<&'static [u8]> { None }
//! # fn phone_chunk(_: u32) -> &'static [u8] { b"" }
//! # fn flash_write(_: u64, _: &[u8]) {}
//! # fn flash_table() -> &'static [u8] { b"" }
//! # const PUBLIC_KEY: [u8; 32] = [0; 32];
//! fn update(now_unix: u64) -> Result<VerifiedImage, Rejection> {
//!     let keys = [TrustedKey::new(PUBLIC_KEY)];
//!     let device = DeviceFacts {
//!         hardware: "nw-watch-a1",
//!         current_version: Version::parse("2.0.0").map_err(|_| Rejection::new(Check::Newer, "bad own version"))?,
//!         channel: Some(ChannelFacts { channel: "beta", order: &["stable", "beta", "alpha"] }),
//!         floor: None,
//!     };
//!     let manifest = verify_manifest(phone_manifest(), &keys, &device, now_unix)?;
//!
//!     // The chunk table, streamed to flash as it arrives and hashed on the way.
//!     let mut table = TableCheck::new(&manifest)?;
//!     while let Some(piece) = phone_table_piece() {
//!         table.feed(piece);
//!     }
//!     let table = table.finish()?;
//!
//!     // Chunks in any order: ask for what is missing until nothing is. The bitmap is sized
//!     // for the largest image the slot holds (1 MiB in 4 KiB chunks: 256 bits).
//!     let mut bitmap = [0u8; bitmap_len(256)];
//!     let mut chunks = ImageCheck::new(table, flash_table(), &mut bitmap)?;
//!     while let Some(index) = chunks.next_missing() {
//!         let bytes = phone_chunk(index);
//!         if chunks.check_chunk(index, bytes).is_accepted() {
//!             flash_write(u64::from(index) * u64::from(table.spec().chunk_size), bytes);
//!         }
//!     }
//!     chunks.finish()
//! }
//! ```
//!
//! JSON is read by a small reader of its own ([`json`]) rather than `serde-json-core`: the
//! signature covers the bytes of `signed` as they stand in the envelope, which a serde
//! deserializer does not hand back; the reader returns borrowed spans with no escape buffer,
//! skips unknown members with a 64-level bit stack instead of recursion, and is built under this
//! crate's lints, which serde's generated code and `serde-json-core` are not, so "no panic" can
//! be read off the source instead of trusted.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    missing_docs
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::arithmetic_side_effects))]

mod check;
mod chunks;
mod encoding;
mod image;
pub(crate) mod json;
mod manifest;
mod time;
mod version;

pub use check::{Check, Rejection};
pub use chunks::{
    ChunkVerdict, ImageCheck, Missing, TableCheck, TableSource, VerifiedImage, VerifiedTable, bitmap_len,
};
pub use image::{ImageDigest, SequentialChunks};
pub use manifest::{
    ChannelFacts, ChunkSpec, DeviceFacts, MANIFEST_TYPE, Manifest, TrustedKey, verify_manifest,
};
pub use time::parse_utc;
pub use version::{Version, VersionError};
