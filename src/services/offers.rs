//! What devices read: the update check, a release's public metadata and its signed manifests.
//! The check and the manifests come from the in-memory catalog, never the database.

use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::auth::Caller;
use crate::catalog::{DeltaOffer, Offered, PublicRelease, SignedManifest};
use crate::domain::selection::{Device, select};
use crate::domain::{DeviceId, FirmwareState, HardwareId, Version};
use crate::error::ApiError;
use crate::services::channel_access::{sees, sees_any};
use crate::services::releases::{self, not_found};
use crate::state::AppState;

/// An update check, its input already parsed.
pub struct CheckRequest {
    pub hardware: HardwareId,
    pub current: Version,
    pub device_id: DeviceId,
    /// The channel the device follows, as a rank in `firmware.channels`.
    pub channel_rank: usize,
}

/// What a device should install now, with the manifest that covers it, and the patch to it from
/// the version the device runs when there is a ready one.
pub struct Offer {
    pub release: Arc<Offered>,
    pub manifest: Arc<SignedManifest>,
    pub delta: Option<Arc<DeltaOffer>>,
}

/// `GET /v1/firmware/check` when there is something to install, as sent: the release and its
/// manifest are the catalog's JSON, serialised once per rebuild.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckResponse<'a> {
    #[schema(value_type = PublicRelease)]
    pub firmware: &'a RawValue,
    /// The signed manifest to verify before installing.
    #[schema(value_type = crate::signing::ManifestEnvelope)]
    pub manifest: &'a RawValue,
    pub download_url: String,
    /// Seconds until the next check, jittered.
    pub poll_after_s: u64,
    /// A patch from the version the device runs, often a tenth of the image: apply it to the
    /// running image (whose SHA-256 must be `from_sha256`), then verify the result against the
    /// manifest's size and SHA-256 as for a full download. Absent: download the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaDownload<'a>>,
}

/// `delta` of an update check's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeltaDownload<'a> {
    #[serde(flatten)]
    pub patch: &'a DeltaOffer,
    /// `GET /v1/firmware/{id}/delta/{from_sha256}`: Range, ETag and If-Range as for the image.
    pub download_url: String,
}

impl Offer {
    /// The answer's body; `download_base` is where clients reach this service.
    pub fn response(&self, download_base: &str, poll_after_s: u64) -> CheckResponse<'_> {
        CheckResponse {
            firmware: &self.release.public_json,
            manifest: &self.manifest.json,
            download_url: format!("{download_base}/v1/firmware/{}/download", self.release.id),
            poll_after_s,
            delta: self.delta.as_deref().map(|patch| DeltaDownload {
                patch,
                download_url: format!(
                    "{download_base}/v1/firmware/{}/delta/{}",
                    self.release.id, patch.from_sha256
                ),
            }),
        }
    }

    /// Names this exact offer for `If-None-Match`: the manifest, and the patch if there is one
    /// (a patch ready since the last check changes the answer).
    pub fn tag(&self) -> String {
        match &self.delta {
            None => self.manifest.tag.clone(),
            Some(patch) => format!("{}.{}", self.manifest.tag, patch.sha256.get(..16).unwrap_or_default()),
        }
    }
}

/// The release `caller`'s device should install now, if any. Counted against the device's
/// check limit once the input is known good (bad input stays a 400), before any selection work.
pub fn check(state: &AppState, caller: &Caller, request: &CheckRequest) -> Result<Option<Offer>, ApiError> {
    state.limits.check_update(&caller.sub, &request.device_id)?;
    let snapshot = state.catalog.snapshot();
    let hardware = request.hardware.as_str();
    let releases: &[Arc<Offered>] = snapshot.by_hardware.get(hardware).map(Vec::as_slice).unwrap_or(&[]);
    // A device cut off from releases it failed too often chooses among the others.
    let kept: Vec<Arc<Offered>>;
    let releases = match state.catalog.cut_offs.releases_for(request.device_id.as_str()) {
        None => releases,
        Some(cut) => {
            kept = releases.iter().filter(|r| !cut.contains(&r.id)).cloned().collect();
            &kept
        }
    };
    let device = Device {
        id: &request.device_id,
        current: &request.current,
        channel_rank: request.channel_rank,
        visible_ranks: state.channel_access.visible(Some(caller)),
    };
    let Some(offer) = select(releases, &device, snapshot.floors.get(hardware)) else {
        state.metrics.update_checks.with_label_values(&["none"]).inc();
        return Ok(None);
    };
    let release = Arc::clone(offer.release);
    let manifest = release.manifests.get(&(hardware.to_owned(), offer.channel_rank)).cloned();
    let manifest = manifest
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no manifest for {} on {hardware}", release.id)))?;
    let delta = delta_for(state, &release, request);
    Ok(Some(Offer { release, manifest, delta }))
}

/// The ready patch to `release` from the version the device runs, unless the device failed to
/// install this release from a patch before (it gets the full image from then on).
fn delta_for(state: &AppState, release: &Offered, request: &CheckRequest) -> Option<Arc<DeltaOffer>> {
    let patch = release.delta_for(request.hardware.as_str(), &request.current)?;
    let refused = state.catalog.full_only.releases_for(request.device_id.as_str());
    if refused.is_some_and(|ids| ids.contains(&release.id)) {
        return None;
    }
    Some(Arc::clone(patch))
}

/// `GET /v1/firmware`: the releases of `hardware` published on the channel of rank
/// `channel_rank` or a more stable one that `caller` may see, newest first (for changelogs).
pub fn list(
    state: &AppState,
    caller: &Caller,
    hardware: &HardwareId,
    channel_rank: usize,
) -> Vec<Arc<Offered>> {
    let visible = state.channel_access.visible(Some(caller));
    let snapshot = state.catalog.snapshot();
    let releases = snapshot.by_hardware.get(hardware.as_str()).into_iter().flatten();
    releases
        .filter(|r| r.channel_ranks.iter().any(|&c| c <= channel_rank && sees(visible, c)))
        .cloned()
        .collect()
}

/// `GET /v1/firmware`'s answer, from the catalog's JSON of each release.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicReleaseList<'a> {
    #[schema(value_type = Vec<PublicRelease>)]
    pub items: Vec<&'a RawValue>,
    pub total: u64,
}

impl<'a> PublicReleaseList<'a> {
    pub fn new(releases: &'a [Arc<Offered>]) -> Self {
        Self { items: releases.iter().map(|r| &*r.public_json).collect(), total: releases.len() as u64 }
    }
}

/// A release's public metadata: the catalog's JSON for an offered release, else read from the
/// database (drafts and hidden releases for admins only).
pub enum PublicView {
    Offered(Arc<Offered>),
    Stored(PublicRelease),
}

impl Serialize for PublicView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Offered(offered) => offered.public_json.serialize(serializer),
            Self::Stored(release) => release.serialize(serializer),
        }
    }
}

/// `GET /v1/firmware/{id}`: 404 for what `caller` may not see, as if it did not exist.
pub async fn public_release(state: &AppState, caller: &Caller, id: Uuid) -> Result<PublicView, ApiError> {
    let visible = state.channel_access.visible(Some(caller));
    if let Some(offered) = state.catalog.snapshot().by_id.get(&id) {
        if !sees_any(visible, &offered.channel_ranks) {
            return Err(not_found(id));
        }
        return Ok(PublicView::Offered(Arc::clone(offered)));
    }
    let view = releases::view(state, id).await?;
    let hidden = !releases::visible_to(state, visible, id).await?;
    if (view.release.state == FirmwareState::Draft || hidden) && !caller.is_admin {
        return Err(not_found(id));
    }
    Ok(PublicView::Stored(view.release))
}

/// The signed manifest of offered release `id` for `hardware` (may be left out when the release
/// has one) on `channel_rank` (default: the most stable channel it is on that `caller` sees).
pub fn manifest(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    hardware: Option<HardwareId>,
    channel_rank: Option<usize>,
) -> Result<Arc<SignedManifest>, ApiError> {
    let visible = state.channel_access.visible(Some(caller));
    let snapshot = state.catalog.snapshot();
    let release = snapshot
        .by_id
        .get(&id)
        .filter(|r| sees_any(visible, &r.channel_ranks))
        .ok_or_else(|| not_found(id))?;
    let hardware = match (hardware, release.public.hardware.as_slice()) {
        (Some(h), _) => h.to_string(),
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(ApiError::field("hardware", "is required: this release is built for several"));
        }
    };
    let rank = channel_rank
        .unwrap_or_else(|| release.channel_ranks.iter().copied().find(|&c| sees(visible, c)).unwrap_or(0));
    if !sees(visible, rank) {
        return Err(not_found(id));
    }
    release.manifests.get(&(hardware.clone(), rank)).cloned().ok_or_else(|| {
        ApiError::NotFound(format!("firmware {id} has no manifest for {hardware} on that channel"))
    })
}
