//! Ed25519 signing: the manifest signing of `nowatch-ota-core` (re-exported here), the online
//! key loaded from the settings, offline release signatures over image digests, the device's
//! view of an offline verification, and the offline root of trust (served, made and walked).

pub mod device_verify;
pub mod offline;
mod release;
pub mod root_tool;
mod roots;
mod settings;

pub use nowatch_ota_core::signing::*;
pub use release::ReleaseKeys;
pub use roots::{DEV_ROOTS, RootStore};
pub use settings::{DEV_SIGNING_KEY_PEM, generate_pem, load_signer, write_new_key};
