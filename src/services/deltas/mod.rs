//! Delta updates: patches from the versions devices run to each published release, in the
//! detools "sequential" format (`nowatch_ota_core::delta`), which a watch applies while it
//! writes flash, in a few KiB of RAM.
//!
//! - **Planning** (`plan_release`): for each hardware of a published release, the versions its
//!   devices run (the `device` table: what they last reported), most devices first, at least
//!   `delta.min_devices` devices, at most `delta.max_sources` of them, older than the release.
//!   Each becomes a `firmware_delta` row: `pending` when the service stores an image of that
//!   version for that hardware, else `skipped` with the reason. A publish plans its release at
//!   once; every instance plans every offered release again each `delta.plan_interval_s`, which
//!   follows the fleet as its versions change. Planning is an upsert on the row's key: it never
//!   undoes a build, and two instances planning at once write the same rows.
//! - **Building** ([`builder`]): background workers claim pending rows (a conditional update:
//!   one instance wins; a claim whose lease ran out, a crashed build, is taken over), build off
//!   the request path, and store the patch content-addressed as `delta/<sha256>`.
//! - **Offering**: the catalog holds the ready patches of each offered release, so the update
//!   check adds a `delta` without the database (`services::offers`).
//! - **Cleaning**: a patch no ready row of a published release refers to is deleted by the
//!   storage sweep (`services::sweep`), after the same TTL as other objects.

pub mod builder;
mod view;

use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;

use crate::db;
use crate::db::entities::firmware_delta;
use crate::domain::{DeltaState, FirmwareState, Version};
use crate::error::ApiError;
use crate::state::AppState;

pub use view::{DeltaList, DeltaView};

/// The one format the service builds; the compression is `delta.compression`.
pub fn format_name(state: &AppState) -> String {
    format!("detools-sequential-{}", builder::compression(&state.settings).name())
}

/// A version devices run and the stored image of it, if any, for one release.
struct Source {
    version: String,
    /// `(release id, sha256, size)`.
    image: Option<(Uuid, String, i64)>,
    devices: i64,
    /// For the reason of a skipped row.
    hardware: String,
}

/// Plans the patches to release `id` (see the module docs); a release that is not published
/// gets none. Returns how many rows it wrote.
pub async fn plan_release(state: &AppState, id: Uuid) -> Result<usize, ApiError> {
    let settings = &state.settings.delta;
    if !settings.enabled {
        return Ok(0);
    }
    let Some(release) = db::firmware::find(&state.db, id).await? else { return Ok(0) };
    if release.row.state != FirmwareState::Published {
        return Ok(0);
    }
    let target = Version::parse(&release.row.version).map_err(ApiError::internal)?;
    let mut sources = sources(state, &release.hardware, &target).await?;
    sources.sort_by(|a, b| b.devices.cmp(&a.devices).then_with(|| b.version.cmp(&a.version)));
    sources.truncate(usize::try_from(settings.max_sources).unwrap_or(usize::MAX));
    let now = Utc::now();
    let format = format_name(state);
    for source in &sources {
        let (state_, reason) = match &source.image {
            None => (
                DeltaState::Skipped,
                Some(format!("no stored image of version {} for {}", source.version, source.hardware)),
            ),
            Some(_) => (DeltaState::Pending, None),
        };
        let (from_firmware_id, from_sha256) =
            source.image.as_ref().map_or((None, String::new()), |(id, sha, _)| (Some(*id), sha.clone()));
        let row = firmware_delta::Model {
            firmware_id: id,
            from_version: source.version.clone(),
            from_sha256,
            from_firmware_id,
            state: state_,
            reason,
            devices: source.devices,
            format: format.clone(),
            size: None,
            sha256: None,
            claim: None,
            lease_until: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
            built_at: None,
        };
        db::deltas::upsert_planned(&state.db, row).await?;
    }
    if !sources.is_empty() {
        state.delta_work.notify_one();
    }
    Ok(sources.len())
}

/// The versions older than `target` that at least `delta.min_devices` devices of `hardware`
/// run, each with its stored image; devices on one image of one version are added up across
/// hardware ids.
async fn sources(state: &AppState, hardware: &[String], target: &Version) -> Result<Vec<Source>, ApiError> {
    let mut by_image: HashMap<(String, String), Source> = HashMap::new();
    for (hw, version, devices) in db::deltas::fleet_versions(&state.db, hardware).await? {
        let Ok(parsed) = Version::parse(&version) else { continue };
        if parsed >= *target {
            continue;
        }
        let image = db::deltas::stored_image(&state.db, &hw, &parsed).await?;
        let sha = image.as_ref().map(|(_, sha, _)| sha.clone()).unwrap_or_default();
        let version = parsed.to_string();
        let source = by_image.entry((version.clone(), sha)).or_insert(Source {
            version,
            image,
            devices: 0,
            hardware: hw,
        });
        source.devices += devices;
    }
    let min = i64::try_from(state.settings.delta.min_devices).unwrap_or(i64::MAX);
    Ok(by_image.into_values().filter(|s| s.devices >= min).collect())
}

/// Plans every release the catalog offers: the periodic pass that follows the fleet.
pub async fn plan_offered(state: &AppState) {
    let ids: Vec<Uuid> = state.catalog.snapshot().by_id.keys().copied().collect();
    for id in ids {
        if let Err(e) = plan_release(state, id).await {
            tracing::warn!(firmware_id = %id, error = %e, "planning deltas failed");
        }
    }
}

/// `GET /v1/admin/firmware/{id}/deltas`.
pub async fn list(state: &AppState, id: Uuid) -> Result<DeltaList, ApiError> {
    let release = db::firmware::find(&state.db, id).await?.ok_or_else(|| ApiError::firmware_not_found(id))?;
    let rows = db::deltas::of_release(&state.db, id).await?;
    Ok(DeltaList::new(&release.row, rows))
}

/// `POST /v1/admin/firmware/{id}/deltas/rebuild`: forgets the release's patches and plans them
/// afresh (a build in flight loses its claim and its result is dropped). Only published
/// releases have patches.
pub async fn rebuild(state: &AppState, id: Uuid, actor: &str) -> Result<DeltaList, ApiError> {
    let release = db::firmware::find(&state.db, id).await?.ok_or_else(|| ApiError::firmware_not_found(id))?;
    if release.row.state != FirmwareState::Published {
        return Err(ApiError::Conflict(format!(
            "firmware {id} is {}: only published releases have deltas",
            release.row.state
        )));
    }
    if !state.settings.delta.enabled {
        return Err(ApiError::Conflict("delta updates are turned off (`delta.enabled`)".into()));
    }
    let forgotten = db::deltas::forget_release(&state.db, id).await?;
    tracing::info!(firmware_id = %id, actor, forgotten, "deltas queued again");
    plan_release(state, id).await?;
    state.release_changed(id).await;
    list(state, id).await
}
