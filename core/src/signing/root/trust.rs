//! Trusting a root: pinning one, walking to newer versions, and judging a manifest's key by the
//! root reached.

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::VerifyingKey;

use super::{MAX_ROOT_STEPS, Root, RootError};
use crate::signing::ManifestEnvelope;

/// A root whose signatures have been verified: the pinned one, or one reached from it by
/// [`TrustedRoot::update`]. The only way to get one is through those checks.
#[derive(Debug, Clone)]
pub struct TrustedRoot(Root);

impl TrustedRoot {
    /// The root a device ships with (or an operator starts from): trusted because it is pinned,
    /// but it must still carry the threshold of its own root keys, so a pin cannot be a document
    /// its own keys never agreed on. Its expiry is not checked here: a device whose pinned root
    /// expired while it was off can still walk to a newer one ([`Self::check_fresh`]).
    pub fn pin(root: Root) -> Result<Self, RootError> {
        let (valid, threshold) = root.signed_by_own_keys();
        if valid < threshold {
            return Err(RootError::BelowThreshold {
                version: root.version,
                signer: root.version,
                valid,
                threshold,
            });
        }
        Ok(Self(root))
    }

    /// The next version, if it is exactly one above this one, signed by the threshold of this
    /// version's root keys and by the threshold of its own, and still revokes every key this one
    /// revokes.
    pub fn update(&self, next: Root) -> Result<Self, RootError> {
        let current = &self.0;
        let expected = current.version + 1;
        if next.version <= current.version {
            return Err(RootError::Rollback { trusted: current.version, offered: next.version });
        }
        if next.version != expected {
            return Err(RootError::Gap { expected, offered: next.version });
        }
        let valid = next.valid_signatures_by(&current.root_keys);
        if valid < current.threshold {
            return Err(RootError::BelowThreshold {
                version: next.version,
                signer: current.version,
                valid,
                threshold: current.threshold,
            });
        }
        let (valid, threshold) = next.signed_by_own_keys();
        if valid < threshold {
            return Err(RootError::BelowThreshold {
                version: next.version,
                signer: next.version,
                valid,
                threshold,
            });
        }
        if let Some(id) = current.revoked.iter().find(|id| !next.revoked.contains(id)) {
            return Err(RootError::Unrevoked {
                version: next.version,
                version_before: current.version,
                key_id: id.clone(),
            });
        }
        Ok(Self(next))
    }

    /// Walks from this root through `newer`, in order, one version at a time.
    pub fn walk(self, newer: impl IntoIterator<Item = Root>) -> Result<Self, RootError> {
        let mut trusted = self;
        for (step, next) in newer.into_iter().enumerate() {
            if step as u64 >= MAX_ROOT_STEPS {
                return Err(RootError::TooManySteps);
            }
            trusted = trusted.update(next)?;
        }
        Ok(trusted)
    }

    /// Refuses a root that expired: a device that reached only an expired root trusts no key
    /// (an attacker replaying old roots cannot freeze it on them for ever).
    pub fn check_fresh(&self, now: DateTime<Utc>) -> Result<(), RootError> {
        if self.0.expires_at <= now {
            return Err(RootError::Expired {
                version: self.0.version,
                expires_at: self.0.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            });
        }
        Ok(())
    }

    pub fn root(&self) -> &Root {
        &self.0
    }

    pub fn version(&self) -> u64 {
        self.0.version
    }

    /// Whether `key_id` is a key that signs manifests now (not merely retired).
    pub fn lists_manifest_key(&self, key_id: &str) -> bool {
        self.0.manifest_keys.iter().any(|(id, _)| id == key_id)
    }

    pub fn is_revoked(&self, key_id: &str) -> bool {
        self.0.revoked.iter().any(|id| id == key_id)
    }

    /// Every key a manifest may be verified with: the manifest keys, then the retired ones.
    pub fn manifest_keys(&self) -> Vec<(String, VerifyingKey)> {
        self.0.manifest_keys.iter().chain(&self.0.retired_manifest_keys).cloned().collect()
    }

    /// The keys to verify `manifest` with, or why none may be: a manifest carrying a signature
    /// by a revoked key is refused outright, and one with no signature by a listed key is
    /// refused naming its keys. The signatures themselves are checked by
    /// [`crate::signing::verify_manifest`] with the keys returned.
    pub fn keys_for(&self, manifest: &ManifestEnvelope) -> Result<Vec<(String, VerifyingKey)>, RootError> {
        if let Some(s) = manifest.signatures.iter().find(|s| self.is_revoked(&s.key_id)) {
            return Err(RootError::Revoked { version: self.0.version, key_id: s.key_id.clone() });
        }
        let keys = self.manifest_keys();
        if !manifest.signatures.iter().any(|s| keys.iter().any(|(id, _)| *id == s.key_id)) {
            let ids: Vec<&str> = manifest.signatures.iter().map(|s| s.key_id.as_str()).collect();
            return Err(RootError::NotListed { version: self.0.version, key_ids: ids.join(", ") });
        }
        Ok(keys)
    }
}

/// A whole chain as a service holds it: `roots[0]` is version 1 (pinned, self-signed by its
/// threshold), each later one an update of the one before. Returns the newest, not checked for
/// expiry.
pub fn verify_chain(roots: impl IntoIterator<Item = Root>) -> Result<TrustedRoot, RootError> {
    let mut roots = roots.into_iter();
    let first = roots.next().ok_or_else(|| RootError::Malformed("no root documents".into()))?;
    if first.version != 1 {
        return Err(RootError::Gap { expected: 1, offered: first.version });
    }
    TrustedRoot::pin(first)?.walk(roots)
}
