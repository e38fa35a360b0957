//! Ed25519 signing, in a small TUF-style profile: key ids, canonical JSON, and signed, expiring
//! manifests a device verifies offline.

mod canonical;
mod event_chain;
mod keys;
mod manifest;

pub use canonical::{CanonicalJsonError, canonical_json};
pub use event_chain::{ChainEvent, GENESIS_HASH, event_hash};
pub use keys::{KeyInfo, ManifestSigner, key_id};
pub use manifest::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSignature, SPEC_VERSION, VerifyError,
    verify_manifest,
};
