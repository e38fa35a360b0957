//! The root of trust, in the manner of TUF's root role: a document, signed offline by a threshold
//! of root keys, that says which online keys may sign manifests, which are retired (still verify
//! manifests they signed) and which are revoked, until when it holds, and which root keys and
//! threshold must sign the next version. A device pins one version and walks to the newest one
//! version by version ([`TrustedRoot::update`]); every step must be signed by the threshold of
//! the root keys it already trusts and by the threshold of the new version's own keys.
//!
//! Wire format, the envelope manifests use:
//!
//! ```json
//! {"signed": {"type": "nowatch-root", "spec_version": "1.0", "version": 2,
//!             "expires_at": "2027-12-01T00:00:00Z",
//!             "root_keys": [{"key_id": "<hex sha256>", "public_key": "<base64, 32 bytes>"}],
//!             "threshold": 2,
//!             "manifest_keys": [...], "retired_manifest_keys": [...],
//!             "revoked_key_ids": ["<hex sha256>"]},
//!  "signatures": [{"key_id": "<hex sha256>", "sig": "<base64 ed25519 over canonical signed>"}]}
//! ```
//!
//! Everything here is pure: bytes and the time in, a verdict out. No I/O and no clock, so the
//! watch-side verifier can take the same rules.

mod trust;

#[cfg(test)]
mod tests;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use trust::{TrustedRoot, verify_chain};

use super::{ManifestSignature, canonical_json, key_id};

pub const ROOT_TYPE: &str = "nowatch-root";
pub const ROOT_SPEC_VERSION: &str = "1.0";
/// The largest root document a verifier reads (TUF's limit is 512 KiB; ours lists a few keys).
pub const MAX_ROOT_BYTES: usize = 64 * 1024;
/// The most versions one walk takes, so a server cannot keep a device walking for ever.
pub const MAX_ROOT_STEPS: u64 = 1024;

/// A public key as a root document lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RootKey {
    /// Lowercase hex SHA-256 of the 32 raw bytes.
    pub key_id: String,
    /// Base64 of the 32 raw bytes.
    pub public_key: String,
}

impl RootKey {
    pub fn new(key: &VerifyingKey) -> Self {
        Self { key_id: key_id(key), public_key: BASE64.encode(key.as_bytes()) }
    }
}

/// What a root document asserts. Unknown fields are refused: a verifier that skipped one could
/// miss a restriction it was meant to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub spec_version: String,
    /// 1 for the first root, then one more for each.
    pub version: u64,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// The offline keys that sign this version and the next.
    pub root_keys: Vec<RootKey>,
    /// How many distinct root keys must sign.
    pub threshold: u32,
    /// Online keys that sign manifests now.
    pub manifest_keys: Vec<RootKey>,
    /// Online keys that no longer sign, whose manifests still verify until they expire.
    pub retired_manifest_keys: Vec<RootKey>,
    /// Keys trusted for nothing, ever again; every later version keeps them here.
    pub revoked_key_ids: Vec<String>,
}

/// A root document as served and stored: the signed body as JSON and its signatures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RootEnvelope {
    #[schema(value_type = Object)]
    pub signed: Value,
    pub signatures: Vec<ManifestSignature>,
}

impl RootEnvelope {
    /// A document with no signatures yet (`nowatch-ota root new`).
    pub fn unsigned(body: &RootBody) -> Result<Self, RootError> {
        let signed = serde_json::to_value(body).map_err(|e| RootError::Malformed(e.to_string()))?;
        Ok(Self { signed, signatures: Vec::new() })
    }

    /// Adds `key`'s signature, replacing an earlier one by the same key.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), RootError> {
        let message = canonical_json(&self.signed).map_err(|e| RootError::Malformed(e.to_string()))?;
        let id = key_id(&key.verifying_key());
        self.signatures.retain(|s| s.key_id != id);
        self.signatures
            .push(ManifestSignature { key_id: id, sig: BASE64.encode(key.sign(&message).to_bytes()) });
        Ok(())
    }

    pub fn body(&self) -> Result<RootBody, RootError> {
        serde_json::from_value(self.signed.clone()).map_err(|e| RootError::Malformed(e.to_string()))
    }
}

/// Why a root, or a manifest judged by one, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("the root document is malformed: {0}")]
    Malformed(String),
    #[error(
        "root version {version} has {valid} valid signature(s) by root keys of version {signer}; \
         it needs {threshold} (the threshold)"
    )]
    BelowThreshold { version: u64, signer: u64, valid: usize, threshold: usize },
    #[error("root version {offered} is not newer than the trusted version {trusted}: a rollback")]
    Rollback { trusted: u64, offered: u64 },
    #[error("root version {offered} skips version {expected}: roots are walked one version at a time")]
    Gap { expected: u64, offered: u64 },
    #[error("root version {version} expired at {expires_at}")]
    Expired { version: u64, expires_at: String },
    #[error("root version {version} trusts key {key_id} again, which version {version_before} revoked")]
    Unrevoked { version: u64, version_before: u64, key_id: String },
    #[error("the manifest is signed by key {key_id}, which root version {version} revokes")]
    Revoked { version: u64, key_id: String },
    #[error("the manifest's key {key_ids} is not a manifest key of root version {version}")]
    NotListed { version: u64, key_ids: String },
    #[error("more than {MAX_ROOT_STEPS} root versions to walk")]
    TooManySteps,
}

/// A root document whose structure has been checked (types, key ids, threshold, no key both
/// trusted and revoked) but whose signatures have not: trust comes from [`TrustedRoot`].
#[derive(Debug, Clone)]
pub struct Root {
    version: u64,
    expires_at: DateTime<Utc>,
    threshold: usize,
    root_keys: Vec<(String, VerifyingKey)>,
    manifest_keys: Vec<(String, VerifyingKey)>,
    retired_manifest_keys: Vec<(String, VerifyingKey)>,
    revoked: Vec<String>,
    /// The canonical JSON of `signed`: what the signatures cover.
    message: Vec<u8>,
    signatures: Vec<ManifestSignature>,
}

impl Root {
    /// Reads a root document from its JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, RootError> {
        if bytes.len() > MAX_ROOT_BYTES {
            return Err(RootError::Malformed(format!("larger than {MAX_ROOT_BYTES} bytes")));
        }
        let envelope: RootEnvelope =
            serde_json::from_slice(bytes).map_err(|e| RootError::Malformed(e.to_string()))?;
        Self::from_envelope(&envelope)
    }

    pub fn from_envelope(envelope: &RootEnvelope) -> Result<Self, RootError> {
        let malformed = |why: String| RootError::Malformed(why);
        let body = envelope.body()?;
        if body.kind != ROOT_TYPE {
            return Err(malformed(format!("type is {:?}, not {ROOT_TYPE:?}", body.kind)));
        }
        if body.spec_version != ROOT_SPEC_VERSION {
            return Err(malformed(format!(
                "spec_version {:?} is not {ROOT_SPEC_VERSION:?}",
                body.spec_version
            )));
        }
        if body.version == 0 {
            return Err(malformed("version starts at 1".into()));
        }
        let expires_at = DateTime::parse_from_rfc3339(&body.expires_at)
            .map_err(|e| malformed(format!("expires_at {:?}: {e}", body.expires_at)))?
            .with_timezone(&Utc);
        let root_keys = keys("root_keys", &body.root_keys)?;
        let manifest_keys = keys("manifest_keys", &body.manifest_keys)?;
        let retired_manifest_keys = keys("retired_manifest_keys", &body.retired_manifest_keys)?;
        if root_keys.is_empty() {
            return Err(malformed("root_keys is empty".into()));
        }
        if manifest_keys.is_empty() {
            return Err(malformed("manifest_keys is empty".into()));
        }
        let threshold = body.threshold as usize;
        if threshold == 0 || threshold > root_keys.len() {
            return Err(malformed(format!(
                "threshold {threshold} must be from 1 to the number of root keys ({})",
                root_keys.len()
            )));
        }
        let listed = || root_keys.iter().chain(&manifest_keys).chain(&retired_manifest_keys);
        for (i, (id, _)) in listed().enumerate() {
            if listed().take(i).any(|(other, _)| other == id) {
                // An online key that is also a root key would put the root in reach of whoever
                // takes the service.
                return Err(malformed(format!("key {id} is listed twice")));
            }
        }
        for (i, id) in body.revoked_key_ids.iter().enumerate() {
            if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(malformed(format!("revoked key id {id:?} is not 64 lowercase hex digits")));
            }
            if body.revoked_key_ids[..i].contains(id) {
                return Err(malformed(format!("revoked key id {id} is listed twice")));
            }
            if listed().any(|(listed, _)| listed == id) {
                return Err(malformed(format!("key {id} is both trusted and revoked")));
            }
        }
        let message = canonical_json(&envelope.signed).map_err(|e| malformed(e.to_string()))?;
        Ok(Self {
            version: body.version,
            expires_at,
            threshold,
            root_keys,
            manifest_keys,
            retired_manifest_keys,
            revoked: body.revoked_key_ids,
            message,
            signatures: envelope.signatures.clone(),
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The root keys' ids, in the document's order.
    pub fn root_key_ids(&self) -> impl Iterator<Item = &str> {
        self.root_keys.iter().map(|(id, _)| id.as_str())
    }

    /// How many distinct keys of `keys` made a valid signature over this document. A key that
    /// signed twice counts once.
    fn valid_signatures_by(&self, keys: &[(String, VerifyingKey)]) -> usize {
        let mut counted: Vec<&str> = Vec::new();
        for signature in &self.signatures {
            if counted.contains(&signature.key_id.as_str()) {
                continue;
            }
            let Some((id, key)) = keys.iter().find(|(id, _)| *id == signature.key_id) else { continue };
            let Some(sig) = BASE64.decode(&signature.sig).ok().and_then(|b| Signature::from_slice(&b).ok())
            else {
                continue;
            };
            if key.verify_strict(&self.message, &sig).is_ok() {
                counted.push(id);
            }
        }
        counted.len()
    }

    /// Signatures by this version's own root keys, against its own threshold.
    pub fn signed_by_own_keys(&self) -> (usize, usize) {
        (self.valid_signatures_by(&self.root_keys), self.threshold)
    }
}

/// Decodes a key list, checking that each key id is the SHA-256 of its key.
fn keys(field: &str, listed: &[RootKey]) -> Result<Vec<(String, VerifyingKey)>, RootError> {
    listed
        .iter()
        .map(|entry| {
            let bad = |why: &str| RootError::Malformed(format!("{field}: {}: {why}", entry.key_id));
            let bytes: [u8; 32] = BASE64
                .decode(&entry.public_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("public_key is not base64 of 32 bytes"))?;
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an ed25519 public key"))?;
            if key.is_weak() {
                return Err(bad("a weak (small-order) key"));
            }
            if key_id(&key) != entry.key_id {
                return Err(bad("key_id is not the SHA-256 of public_key"));
            }
            Ok((entry.key_id.clone(), key))
        })
        .collect()
}
