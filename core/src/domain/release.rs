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

string_enum!(
    /// Where the patch from one version devices run to a release is.
    DeltaState {
        /// Waiting for a builder.
        Pending => "pending",
        /// An instance holds it and is building it.
        Building => "building",
        /// Built, stored and offered.
        Ready => "ready",
        /// The build failed (see `reason`); a rebuild queues it again.
        Failed => "failed",
        /// Not built, on purpose (see `reason`): too large, no stored image of that version...
        Skipped => "skipped",
    }
);

string_enum!(
    /// How a device fetched a release: a patch from the version it ran, or the whole image.
    DownloadVia {
        Delta => "delta",
        Full => "full",
    }
);
