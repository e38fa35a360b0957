//! What the `sign` and `verify` commands do, as functions: a release engineer's signature over
//! an image, and a device's full check of a manifest and an image.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{ManifestBody, ManifestEnvelope, key_id, verify_manifest};
use crate::domain::{HardwareId, Sha256Digest, Version};

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

/// What a device would be: its hardware and current version, if the check should include them.
pub struct DeviceView {
    pub hardware: Option<HardwareId>,
    pub current_version: Option<Version>,
}

/// A device's checks, in order: signature by a trusted key, expiry, hardware, version above the
/// current one and not below the floor, then the image's size and SHA-256.
pub async fn verify_files(
    manifest_path: &Path,
    image: &Path,
    keys: &[VerifyingKey],
    device: &DeviceView,
) -> anyhow::Result<ManifestBody> {
    let envelope: ManifestEnvelope = serde_json::from_slice(&std::fs::read(manifest_path)?)
        .map_err(|e| anyhow::anyhow!("{}: not a manifest envelope: {e}", manifest_path.display()))?;
    let trusted: Vec<_> = keys.iter().map(|k| (key_id(k), *k)).collect();
    let body = verify_manifest(&envelope, &trusted, chrono::Utc::now())?;
    if let Some(hardware) = &device.hardware {
        anyhow::ensure!(
            body.hardware.iter().any(|h| h == hardware.as_str()),
            "the manifest is not for hardware {hardware}"
        );
    }
    let version = Version::parse(&body.version).map_err(|e| anyhow::anyhow!("manifest version: {e}"))?;
    if let Some(current) = &device.current_version {
        anyhow::ensure!(version > *current, "version {version} is not above the current {current}");
    }
    if let Some(floor) = &body.min_version {
        let floor = Version::parse(floor).map_err(|e| anyhow::anyhow!("manifest min_version: {e}"))?;
        anyhow::ensure!(version >= floor, "version {version} is below the anti-rollback floor {floor}");
    }
    let (size, digest) = hash_file(image).await?;
    anyhow::ensure!(size == body.size, "image is {size} bytes, the manifest says {}", body.size);
    anyhow::ensure!(
        digest.to_hex() == body.sha256,
        "image SHA-256 {digest} differs from the manifest's {}",
        body.sha256
    );
    Ok(body)
}
