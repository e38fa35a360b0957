//! Chunk tables: every published image gets one (`nowatch_ota_core::chunks`), built when it is
//! first published, before its rollout exists, so no manifest of a published release goes out
//! without it. Releases published before tables existed, and tables whose object is gone from
//! the store, are built by the backfill every instance runs at start-up and with each storage
//! sweep. A table is read from the image as it streams (one chunk's hash state in memory, never
//! the image), checked against the image's size and SHA-256, and stored content-addressed as
//! `chunks/<sha256>` through staging like an upload; the row then records it with a conditional
//! update, so two instances that build one table at once record it once.

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::chunks::{ChunkHasher, table_len};
use crate::db;
use crate::domain::{FirmwareState, Sha256Digest};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::{BlobStream, ObjectKey, StorageError};

/// Gives release `id` a chunk table of `firmware.chunk_size` if it has none; whether it recorded
/// one. A table recorded whose object is gone from the store (lost, or deleted by a sweep that
/// raced the publish that recorded it) is built again with the row's chunk size: the same bytes
/// under the same key. A missing release or image is the caller's 404 or 409, as elsewhere.
pub async fn ensure(state: &AppState, id: Uuid) -> Result<bool, ApiError> {
    let release = db::firmware::find(&state.db, id).await?.ok_or_else(|| ApiError::firmware_not_found(id))?;
    // A revoked release is never offered again; its publish is refused with 409 after this.
    if release.row.state == FirmwareState::Revoked {
        return Ok(false);
    }
    let recorded = match (release.row.chunk_size, &release.row.chunk_table_sha256) {
        (Some(chunk_size), Some(sha256)) => {
            let key = ObjectKey::Chunks(Sha256Digest::parse(sha256).map_err(ApiError::internal)?);
            if state.store.size(&key).await?.is_some() {
                return Ok(false);
            }
            tracing::warn!(firmware_id = %id, table = %sha256, "chunk table missing from the store; building it again");
            Some(u32::try_from(chunk_size).map_err(ApiError::internal)?)
        }
        _ => None,
    };
    let chunk_size = recorded.unwrap_or(state.settings.firmware.chunk_size);
    let staged = build(state, id, &release.row, chunk_size).await?;
    if recorded.is_some() {
        return Ok(false);
    }
    let set = db::chunk_tables::set(&state.db, id, chunk_size, &staged.to_hex()).await?;
    if set {
        tracing::info!(firmware_id = %id, chunk_size, table = %staged, "chunk table built");
    }
    Ok(set)
}

/// Builds and stores the table of `row`'s image; its digest.
async fn build(
    state: &AppState,
    id: Uuid,
    row: &crate::db::entities::firmware::Model,
    chunk_size: u32,
) -> Result<Sha256Digest, ApiError> {
    let digest = Sha256Digest::parse(&row.sha256).map_err(ApiError::internal)?;
    let size = u64::try_from(row.size).map_err(ApiError::internal)?;
    let image = match state.store.open(&ObjectKey::Firmware(digest), None).await {
        Err(StorageError::NotFound(_)) => {
            return Err(ApiError::Conflict(format!(
                "firmware {id}: its image is missing from blob storage; upload it again"
            )));
        }
        other => other?,
    };
    let table = table_stream(image, chunk_size, size, *digest.as_bytes());
    let staged = state.store.put_staging(table, table_len(size, chunk_size)).await?;
    state.store.promote(&staged.key, &ObjectKey::Chunks(staged.sha256)).await?;
    Ok(staged.sha256)
}

/// The table of `image` as a stream of its entries; fails at the end unless the image had the
/// `size` and SHA-256 its row says (a store that gives back other bytes must not be signed for).
fn table_stream(
    image: BlobStream,
    chunk_size: u32,
    size: u64,
    sha256: [u8; 32],
) -> impl Stream<Item = Result<Bytes, StorageError>> + Unpin {
    let state = Some((image, ChunkHasher::new(chunk_size)));
    Box::pin(futures_util::stream::unfold(state, move |state| async move {
        let (mut image, mut hasher) = state?;
        let mut entries = Vec::new();
        match image.next().await {
            Some(Ok(bytes)) => {
                hasher.update(&bytes, &mut entries);
                Some((Ok(Bytes::from(entries)), Some((image, hasher))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None => {
                let (read, digest) = hasher.finish(&mut entries);
                let answer = match (read, digest) == (size, sha256) {
                    true => Ok(Bytes::from(entries)),
                    false => Err(StorageError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "the stored image is not the one its release names ({read} bytes read, {size} expected)"
                        ),
                    ))),
                };
                Some((answer, None))
            }
        }
    }))
}

/// Builds the missing tables of published releases, and those whose object is gone from the
/// store; how many it recorded. One query for the published releases' tables and one listing of
/// `chunks/` find them, so a pass where nothing is missing (the usual one) reads no image and
/// asks the store nothing per release. A failure is logged and left for the next pass; it does
/// not hold back the others.
pub async fn backfill(state: &AppState) -> anyhow::Result<usize> {
    let stored: HashSet<String> =
        state.store.list(ObjectKey::CHUNKS_PREFIX).await?.into_iter().map(|o| o.key).collect();
    let mut built = 0;
    for (id, table) in db::chunk_tables::published(&state.db).await? {
        let present =
            table.is_some_and(|sha256| stored.contains(&format!("{}{sha256}", ObjectKey::CHUNKS_PREFIX)));
        if present {
            continue;
        }
        match ensure(state, id).await {
            Ok(true) => {
                built += 1;
                state.release_changed(id).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(firmware_id = %id, error = %e, "could not build a chunk table"),
        }
    }
    Ok(built)
}
