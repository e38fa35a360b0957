//! Ed25519 signing, in a small TUF-style profile: key ids, canonical JSON, signed, expiring
//! manifests a device verifies offline, and the offline root of trust that says which keys may
//! sign them.

mod canonical;
mod device;
mod event_chain;
mod keys;
mod manifest;
pub mod root;

pub use canonical::{CanonicalJsonError, canonical_json};
pub use device::{Check, DEVICE_CHECKS, Device, check_body};
pub use event_chain::{ChainEvent, GENESIS_HASH, event_hash};
pub use keys::{KeyInfo, KeyList, ManifestSigner, key_id};
pub use manifest::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSignature, SPEC_VERSION, SPEC_VERSION_CHUNKED,
    VerifyError, check_expiry, check_type, verify_manifest, verify_signature,
};
pub use root::{Root, RootBody, RootEnvelope, RootError, RootKey, TrustedRoot, verify_chain};
