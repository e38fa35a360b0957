use chrono::{Duration, TimeZone};
use ed25519_dalek::SigningKey;

use super::*;
use crate::signing::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSigner, SPEC_VERSION, verify_manifest,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).single().unwrap()
}

/// A root of `version` with root keys `roots` (seeds), manifest keys `manifest`.
fn body(version: u64, roots: &[u8], threshold: u32, manifest: &[u8]) -> RootBody {
    let listed = |seeds: &[u8]| seeds.iter().map(|&s| RootKey::new(&key(s).verifying_key())).collect();
    RootBody {
        kind: ROOT_TYPE.into(),
        spec_version: ROOT_SPEC_VERSION.into(),
        version,
        expires_at: (now() + Duration::days(365)).to_rfc3339(),
        root_keys: listed(roots),
        threshold,
        manifest_keys: listed(manifest),
        retired_manifest_keys: Vec::new(),
        revoked_key_ids: Vec::new(),
    }
}

fn signed(body: &RootBody, signers: &[u8]) -> Root {
    let mut envelope = RootEnvelope::unsigned(body).unwrap();
    for &s in signers {
        envelope.sign(&key(s)).unwrap();
    }
    Root::parse(&serde_json::to_vec(&envelope).unwrap()).unwrap()
}

fn manifest(signer: u8) -> ManifestEnvelope {
    let body = ManifestBody {
        kind: MANIFEST_TYPE.into(),
        spec_version: SPEC_VERSION.into(),
        firmware_id: "f".into(),
        version: "1.0.0".into(),
        hardware: vec!["nw-s1".into()],
        channel: "stable".into(),
        size: 1,
        sha256: "00".repeat(32),
        min_version: None,
        min_from_version: None,
        mandatory: false,
        issued_at: now().to_rfc3339(),
        expires_at: (now() + Duration::days(7)).to_rfc3339(),
        release_signature: None,
        chunk_size: None,
        chunk_table_sha256: None,
    };
    ManifestEnvelope::sign(&body, &ManifestSigner::new(key(signer), Vec::new())).unwrap()
}

fn id(seed: u8) -> String {
    key_id(&key(seed).verifying_key())
}

#[test]
fn a_pinned_root_signed_by_its_threshold_trusts_its_manifest_key() {
    let root = TrustedRoot::pin(signed(&body(1, &[1, 2, 3], 2, &[10]), &[1, 3])).unwrap();
    root.check_fresh(now()).unwrap();
    let keys = root.keys_for(&manifest(10)).unwrap();
    verify_manifest(&manifest(10), &keys, now()).unwrap();
    assert!(root.lists_manifest_key(&id(10)));
}

#[test]
fn a_root_signed_below_its_threshold_is_refused() {
    let error = TrustedRoot::pin(signed(&body(1, &[1, 2, 3], 2, &[10]), &[1])).unwrap_err();
    assert_eq!(error, RootError::BelowThreshold { version: 1, signer: 1, valid: 1, threshold: 2 });
    // The same key twice is one signature; a key that is not a root key counts for nothing.
    let mut envelope = RootEnvelope::unsigned(&body(1, &[1, 2, 3], 2, &[10])).unwrap();
    envelope.sign(&key(1)).unwrap();
    let again = envelope.signatures[0].clone();
    envelope.signatures.push(again);
    envelope.sign(&key(9)).unwrap();
    let error = TrustedRoot::pin(Root::from_envelope(&envelope).unwrap()).unwrap_err();
    assert!(matches!(error, RootError::BelowThreshold { valid: 1, .. }), "{error}");
}

#[test]
fn a_tampered_root_no_longer_counts_its_signatures() {
    let mut envelope = RootEnvelope::unsigned(&body(1, &[1], 1, &[10])).unwrap();
    envelope.sign(&key(1)).unwrap();
    envelope.signed["manifest_keys"][0] =
        serde_json::to_value(RootKey::new(&key(66).verifying_key())).unwrap();
    let error = TrustedRoot::pin(Root::from_envelope(&envelope).unwrap()).unwrap_err();
    assert!(matches!(error, RootError::BelowThreshold { valid: 0, .. }), "{error}");
}

#[test]
fn rotating_the_manifest_key_trusts_the_new_one_and_keeps_the_retired_one_for_old_manifests() {
    let v1 = TrustedRoot::pin(signed(&body(1, &[1, 2], 2, &[10]), &[1, 2])).unwrap();
    let mut next = body(2, &[1, 2], 2, &[11]);
    next.retired_manifest_keys = vec![RootKey::new(&key(10).verifying_key())];
    assert!(matches!(v1.keys_for(&manifest(11)), Err(RootError::NotListed { version: 1, .. })));
    let v2 = v1.update(signed(&next, &[1, 2])).unwrap();
    assert_eq!(v2.version(), 2);
    assert!(v2.lists_manifest_key(&id(11)) && !v2.lists_manifest_key(&id(10)));
    for signer in [10, 11] {
        verify_manifest(&manifest(signer), &v2.keys_for(&manifest(signer)).unwrap(), now()).unwrap();
    }
}

#[test]
fn rotating_a_root_key_needs_the_old_threshold_and_the_new_one() {
    let v1 = TrustedRoot::pin(signed(&body(1, &[1, 2, 3], 2, &[10]), &[1, 2])).unwrap();
    // Key 3 is replaced by key 4.
    let v2_body = body(2, &[1, 2, 4], 2, &[10]);
    let only_new = v1.update(signed(&v2_body, &[4, 1])).unwrap_err();
    assert_eq!(only_new, RootError::BelowThreshold { version: 2, signer: 1, valid: 1, threshold: 2 });
    let only_old = v1.update(signed(&v2_body, &[3])).unwrap_err();
    assert!(matches!(only_old, RootError::BelowThreshold { signer: 1, valid: 1, .. }), "{only_old}");
    let v2 = v1.update(signed(&v2_body, &[1, 3, 4])).unwrap();
    // Version 3 is signed by version 2's keys: the removed key 3 counts for nothing any more.
    let v3_body = body(3, &[1, 2, 4], 2, &[10]);
    let by_removed = v2.update(signed(&v3_body, &[1, 3])).unwrap_err();
    assert!(matches!(by_removed, RootError::BelowThreshold { version: 3, signer: 2, valid: 1, .. }));
    assert_eq!(v2.update(signed(&v3_body, &[2, 4])).unwrap().version(), 3);
}

#[test]
fn a_device_offline_across_two_rotations_walks_both() {
    let v1 = TrustedRoot::pin(signed(&body(1, &[1, 2], 1, &[10]), &[1])).unwrap();
    let v2 = signed(&body(2, &[2, 3], 1, &[11]), &[1, 3]);
    let v3 = signed(&body(3, &[3, 4], 1, &[12]), &[3, 4]);
    let newest = v1.clone().walk([v2.clone(), v3.clone()]).unwrap();
    assert_eq!(newest.version(), 3);
    newest.keys_for(&manifest(12)).unwrap();
    // Skipping version 2 is not allowed: version 1's keys never signed version 3.
    assert_eq!(v1.clone().walk([v3.clone()]).unwrap_err(), RootError::Gap { expected: 2, offered: 3 });
    assert!(v1.walk([v3, v2]).is_err());
}

#[test]
fn a_rolled_back_version_is_refused() {
    let v1_body = body(1, &[1], 1, &[10]);
    let v2 = TrustedRoot::pin(signed(&v1_body, &[1]))
        .unwrap()
        .update(signed(&body(2, &[1], 1, &[11]), &[1]))
        .unwrap();
    assert_eq!(
        v2.update(signed(&v1_body, &[1])).unwrap_err(),
        RootError::Rollback { trusted: 2, offered: 1 }
    );
    let same = v2.update(signed(&body(2, &[1], 1, &[12]), &[1])).unwrap_err();
    assert_eq!(same, RootError::Rollback { trusted: 2, offered: 2 });
}

#[test]
fn an_expired_root_trusts_nothing_but_can_still_be_walked_past() {
    let mut old = body(1, &[1], 1, &[10]);
    old.expires_at = (now() - Duration::seconds(1)).to_rfc3339();
    let v1 = TrustedRoot::pin(signed(&old, &[1])).unwrap();
    assert!(matches!(v1.check_fresh(now()), Err(RootError::Expired { version: 1, .. })));
    let v2 = v1.update(signed(&body(2, &[1], 1, &[10]), &[1])).unwrap();
    v2.check_fresh(now()).unwrap();
}

#[test]
fn a_revoked_key_is_refused_and_stays_revoked() {
    let v1 = TrustedRoot::pin(signed(&body(1, &[1], 1, &[10, 11]), &[1])).unwrap();
    let mut v2_body = body(2, &[1], 1, &[11]);
    v2_body.revoked_key_ids = vec![id(10)];
    let v2 = v1.update(signed(&v2_body, &[1])).unwrap();
    assert_eq!(v2.keys_for(&manifest(10)).unwrap_err(), RootError::Revoked { version: 2, key_id: id(10) });
    v2.keys_for(&manifest(11)).unwrap();
    // Version 3 may not trust it again, nor silently drop the revocation.
    let relisted = signed(&body(3, &[1], 1, &[10]), &[1]);
    assert!(matches!(v2.update(relisted), Err(RootError::Unrevoked { version: 3, .. })));
}

/// A change that spoils a root body.
type Spoil = fn(&mut RootBody);

#[test]
fn malformed_roots_are_refused_naming_the_problem() {
    let cases: &[(Spoil, &str)] = &[
        (|b| b.threshold = 0, "threshold"),
        (|b| b.threshold = 3, "threshold"),
        (|b| b.version = 0, "version"),
        (|b| b.kind = "nowatch-firmware-manifest".into(), "type"),
        (|b| b.expires_at = "tomorrow".into(), "expires_at"),
        (|b| b.manifest_keys.clear(), "manifest_keys is empty"),
        (|b| b.manifest_keys = b.root_keys[..1].to_vec(), "listed twice"),
        (|b| b.root_keys[0].key_id = "00".repeat(32), "key_id"),
        (|b| b.revoked_key_ids = vec![b.manifest_keys[0].key_id.clone()], "both trusted and revoked"),
        (|b| b.revoked_key_ids = vec!["XYZ".into()], "lowercase hex"),
    ];
    for (change, named) in cases {
        let mut b = body(1, &[1, 2], 1, &[10]);
        change(&mut b);
        let error = Root::from_envelope(&RootEnvelope::unsigned(&b).unwrap()).unwrap_err().to_string();
        assert!(error.contains(named), "{error:?} does not name {named}");
    }
    let mut extra = serde_json::to_value(body(1, &[1], 1, &[10])).unwrap();
    extra["delegations"] = serde_json::json!({});
    let envelope = RootEnvelope { signed: extra, signatures: Vec::new() };
    assert!(Root::from_envelope(&envelope).is_err(), "an unknown field is refused");
    assert!(Root::parse(&vec![b' '; MAX_ROOT_BYTES + 1]).is_err());
}

#[test]
fn a_whole_chain_starts_at_version_1() {
    let v1 = signed(&body(1, &[1], 1, &[10]), &[1]);
    let v2 = signed(&body(2, &[1], 1, &[11]), &[1]);
    assert_eq!(verify_chain([v1, v2.clone()]).unwrap().version(), 2);
    assert_eq!(verify_chain([v2]).unwrap_err(), RootError::Gap { expected: 1, offered: 2 });
}
