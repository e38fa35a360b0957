//! Building patches in the background: `delta.concurrency` workers per instance, each claiming
//! one row at a time, never on a request path. A build holds both images, the old one's suffix
//! array (4 bytes a byte) and the patch in memory, so images above `delta.max_image_bytes` get
//! none. The patch is applied once before it is stored: a patch that does not give back the
//! image byte for byte is a failed build, never an offer. A build renews its claim's lease while
//! it runs, so a slow one is not built twice; a crashed instance's lease runs out and another
//! instance takes the row over.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures_util::TryStreamExt;
use nowatch_ota_core::delta::{self, Compression};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{DeltaCompression, Settings};
use crate::db;
use crate::db::deltas::Outcome;
use crate::db::entities::firmware_delta;
use crate::domain::{DeltaState, FirmwareState, Sha256Digest};
use crate::state::AppState;
use crate::storage::ObjectKey;

/// How long an idle worker waits before it looks for work again, unless a plan wakes it.
const IDLE_POLL: Duration = Duration::from_secs(5);

pub fn compression(settings: &Settings) -> Compression {
    match settings.delta.compression {
        DeltaCompression::Heatshrink => Compression::HEATSHRINK,
        DeltaCompression::None => Compression::None,
    }
}

/// One worker: builds while there is work, then waits for a plan or the next poll.
pub async fn work(state: &AppState) {
    loop {
        let built = match build_next(state).await {
            Ok(built) => built,
            Err(e) => {
                tracing::warn!(error = %e, "delta build failed");
                false
            }
        };
        if !built {
            tokio::select! {
                () = state.delta_work.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }
}

/// Claims and builds one patch; whether there was one to claim.
pub async fn build_next(state: &AppState) -> anyhow::Result<bool> {
    let now = Utc::now();
    let lease =
        chrono::Duration::seconds(i64::try_from(state.settings.delta.lease_s).unwrap_or(i64::MAX / 2));
    for row in db::deltas::claimable(&state.db, now, 8).await? {
        let claim = Uuid::new_v4();
        if db::deltas::claim(&state.db, &row, claim, now, lease).await? {
            build_claimed(state, row, claim).await?;
            return Ok(true);
        }
    }
    Ok(false)
}

async fn build_claimed(state: &AppState, row: firmware_delta::Model, claim: Uuid) -> anyhow::Result<()> {
    let outcome = match with_lease(state, &row, claim, build(state, &row)).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(firmware_id = %row.firmware_id, from = %row.from_version, error = %e, "delta build failed");
            Outcome { state: DeltaState::Failed, reason: Some(truncated(&e.to_string())), patch: None }
        }
    };
    let ready = outcome.state == DeltaState::Ready;
    state.metrics.deltas_built.with_label_values(&[outcome.state.as_str()]).inc();
    let kept = db::deltas::finish(&state.db, &row, claim, outcome, Utc::now()).await?;
    if kept && ready {
        state.release_changed(row.firmware_id).await;
    }
    Ok(())
}

/// Runs `build` while renewing the claim's lease every third of `delta.lease_s`: a long build
/// (some inputs take minutes; see `nowatch_ota_core::delta::create_patch`) keeps its claim, and
/// only a build whose instance stopped renewing is taken over.
async fn with_lease<T>(
    state: &AppState,
    row: &firmware_delta::Model,
    claim: Uuid,
    build: impl std::future::Future<Output = T>,
) -> T {
    let lease_s = state.settings.delta.lease_s;
    let mut renew = tokio::time::interval(Duration::from_secs((lease_s / 3).max(1)));
    renew.tick().await;
    tokio::pin!(build);
    loop {
        tokio::select! {
            done = &mut build => return done,
            _ = renew.tick() => {
                let until = Utc::now() + chrono::Duration::seconds(i64::try_from(lease_s).unwrap_or(i64::MAX / 2));
                if let Err(e) = db::deltas::renew(&state.db, row, claim, until).await {
                    tracing::warn!(firmware_id = %row.firmware_id, error = %e, "could not renew a delta build's lease");
                }
            }
        }
    }
}

fn truncated(reason: &str) -> String {
    reason.chars().take(255).collect()
}

fn skipped(reason: String) -> Outcome {
    Outcome { state: DeltaState::Skipped, reason: Some(reason), patch: None }
}

/// Builds, checks and stores the patch of `row`.
async fn build(state: &AppState, row: &firmware_delta::Model) -> anyhow::Result<Outcome> {
    let settings = &state.settings.delta;
    let Some(target) = db::firmware::find(&state.db, row.firmware_id).await? else {
        return Ok(skipped("the release was deleted".into()));
    };
    if target.row.state != FirmwareState::Published {
        return Ok(skipped(format!("the release is {}", target.row.state)));
    }
    let max = settings.max_image_bytes;
    let to_digest = Sha256Digest::parse(&target.row.sha256).map_err(|e| anyhow::anyhow!("{e}"))?;
    let from_digest = Sha256Digest::parse(&row.from_sha256).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(from) = read_image(state, &from_digest, max).await? else {
        return Ok(skipped(format!(
            "the image of {} is larger than delta.max_image_bytes ({max})",
            row.from_version
        )));
    };
    let Some(to) = read_image(state, &to_digest, max).await? else {
        return Ok(skipped(format!("the image is larger than delta.max_image_bytes ({max})")));
    };
    let compression = compression(&state.settings);
    let (patch, reproduces) = tokio::task::spawn_blocking(move || {
        let patch = delta::create_patch(&from, &to, compression);
        let reproduces = delta::apply_patch(&from, &patch).is_ok_and(|image| image == to);
        (patch, reproduces)
    })
    .await?;
    if !reproduces {
        anyhow::bail!("the built patch does not give back the image");
    }
    let full = target.row.size.max(1) as f64;
    let ratio = patch.len() as f64 / full;
    if ratio > settings.max_ratio {
        return Ok(skipped(format!(
            "the patch is {:.0} % of the image, above delta.max_ratio ({:.0} %)",
            ratio * 100.0,
            settings.max_ratio * 100.0
        )));
    }
    let size = i64::try_from(patch.len())?;
    let digest = store_patch(state, patch).await?;
    Ok(Outcome { state: DeltaState::Ready, reason: None, patch: Some((size, digest.to_hex())) })
}

/// The stored image with this digest, if it is at most `max` bytes; its bytes are checked
/// against the digest (a store that returns other bytes fails the build).
async fn read_image(state: &AppState, digest: &Sha256Digest, max: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let key = ObjectKey::Firmware(*digest);
    let size =
        state.store.size(&key).await?.ok_or_else(|| anyhow::anyhow!("image {digest} is no longer stored"))?;
    if size > max {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size)?);
    let mut stream = state.store.open(&key, None).await?;
    while let Some(chunk) = stream.try_next().await? {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    if Sha256::digest(&bytes).as_slice() != digest.as_bytes() {
        anyhow::bail!("image {digest} in the store does not match its digest");
    }
    Ok(Some(bytes))
}

/// Stores the patch under `delta/<sha256>`, through staging like an upload.
async fn store_patch(state: &AppState, patch: Vec<u8>) -> anyhow::Result<Sha256Digest> {
    let limit = patch.len() as u64;
    let body = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(Bytes::from(patch)) });
    let staged = state.store.put_staging(Box::pin(body), limit).await?;
    state.store.promote(&staged.key, &ObjectKey::Delta(staged.sha256)).await?;
    Ok(staged.sha256)
}
