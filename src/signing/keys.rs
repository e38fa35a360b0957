//! Manifest signing keys: the online key that signs, retired keys still trusted for
//! verification, and key ids (lowercase hex SHA-256 of the 32-byte public key).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::SigningSettings;

/// DEV ONLY: the committed key used when `signing.key_file` is empty. Its private half is public.
pub const DEV_SIGNING_KEY_PEM: &str = include_str!("../../keys/dev-signing.pem");

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

/// The online manifest-signing key plus the retired public keys still trusted.
pub struct ManifestSigner {
    key: SigningKey,
    key_id: String,
    retired: Vec<VerifyingKey>,
}

impl ManifestSigner {
    /// Loads the configured key (or the dev key), refusing the dev key in production.
    pub fn from_settings(settings: &SigningSettings, production: bool) -> anyhow::Result<Self> {
        let pem = if settings.key_file.is_empty() {
            DEV_SIGNING_KEY_PEM.to_owned()
        } else {
            std::fs::read_to_string(&settings.key_file)
                .map_err(|e| anyhow::anyhow!("`signing.key_file`: cannot read {}: {e}", settings.key_file))?
        };
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| anyhow::anyhow!("`signing.key_file`: not a PKCS#8 PEM ed25519 private key: {e}"))?;
        if production && key == Self::dev_key()? {
            anyhow::bail!("`signing.key_file`: NOWATCH_OTA_ENV=production refuses the DEV ONLY signing key");
        }
        let retired = settings
            .retired_public_keys
            .iter()
            .map(|b64| {
                let bytes: [u8; 32] =
                    BASE64.decode(b64.trim()).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                        anyhow::anyhow!("`signing.retired_public_keys`: {b64:?} is not base64 of 32 bytes")
                    })?;
                VerifyingKey::from_bytes(&bytes).map_err(|e| {
                    anyhow::anyhow!("`signing.retired_public_keys`: {b64:?} is not an ed25519 key: {e}")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self::new(key, retired))
    }

    pub fn new(key: SigningKey, retired: Vec<VerifyingKey>) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id, retired }
    }

    fn dev_key() -> anyhow::Result<SigningKey> {
        Ok(SigningKey::from_pkcs8_pem(DEV_SIGNING_KEY_PEM)?)
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

/// A fresh ed25519 key as PKCS#8 PEM, for `nowatch-ota keygen`.
pub fn generate_pem() -> anyhow::Result<String> {
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    Ok(key.to_pkcs8_pem(LineEnding::LF)?.to_string())
}
