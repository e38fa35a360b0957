//! The signed manifest: `{"signed": {...}, "signatures": [{"key_id", "sig"}]}`, where each `sig`
//! is an ed25519 signature over the canonical JSON of `signed`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ManifestSigner, canonical_json};

pub const MANIFEST_TYPE: &str = "nowatch-firmware-manifest";
/// Manifests without a chunk table.
pub const SPEC_VERSION: &str = "1.0";
/// Manifests with a chunk table (`chunk_size`, `chunk_table_sha256`); a 1.0 verifier ignores
/// those fields and still checks the whole image.
pub const SPEC_VERSION_CHUNKED: &str = "1.1";

/// What a manifest asserts about one release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub spec_version: String,
    pub firmware_id: String,
    pub version: String,
    pub hardware: Vec<String>,
    pub channel: String,
    pub size: u64,
    pub sha256: String,
    /// The anti-rollback floor of the hardware when the manifest was issued.
    pub min_version: Option<String>,
    pub min_from_version: Option<String>,
    pub mandatory: bool,
    /// RFC 3339, UTC, whole seconds.
    pub issued_at: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_signature: Option<String>,
    /// Bytes per chunk of the chunk table (spec 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u32>,
    /// SHA-256 of the chunk table, lowercase hex (spec 1.1; see [`crate::chunks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_table_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManifestSignature {
    pub key_id: String,
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManifestEnvelope {
    #[schema(value_type = Object)]
    pub signed: Value,
    pub signatures: Vec<ManifestSignature>,
}

impl ManifestEnvelope {
    /// Signs `body` with the online key.
    pub fn sign(body: &ManifestBody, signer: &ManifestSigner) -> anyhow::Result<Self> {
        let signed = serde_json::to_value(body)?;
        let sig = signer.sign(&canonical_json(&signed)?);
        Ok(Self { signed, signatures: vec![ManifestSignature { key_id: signer.key_id().to_owned(), sig }] })
    }

    /// The envelope as the service serves it: `{"signed":<S>,"signatures":[...]}` with no
    /// whitespace, where `<S>` is exactly the canonical JSON the signatures cover. A device
    /// verifies the signature over the bytes of `signed` as they stand, never re-serialising
    /// (the watch verifier, `nowatch-ota-watch`, does so).
    pub fn to_served_json(&self) -> anyhow::Result<String> {
        let signed = String::from_utf8(canonical_json(&self.signed)?)?;
        let signatures = serde_json::to_string(&self.signatures)?;
        Ok(format!("{{\"signed\":{signed},\"signatures\":{signatures}}}"))
    }

    /// When the manifest stops being valid, if it says.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        let raw = self.signed.get("expires_at")?.as_str()?;
        DateTime::parse_from_rfc3339(raw).ok().map(|t| t.with_timezone(&Utc))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("no signature by a trusted key verifies")]
    NoValidSignature,
    #[error("the manifest is not a {MANIFEST_TYPE}")]
    WrongType,
    #[error("the manifest is malformed: {0}")]
    Malformed(String),
    #[error("the manifest expired at {0}")]
    Expired(String),
}

/// What a device does first: a trusted key id with a valid signature over the canonical
/// `signed`, the right type, and an expiry in the future ([`super::DEVICE_CHECKS`]'s first
/// three). Returns the body.
pub fn verify_manifest(
    envelope: &ManifestEnvelope,
    trusted: &[(String, VerifyingKey)],
    now: DateTime<Utc>,
) -> Result<ManifestBody, VerifyError> {
    let body = verify_signature(envelope, trusted)?;
    check_type(&body)?;
    check_expiry(envelope, &body, now)?;
    Ok(body)
}

/// [`super::Check::Signature`]: some signature by a trusted key verifies over the canonical
/// `signed`; only then is `signed` read, as a manifest body.
pub fn verify_signature(
    envelope: &ManifestEnvelope,
    trusted: &[(String, VerifyingKey)],
) -> Result<ManifestBody, VerifyError> {
    let message = canonical_json(&envelope.signed).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    let verified = envelope.signatures.iter().any(|s| {
        let Some((_, key)) = trusted.iter().find(|(id, _)| *id == s.key_id) else {
            return false;
        };
        let Ok(bytes) = BASE64.decode(&s.sig) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify_strict(&message, &sig).is_ok()
    });
    if !verified {
        return Err(VerifyError::NoValidSignature);
    }
    serde_json::from_value(envelope.signed.clone()).map_err(|e| VerifyError::Malformed(e.to_string()))
}

/// [`super::Check::Type`].
pub fn check_type(body: &ManifestBody) -> Result<(), VerifyError> {
    match body.kind == MANIFEST_TYPE {
        true => Ok(()),
        false => Err(VerifyError::WrongType),
    }
}

/// [`super::Check::Expiry`].
pub fn check_expiry(
    envelope: &ManifestEnvelope,
    body: &ManifestBody,
    now: DateTime<Utc>,
) -> Result<(), VerifyError> {
    let expires =
        envelope.expires_at().ok_or_else(|| VerifyError::Malformed("expires_at is not RFC 3339".into()))?;
    match expires > now {
        true => Ok(()),
        false => Err(VerifyError::Expired(body.expires_at.clone())),
    }
}
