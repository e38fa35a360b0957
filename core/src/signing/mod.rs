//! Ed25519 signing, in a small TUF-style profile: key ids, canonical JSON, and signed, expiring
//! manifests a device verifies offline.

mod canonical;
mod keys;
mod manifest;

pub use canonical::{CanonicalJsonError, canonical_json};
pub use keys::{KeyInfo, ManifestSigner, key_id};
pub use manifest::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSignature, SPEC_VERSION, VerifyError,
    verify_manifest,
};
