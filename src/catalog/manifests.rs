//! The catalog's signed manifests: what each says, and one signature shared while more than
//! half its lifetime is left.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::value::RawValue;

use crate::config::Settings;
use crate::db::entities::firmware;
use crate::domain::Version;
use crate::signing::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSigner, SPEC_VERSION, SPEC_VERSION_CHUNKED,
};

/// A manifest, signed, with its JSON ready to send.
#[derive(Debug)]
pub struct SignedManifest {
    pub json: Box<RawValue>,
    /// Identifies this exact signed document (for ETags).
    pub tag: String,
    pub expires_at: DateTime<Utc>,
}

pub(super) fn manifest_ttl(settings: &Settings) -> Duration {
    Duration::seconds(i64::try_from(settings.signing.manifest_ttl_s).unwrap_or(i64::MAX / 2))
}

/// What a manifest for `row` on `hardware` and `channel` says, before it is dated and signed.
pub(super) fn manifest_body(
    row: &firmware::Model,
    hardware: &str,
    channel: &str,
    floor: Option<&Version>,
) -> anyhow::Result<ManifestBody> {
    let chunks = super::ChunkTable::of(row);
    Ok(ManifestBody {
        kind: MANIFEST_TYPE.into(),
        spec_version: match chunks {
            Some(_) => SPEC_VERSION_CHUNKED.into(),
            None => SPEC_VERSION.into(),
        },
        firmware_id: row.id.to_string(),
        version: row.version.clone(),
        // Only the hardware this manifest was issued for: its floor is this one's, so a device
        // of another hardware must not accept it.
        hardware: vec![hardware.to_owned()],
        channel: channel.to_owned(),
        size: u64::try_from(row.size)?,
        sha256: row.sha256.clone(),
        min_version: floor.map(|f| f.to_string()),
        min_from_version: row.min_from_version.clone(),
        mandatory: row.mandatory,
        issued_at: String::new(),
        expires_at: String::new(),
        release_signature: row.release_signature.clone(),
        chunk_size: chunks.as_ref().map(|c| c.chunk_size),
        chunk_table_sha256: chunks.map(|c| c.sha256),
    })
}

/// The signed manifest for `body` from `signed` while more than half its lifetime is left,
/// else signed anew; with its cache key.
pub(super) fn reuse_or_sign(
    signed: &HashMap<String, Arc<SignedManifest>>,
    body: &ManifestBody,
    signer: &ManifestSigner,
    now: DateTime<Utc>,
    ttl: Duration,
) -> anyhow::Result<(String, Arc<SignedManifest>)> {
    let key = manifest_cache_key(body);
    let manifest = match signed.get(&key).filter(|m| m.expires_at - now > ttl / 2) {
        Some(m) => m.clone(),
        None => Arc::new(sign(body.clone(), signer, now, ttl)?),
    };
    Ok((key, manifest))
}

/// What a manifest says, without its timestamps: equal keys can share one signature.
fn manifest_cache_key(body: &ManifestBody) -> String {
    serde_json::to_string(body).unwrap_or_default()
}

fn sign(
    mut body: ManifestBody,
    signer: &ManifestSigner,
    now: DateTime<Utc>,
    ttl: Duration,
) -> anyhow::Result<SignedManifest> {
    let format = "%Y-%m-%dT%H:%M:%SZ";
    body.issued_at = now.format(format).to_string();
    let expires_at = now + ttl;
    body.expires_at = expires_at.format(format).to_string();
    let envelope = ManifestEnvelope::sign(&body, signer)?;
    let tag = envelope.signatures.first().map(|s| s.sig.chars().take(22).collect()).unwrap_or_default();
    // Served as is (the check and `/manifest`): `signed` stands as the very bytes signed.
    let json = RawValue::from_string(envelope.to_served_json()?)?;
    Ok(SignedManifest { json, tag, expires_at })
}
