//! Manifests, tables and images as the server makes them, and a device to check them for.

use ed25519_dalek::SigningKey;
use nowatch_ota_core::signing::{ManifestSigner, canonical_json};
use nowatch_ota_watch::{ChannelFacts, DeviceFacts, TrustedKey, Version};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// 2026-06-01T00:00:00Z.
pub const NOW: u64 = 1_780_272_000;
pub const CHANNELS: &[&str] = &["stable", "beta", "alpha"];

pub fn signer(seed: u8) -> ManifestSigner {
    ManifestSigner::new(SigningKey::from_bytes(&[seed; 32]), Vec::new())
}

pub fn trusted(seed: u8) -> TrustedKey {
    TrustedKey::new(SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A deterministic image of `size` bytes.
pub fn image(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The chunk table of `image`: SHA-256 of each chunk, concatenated.
pub fn table(image: &[u8], chunk_size: usize) -> Vec<u8> {
    image.chunks(chunk_size).flat_map(sha256).collect()
}

/// A spec 1.0 body for `image` that passes every check for [`device`] at [`NOW`].
pub fn body_v10(image: &[u8]) -> Value {
    json!({
        "type": "nowatch-firmware-manifest",
        "spec_version": "1.0",
        "firmware_id": "0b6f3f7e-8a52-4c3e-9d0e-3f1f6c2a9b11",
        "version": "2.1.0",
        "hardware": ["nw-watch-a1"],
        "channel": "beta",
        "size": image.len(),
        "sha256": hex(&sha256(image)),
        "min_version": "1.0.0",
        "min_from_version": "2.0.0",
        "mandatory": false,
        "issued_at": "2026-05-01T00:00:00Z",
        "expires_at": "2026-07-01T00:00:00Z",
    })
}

/// A spec 1.1 body: [`body_v10`] with the chunk table of `image` at `chunk_size`.
pub fn body_v11(image: &[u8], chunk_size: usize) -> Value {
    let mut body = body_v10(image);
    body["spec_version"] = json!("1.1");
    body["chunk_size"] = json!(chunk_size);
    body["chunk_table_sha256"] = json!(hex(&sha256(&table(image, chunk_size))));
    body
}

/// The signed bytes `<S>` of `body`.
pub fn signed(body: &Value) -> String {
    String::from_utf8(canonical_json(body).unwrap()).unwrap()
}

/// `{"signed":<S>,"signatures":[...]}`, one signature per signer over `<S>`, exactly as served.
pub fn envelope_of(s: &str, signers: &[&ManifestSigner]) -> String {
    let sigs: Vec<String> = signers
        .iter()
        .map(|k| format!(r#"{{"key_id":"{}","sig":"{}"}}"#, k.key_id(), k.sign(s.as_bytes())))
        .collect();
    format!(r#"{{"signed":{s},"signatures":[{}]}}"#, sigs.join(","))
}

/// `body` signed by the key of seed 1, which [`keys`] trusts.
pub fn envelope(body: &Value) -> String {
    envelope_of(&signed(body), &[&signer(1)])
}

pub fn keys() -> [TrustedKey; 1] {
    [trusted(1)]
}

/// A watch on 2.0.0, hardware nw-watch-a1, channel beta, stored floor 1.5.0.
pub fn device() -> DeviceFacts<'static> {
    DeviceFacts {
        hardware: "nw-watch-a1",
        current_version: Version::parse("2.0.0").unwrap(),
        channel: Some(ChannelFacts { channel: "beta", order: CHANNELS }),
        floor: Some(Version::parse("1.5.0").unwrap()),
    }
}
