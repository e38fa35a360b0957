//! Release and report states.

use serde::{Deserialize, Serialize};

use super::ParseError;
use super::string_enum::string_enum;

string_enum!(
    /// A release's life: uploaded, offered, withdrawn.
    FirmwareState {
        Draft => "draft",
        Published => "published",
        Revoked => "revoked",
    }
);

string_enum!(
    /// What a device says about one release.
    ReportStatus {
        Downloading => "downloading",
        Downloaded => "downloaded",
        Installing => "installing",
        Installed => "installed",
        Failed => "failed",
    }
);
