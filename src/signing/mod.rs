//! Ed25519 signing: the manifest signing of `nowatch-ota-core` (re-exported here), the online
//! key loaded from the settings, offline release signatures over image digests, and the device's
//! view of an offline verification.

pub mod offline;
mod release;
mod settings;

pub use nowatch_ota_core::signing::*;
pub use release::ReleaseKeys;
pub use settings::{DEV_SIGNING_KEY_PEM, generate_pem, load_signer, write_new_key};
