//! Offline release signatures: an ed25519 signature over the image's 32-byte SHA-256 digest,
//! made by a release key that never touches this service (`nowatch-ota sign`). The trusted
//! public keys are the `*.pem` files of `signing.release_keys_dir`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::domain::Sha256Digest;

/// The trusted release public keys.
#[derive(Debug, Default, Clone)]
pub struct ReleaseKeys {
    keys: Vec<VerifyingKey>,
}

impl ReleaseKeys {
    /// Reads every `*.pem` of `dir`; a missing directory means no keys.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => anyhow::bail!("`signing.release_keys_dir`: cannot read {}: {e}", dir.display()),
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pem") {
                let pem = std::fs::read_to_string(&path)?;
                let key = VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
                    anyhow::anyhow!(
                        "`signing.release_keys_dir`: {} is not an ed25519 public key: {e}",
                        path.display()
                    )
                })?;
                keys.push(key);
            }
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `signature_b64` is a valid signature over `digest` by a trusted release key.
    pub fn verify(&self, digest: &Sha256Digest, signature_b64: &str) -> bool {
        let Ok(bytes) = BASE64.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.keys.iter().any(|k| k.verify_strict(digest.as_bytes(), &sig).is_ok())
    }
}
