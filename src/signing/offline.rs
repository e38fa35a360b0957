//! What the `sign` and `verify` commands do, as functions: a release engineer's signature over
//! an image, and the keys a device check trusts (the check itself: `device_verify`).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::domain::Sha256Digest;

/// SHA-256 and size of a file, read in chunks.
pub async fn hash_file(path: &Path) -> anyhow::Result<(u64, Sha256Digest)> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, Sha256Digest::from_bytes(hasher.finalize().into())))
}

/// The release signature an upload carries: base64 ed25519 over the image's 32-byte digest.
pub async fn sign_image(key_pem_path: &Path, image: &Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(key_pem_path)?;
    let key = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: not a PKCS#8 ed25519 key: {e}", key_pem_path.display()))?;
    let (_, digest) = hash_file(image).await?;
    Ok(BASE64.encode(key.sign(digest.as_bytes()).to_bytes()))
}

/// Reads a public key given as base64 of 32 raw bytes or as a path to a PEM file.
pub fn parse_public_key(arg: &str) -> anyhow::Result<VerifyingKey> {
    if let Ok(pem) = std::fs::read_to_string(arg) {
        return VerifyingKey::from_public_key_pem(&pem)
            .or_else(|_| SigningKey::from_pkcs8_pem(&pem).map(|k| k.verifying_key()))
            .map_err(|e| anyhow::anyhow!("{arg}: not an ed25519 PEM key: {e}"));
    }
    let bytes: [u8; 32] = BASE64
        .decode(arg.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("{arg}: neither a PEM file nor base64 of 32 bytes"))?;
    Ok(VerifyingKey::from_bytes(&bytes)?)
}
