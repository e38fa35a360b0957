//! Manifest signing keys: the online key that signs, retired keys still trusted for
//! verification, and key ids (lowercase hex SHA-256 of the 32-byte public key). Loading the key
//! from the service's settings is the service's business (`nowatch_ota::signing::load_signer`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Key id: lowercase hex SHA-256 of the raw public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A public key as `GET /v1/firmware/keys` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub key_id: String,
    /// Base64 of the 32 raw bytes.
    pub public_key: String,
    #[schema(value_type = String)]
    pub algorithm: &'static str,
    /// `active` signs new manifests; `retired` only verifies old ones.
    #[schema(value_type = String)]
    pub status: &'static str,
}

/// `GET /v1/firmware/keys`: every key that verifies manifests.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// The online manifest-signing key plus the retired public keys still trusted.
pub struct ManifestSigner {
    key: SigningKey,
    key_id: String,
    retired: Vec<VerifyingKey>,
}

impl ManifestSigner {
    pub fn new(key: SigningKey, retired: Vec<VerifyingKey>) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id, retired }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `message`, returning the base64 signature.
    pub fn sign(&self, message: &[u8]) -> String {
        BASE64.encode(self.key.sign(message).to_bytes())
    }

    /// Every key a device should trust: the active one first, then the retired ones.
    pub fn trusted_keys(&self) -> Vec<(String, VerifyingKey)> {
        std::iter::once(self.key.verifying_key())
            .chain(self.retired.iter().copied())
            .map(|k| (key_id(&k), k))
            .collect()
    }

    pub fn key_infos(&self) -> Vec<KeyInfo> {
        self.trusted_keys()
            .into_iter()
            .enumerate()
            .map(|(i, (key_id, key))| KeyInfo {
                key_id,
                public_key: BASE64.encode(key.as_bytes()),
                algorithm: "ed25519",
                status: if i == 0 { "active" } else { "retired" },
            })
            .collect()
    }
}
