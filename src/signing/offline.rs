//! What the `sign` and `verify` commands do, as functions: a release engineer's signature over
//! an image, and a device's full check of a manifest and an image.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{
    Check, DEVICE_CHECKS, Device, ManifestBody, ManifestEnvelope, check_body, check_expiry, check_type,
    key_id, verify_signature,
};
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

/// Runs [`DEVICE_CHECKS`] in their order, as a device would, on a manifest file and an image
/// file; the first that fails is the error, naming the check.
pub async fn verify_files(
    manifest_path: &Path,
    image: &Path,
    keys: &[VerifyingKey],
    device: &Device,
) -> anyhow::Result<ManifestBody> {
    let envelope: ManifestEnvelope = serde_json::from_slice(&std::fs::read(manifest_path)?)
        .map_err(|e| anyhow::anyhow!("{}: not a manifest envelope: {e}", manifest_path.display()))?;
    let trusted: Vec<_> = keys.iter().map(|k| (key_id(k), *k)).collect();
    let mut verified = None;
    for check in DEVICE_CHECKS {
        let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", check.name());
        // The signature comes first: nothing in `signed` is read before it verifies.
        let body = match (&verified, check) {
            (None, Check::Signature) => {
                verified = Some(verify_signature(&envelope, &trusted).map_err(|e| failed(&e))?);
                continue;
            }
            (Some(body), _) => body,
            (None, _) => unreachable!("DEVICE_CHECKS starts with the signature"),
        };
        match check {
            Check::Type => check_type(body).map_err(|e| failed(&e))?,
            Check::Expiry => check_expiry(&envelope, body, chrono::Utc::now()).map_err(|e| failed(&e))?,
            Check::Image => {
                let (size, digest) = hash_file(image).await?;
                anyhow::ensure!(size == body.size, "image: {size} bytes, the manifest says {}", body.size);
                anyhow::ensure!(
                    digest.to_hex() == body.sha256,
                    "image: SHA-256 {digest} differs from the manifest's {}",
                    body.sha256
                );
            }
            other => check_body(other, body, device).map_err(|e| failed(&e))?,
        }
    }
    verified.ok_or_else(|| anyhow::anyhow!("signature: not checked"))
}
