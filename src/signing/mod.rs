//! Ed25519 signing, in a small TUF-style profile: key ids, canonical JSON, signed and expiring
//! manifests a device verifies offline, and offline release signatures over image digests.

mod canonical;
mod keys;
mod manifest;
pub mod offline;
mod release;

pub use canonical::{CanonicalJsonError, canonical_json};
pub use keys::{DEV_SIGNING_KEY_PEM, KeyInfo, ManifestSigner, generate_pem, key_id};
pub use manifest::{
    MANIFEST_TYPE, ManifestBody, ManifestEnvelope, ManifestSignature, SPEC_VERSION, VerifyError,
    verify_manifest,
};
pub use release::ReleaseKeys;
