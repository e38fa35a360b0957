//! Who may see which channel (`firmware.channel_roles`): a channel may name a token role that a
//! caller needs to see its releases. Admins see every channel. What a caller may not see does
//! not exist for it: no list entry, no offer, no manifest, and 404 for the download.
//!
//! Answered as a bit mask of channel ranks, made once per request from the token's roles, so
//! the update check stays a memory lookup.

use crate::auth::Caller;
use crate::config::FirmwareSettings;

/// The role each channel needs, by rank (`firmware.channels` order).
pub struct ChannelAccess {
    names: Vec<String>,
    needs: Vec<Option<String>>,
}

/// Channel ranks as bits: bit `r` set means the channel of rank `r` is visible.
pub type VisibleRanks = u64;

impl ChannelAccess {
    pub fn from_settings(firmware: &FirmwareSettings) -> Self {
        let needs = firmware
            .channels
            .iter()
            .map(|c| firmware.channel_roles.get(c).filter(|role| !role.is_empty()).cloned())
            .collect();
        Self { names: firmware.channels.clone(), needs }
    }

    /// Whether the channel named `channel` is in `visible` (an unknown name is not).
    pub fn sees_named(&self, visible: VisibleRanks, channel: &str) -> bool {
        self.names.iter().position(|c| c == channel).is_some_and(|rank| sees(visible, rank))
    }

    /// The channels `caller` may see; `None` is an anonymous caller (`auth.public_downloads`).
    pub fn visible(&self, caller: Option<&Caller>) -> VisibleRanks {
        if caller.is_some_and(|c| c.is_admin) {
            return VisibleRanks::MAX;
        }
        let roles: &[String] = caller.map_or(&[], |c| &c.roles);
        self.needs
            .iter()
            .enumerate()
            .filter(|(_, needs)| needs.as_ref().is_none_or(|role| roles.contains(role)))
            .fold(0, |mask, (rank, _)| mask | 1 << rank)
    }
}

/// Whether the channel of `rank` is in `visible`.
pub fn sees(visible: VisibleRanks, rank: usize) -> bool {
    rank < 64 && visible & (1 << rank) != 0
}

/// Whether any of the channel `ranks` (a release's) is in `visible`: whether the release exists
/// for that caller.
pub fn sees_any(visible: VisibleRanks, ranks: &[usize]) -> bool {
    ranks.iter().any(|&rank| sees(visible, rank))
}
