//! Manifest verification with a fixed trusted key. Input: 4 bytes that pick one byte edit
//! (position, value, replace/insert/delete), then JSON for the `signed` part of a manifest.
//! Properties:
//! - the input as an envelope is refused (it cannot carry a signature by the fixed key);
//! - the JSON signed here by the trusted key verifies exactly when it is a well-formed, unexpired
//!   manifest of the right type, and then gives back that body;
//! - the same JSON signed by another key, or with no signature, is refused as unsigned;
//! - after the byte edit on the serialised envelope, whatever verifies has the very same
//!   canonical `signed` bytes as what was signed.
#![no_main]

use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use nowatch_ota_core::signing::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSignature, ManifestSigner, VerifyError,
    canonical_json, verify_manifest,
};
use serde_json::Value;

static TRUSTED: LazyLock<ManifestSigner> =
    LazyLock::new(|| ManifestSigner::new(SigningKey::from_bytes(&[7; 32]), Vec::new()));
static STRANGER: LazyLock<ManifestSigner> =
    LazyLock::new(|| ManifestSigner::new(SigningKey::from_bytes(&[9; 32]), Vec::new()));
static NOW: LazyLock<DateTime<Utc>> =
    LazyLock::new(|| Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).single().unwrap_or_default());

/// What verification should answer for `signed` carrying a valid trusted signature.
fn expected(signed: &Value) -> Result<ManifestBody, VerifyError> {
    let body: ManifestBody =
        serde_json::from_value(signed.clone()).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if body.kind != MANIFEST_TYPE {
        return Err(VerifyError::WrongType);
    }
    let expires = DateTime::parse_from_rfc3339(&body.expires_at)
        .map_err(|_| VerifyError::Malformed("expires_at is not RFC 3339".into()))?;
    if expires <= *NOW {
        return Err(VerifyError::Expired(body.expires_at));
    }
    Ok(body)
}

fn envelope(signed: &Value, message: &[u8], signer: &ManifestSigner, key_id: &str) -> ManifestEnvelope {
    ManifestEnvelope {
        signed: signed.clone(),
        signatures: vec![ManifestSignature { key_id: key_id.to_owned(), sig: signer.sign(message) }],
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((edit, json)) = data.split_first_chunk::<4>() else {
        return;
    };
    let trusted = TRUSTED.trusted_keys();
    let verify = |e: &ManifestEnvelope| verify_manifest(e, &trusted, *NOW);

    if let Ok(raw) = serde_json::from_slice::<ManifestEnvelope>(json) {
        assert!(verify(&raw).is_err(), "an envelope from the input verified");
    }
    let Ok(signed) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let Ok(message) = canonical_json(&signed) else {
        let unsigned = envelope(&signed, b"", &TRUSTED, TRUSTED.key_id());
        assert!(matches!(verify(&unsigned), Err(VerifyError::Malformed(_))));
        return;
    };

    let good = envelope(&signed, &message, &TRUSTED, TRUSTED.key_id());
    let outcome = verify(&good);
    assert_eq!(outcome, expected(&signed), "{}", String::from_utf8_lossy(&message));
    if let Ok(body) = &outcome {
        let resigned =
            ManifestEnvelope::sign(body, &TRUSTED).unwrap_or_else(|e| panic!("signing a valid body: {e}"));
        assert_eq!(verify(&resigned).as_ref(), Ok(body), "a body signed by the service itself");
    }

    for forged in [
        envelope(&signed, &message, &STRANGER, TRUSTED.key_id()),
        envelope(&signed, &message, &STRANGER, STRANGER.key_id()),
        ManifestEnvelope { signed: signed.clone(), signatures: Vec::new() },
    ] {
        assert_eq!(verify(&forged), Err(VerifyError::NoValidSignature));
    }

    let Ok(mut bytes) = serde_json::to_vec(&good) else {
        return;
    };
    let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % (bytes.len() + 1);
    match edit[3] % 3 {
        0 if at < bytes.len() => bytes[at] = edit[2],
        1 => bytes.insert(at, edit[2]),
        _ if at < bytes.len() => {
            bytes.remove(at);
        }
        _ => return,
    }
    let Ok(mutated) = serde_json::from_slice::<ManifestEnvelope>(&bytes) else {
        return;
    };
    if verify(&mutated).is_ok() {
        assert_eq!(
            canonical_json(&mutated.signed).ok().as_deref(),
            Some(&message[..]),
            "an edited envelope verified: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
});
