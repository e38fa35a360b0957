//! Ed25519 signing, in a small TUF-style profile: key ids, canonical JSON, and signed, expiring
//! manifests a device verifies offline.

mod canonical;
mod device;
mod event_chain;
mod keys;
mod manifest;

pub use canonical::{CanonicalJsonError, canonical_json};
pub use device::{Check, DEVICE_CHECKS, Device, check_body};
pub use event_chain::{ChainEvent, GENESIS_HASH, event_hash};
pub use keys::{KeyInfo, ManifestSigner, key_id};
pub use manifest::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSignature, SPEC_VERSION, VerifyError,
    check_expiry, check_type, verify_manifest, verify_signature,
};
