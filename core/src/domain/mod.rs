//! The rules, free of HTTP and SQL: parse-don't-validate newtypes for what clients send us.
//! A value of one of these types is valid by construction; handlers parse once at the edge.

mod digest;
mod ids;
pub mod range;
mod release;
pub mod rollout;
pub mod selection;
mod string_enum;
mod version;

pub use digest::Sha256Digest;
pub use ids::{Channel, DeviceId, HardwareId};
pub use release::{DeltaState, DownloadVia, FirmwareState, ReportStatus};
pub use version::Version;

/// Why a value failed to parse; the handler prefixes it with the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
