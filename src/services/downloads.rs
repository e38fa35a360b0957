//! Who may download which image, and how caches may keep it.

use crate::auth::{AuthError, Caller};
use crate::catalog::ChunkTable;
use crate::db;
use crate::domain::{FirmwareState, Sha256Digest};
use crate::error::ApiError;
use crate::services::channel_access::sees_any;
use crate::services::releases::{self, not_found};
use crate::state::AppState;
use crate::storage::ObjectKey;

/// A release's image that the caller may download.
pub struct Image {
    pub key: ObjectKey,
    pub size: u64,
    pub sha256: String,
    /// Published on a channel an anonymous caller may see, with `auth.public_downloads`: a
    /// shared cache may keep it.
    pub public: bool,
}

impl Image {
    /// The image never changes under its URL; only public ones go to shared caches.
    pub fn cache_control(&self) -> &'static str {
        match self.public {
            true => "public, max-age=31536000, immutable",
            false => "private, max-age=31536000, immutable",
        }
    }
}

/// The image of release `id` if `caller` may download it: a published release on a channel it
/// may see (`firmware.channel_roles`); drafts and revoked ones for admins only. Anything else
/// is 404, as if the release did not exist. Without a token: 401 unless `auth.public_downloads`.
pub async fn find_image(
    state: &AppState,
    id: uuid::Uuid,
    caller: Option<&Caller>,
) -> Result<Image, ApiError> {
    let public_downloads = state.settings.auth.public_downloads;
    if caller.is_none() && !public_downloads {
        return Err(AuthError::Missing.into());
    }
    let access = &state.channel_access;
    let (visible, anonymous) = (access.visible(caller), access.visible(None));
    if let Some(offered) = state.catalog.snapshot().by_id.get(&id) {
        if !sees_any(visible, &offered.channel_ranks) {
            return Err(not_found(id));
        }
        return Ok(Image {
            key: offered.blob_key.clone(),
            size: offered.size,
            sha256: offered.sha256.clone(),
            public: public_downloads && sees_any(anonymous, &offered.channel_ranks),
        });
    }
    // Published releases whose rollouts were all aborted are not in the catalog but stay
    // downloadable, so a device that started may finish.
    let release = releases::view(state, id).await?.release;
    let published = release.state == FirmwareState::Published;
    let seen = releases::visible_to(state, visible, id).await?;
    let admin = caller.is_some_and(|c| c.is_admin);
    if !(admin || published && seen) {
        return Err(not_found(id));
    }
    // Only asked when it matters (the Cache-Control of public downloads): one query fewer.
    let public = published && public_downloads && releases::visible_to(state, anonymous, id).await?;
    let digest = Sha256Digest::parse(&release.sha256).map_err(ApiError::internal)?;
    Ok(Image {
        key: ObjectKey::Firmware(digest),
        size: u64::try_from(release.size).map_err(ApiError::internal)?,
        public,
        sha256: release.sha256,
    })
}

/// A ready patch to release `id` from the image with digest `from_sha256`, if `caller` may
/// download the release itself (the same rules, and the same 404 for what it may not see);
/// with the full image's size, for the bytes the patch saves.
pub async fn find_delta(
    state: &AppState,
    id: uuid::Uuid,
    from_sha256: &str,
    caller: Option<&Caller>,
) -> Result<(Image, u64), ApiError> {
    let from = Sha256Digest::parse(from_sha256).map_err(|e| ApiError::field("from_sha256", e))?.to_hex();
    let image = find_image(state, id, caller).await?;
    let no_patch = || ApiError::NotFound(format!("firmware {id} has no delta from {from}"));
    let offered = state.catalog.snapshot().by_id.get(&id).and_then(|release| {
        let mut patches = release.deltas.values().flat_map(|by_version| by_version.values());
        patches.find(|p| p.from_sha256 == from).map(|p| (p.sha256.clone(), p.size))
    });
    let (sha256, size) = match offered {
        Some(patch) => patch,
        None => {
            let row = db::deltas::ready_from(&state.db, id, &from).await?.ok_or_else(no_patch)?;
            let (Some(sha256), Some(size)) = (row.sha256, row.size) else { return Err(no_patch()) };
            (sha256, u64::try_from(size).map_err(ApiError::internal)?)
        }
    };
    let digest = Sha256Digest::parse(&sha256).map_err(ApiError::internal)?;
    let full_size = image.size;
    Ok((Image { key: ObjectKey::Delta(digest), size, sha256, public: image.public }, full_size))
}

/// Release `id`'s chunk table if `caller` may download the release (the same rules, and the
/// same 404 for what it may not see): from the catalog or, for a release outside it, its row.
pub async fn find_chunk_table(
    state: &AppState,
    id: uuid::Uuid,
    caller: Option<&Caller>,
) -> Result<Image, ApiError> {
    let image = find_image(state, id, caller).await?;
    let offered = state.catalog.snapshot().by_id.get(&id).and_then(|o| o.chunks.clone());
    let table = match offered {
        Some(table) => Some(table),
        None => match db::firmware::find(&state.db, id).await?.ok_or_else(|| not_found(id))?.row {
            row if row.state == FirmwareState::Draft => None,
            row => ChunkTable::of(&row),
        },
    };
    let table = table.ok_or_else(|| ApiError::NotFound(format!("firmware {id} has no chunk table yet")))?;
    let digest = Sha256Digest::parse(&table.sha256).map_err(ApiError::internal)?;
    Ok(Image { key: ObjectKey::Chunks(digest), size: table.len, sha256: table.sha256, public: image.public })
}
