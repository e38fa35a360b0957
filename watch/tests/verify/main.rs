//! The verifier on manifests, tables and images built the way the server builds them: the body
//! as JSON, `nowatch_ota_core::signing::canonical_json` for the signed bytes, an ed25519
//! signature over them, the envelope assembled byte for byte as the relay spec serves it.
#![allow(clippy::unwrap_used)]

mod chunks;
mod delta;
mod helpers;
mod manifest;
mod random;
