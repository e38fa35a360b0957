//! Which rollout a device's first report for a release goes to, and whether it counts.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::ReportRequest;
use crate::db::entities::rollout;
use crate::db::firmware::Release;
use crate::domain::Version;
use crate::domain::rollout::RolloutState;
use crate::domain::selection::RolloutGate;
use crate::error::ApiError;
use crate::state::AppState;

/// Where a first report goes and whether its outcome may count (the account's places are taken
/// once the row is in).
pub(super) struct Attribution {
    pub rollout_id: Option<Uuid>,
    pub counted: bool,
}

/// The rollout a device's reports go to: among the release's rollouts on the device's channel or
/// a more stable one, the most stable that admits it; else the most stable one. Its outcomes
/// count towards that rollout's health only if the rollout admits the device now, the device
/// reported from a version the release could be offered to (`from_version`, or the version its
/// last report left), and its account has a place left (`rollout.max_devices_per_owner`,
/// [`super::counts::owner_slot_free`]).
pub(super) async fn attribute(
    state: &AppState,
    db: &impl sea_orm::ConnectionTrait,
    release: &Release,
    request: &ReportRequest,
    from_version: Option<&Version>,
) -> Result<Attribution, ApiError> {
    let channels = &state.settings.firmware.channels;
    let device_rank = request
        .channel
        .as_ref()
        .and_then(|c| channels.iter().position(|n| n == c.as_str()))
        .unwrap_or(usize::MAX);
    let mut candidates: Vec<(usize, bool, Uuid)> = rollout::Entity::find()
        .filter(rollout::Column::FirmwareId.eq(release.row.id))
        .all(db)
        .await?
        .into_iter()
        .filter_map(|r| {
            let rank = channels.iter().position(|c| *c == r.channel)?;
            let state = r.state;
            // Devices a halted rollout admitted before it halted still report their outcomes.
            let gate = RolloutGate {
                channel_rank: rank,
                state: if state == RolloutState::Halted { RolloutState::Active } else { state },
                basis_points: r.current_basis_points(),
                salt: hex::decode(&r.salt).ok()?,
            };
            (rank <= device_rank).then(|| (rank, !gate.admits(&request.device_id), r.id))
        })
        .collect();
    candidates.sort();
    let Some(&(_, not_admitted, rollout_id)) = candidates.first() else {
        return Ok(Attribution { rollout_id: None, counted: false });
    };
    let counted = !not_admitted && from_version.is_some_and(|from| offerable_from(release, from));
    Ok(Attribution { rollout_id: Some(rollout_id), counted })
}

/// Whether the release could be offered to a device running `from`: above it, and `from` at or
/// above the release's `min_from_version`.
fn offerable_from(release: &Release, from: &Version) -> bool {
    let above = Version::parse(&release.row.version).is_ok_and(|v| v > *from);
    let min_from = release.row.min_from_version.as_deref().map(Version::parse);
    above && min_from.is_none_or(|m| m.is_ok_and(|m| *from >= m))
}
