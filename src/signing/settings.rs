//! The online manifest-signing key from the settings: the configured PEM file or the committed
//! DEV ONLY key, which production refuses; and fresh keys for `nowatch-ota keygen`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::ManifestSigner;
use crate::config::SigningSettings;

/// DEV ONLY: the committed key used when `signing.key_file` is empty. Its private half is public.
pub const DEV_SIGNING_KEY_PEM: &str = include_str!("../../keys/dev-signing.pem");

/// Loads the configured key (or the dev key), refusing the dev key in production.
pub fn load_signer(settings: &SigningSettings, production: bool) -> anyhow::Result<ManifestSigner> {
    let pem = if settings.key_file.is_empty() {
        DEV_SIGNING_KEY_PEM.to_owned()
    } else {
        std::fs::read_to_string(&settings.key_file)
            .map_err(|e| anyhow::anyhow!("`signing.key_file`: cannot read {}: {e}", settings.key_file))?
    };
    let key = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("`signing.key_file`: not a PKCS#8 PEM ed25519 private key: {e}"))?;
    if production && key == SigningKey::from_pkcs8_pem(DEV_SIGNING_KEY_PEM)? {
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
    Ok(ManifestSigner::new(key, retired))
}

/// A fresh ed25519 key as PKCS#8 v1 PEM (RFC 8410, the private key alone), for `nowatch-ota
/// keygen`: what `openssl genpkey -algorithm ed25519` writes, and what OpenSSL and Python's
/// `cryptography` read. (ed25519-dalek's own encoding is v2, with the public key, which both
/// refuse.) Keys are read in either form.
pub fn generate_pem() -> anyhow::Result<String> {
    let secret = rand::random::<[u8; 32]>();
    let v1 = ed25519_dalek::pkcs8::KeypairBytes { secret_key: secret, public_key: None };
    Ok(v1.to_pkcs8_pem(LineEnding::LF)?.to_string())
}

/// Writes a new private key file: created exclusively (never over a file or through a link
/// planted at `path`) and readable by its owner alone, from the moment it exists.
pub fn write_new_key(path: &std::path::Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists; refusing to overwrite a key", path.display())
        }
        _ => anyhow::anyhow!("cannot create {}: {e}", path.display()),
    })?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
