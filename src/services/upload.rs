//! Upload: the metadata is checked before a byte of the image is read; the image streams into a
//! staging object while it is hashed and sized; only once it is verified (expected digest,
//! release signature, version conflicts) is it moved to `firmware/<sha256>` and the row written.
//! Whatever fails, no row is written and the staging object is deleted (or swept later).

use chrono::Utc;
use sea_orm::SqlErr;
use serde::Deserialize;
use uuid::Uuid;

use crate::db::entities::firmware;
use crate::db::{self};
use crate::domain::{FirmwareState, HardwareId, Sha256Digest, Version};
use crate::error::ApiError;
use crate::services::releases::{MAX_RELEASE_NOTES, ReleaseView};
use crate::state::AppState;
use crate::storage::{ObjectKey, StagedBlob};

/// The `metadata` part of an upload.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadMetadata {
    #[schema(value_type = crate::openapi::SemVer)]
    pub version: Version,
    #[schema(value_type = Vec<crate::openapi::HardwareName>, min_items = 1, max_items = 64)]
    pub hardware: Vec<HardwareId>,
    /// At most 64 KiB.
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub release_notes: String,
    /// Devices below it cannot install this release directly; below `version`.
    #[schema(value_type = Option<crate::openapi::SemVer>)]
    pub min_from_version: Option<Version>,
    #[serde(default)]
    pub mandatory: bool,
    /// The upload is refused unless the image has this SHA-256.
    #[schema(value_type = Option<crate::openapi::Sha256Hex>)]
    pub expected_sha256: Option<Sha256Digest>,
    /// Base64 release signature (`nowatch-ota sign`), checked against the release keys.
    pub release_signature: Option<String>,
}

/// Whether the upload made a new release or found the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    Created,
    AlreadyExists,
}

/// Checks what can be checked before the image arrives.
pub fn check_metadata(state: &AppState, metadata: &mut UploadMetadata) -> Result<(), ApiError> {
    if metadata.hardware.is_empty() {
        return Err(ApiError::field("metadata.hardware", "must list at least one hardware id"));
    }
    metadata.hardware.sort();
    metadata.hardware.dedup();
    if metadata.hardware.len() > 64 {
        return Err(ApiError::field("metadata.hardware", "must list at most 64 hardware ids"));
    }
    if metadata.release_notes.len() > MAX_RELEASE_NOTES {
        return Err(ApiError::field(
            "metadata.release_notes",
            format!("must be at most {MAX_RELEASE_NOTES} bytes"),
        ));
    }
    if metadata.min_from_version.as_ref().is_some_and(|m| *m >= metadata.version) {
        return Err(ApiError::field("metadata.min_from_version", "must be below version"));
    }
    if state.settings.signing.require_release_signature && metadata.release_signature.is_none() {
        return Err(ApiError::field("metadata.release_signature", "is required by this server"));
    }
    Ok(())
}

/// Verifies a staged image and makes it a draft release (or finds the identical one).
/// Consumes the staging object in every outcome.
pub async fn commit(
    state: &AppState,
    metadata: UploadMetadata,
    staged: StagedBlob,
    actor: &str,
) -> Result<(UploadOutcome, ReleaseView), ApiError> {
    let result = commit_staged(state, metadata, &staged, actor).await;
    let staging_left = result.is_err() || matches!(result, Ok((UploadOutcome::AlreadyExists, _)));
    if staging_left && let Err(e) = state.store.delete(&staged.key).await {
        tracing::warn!(key = %staged.key, error = %e, "could not delete a staging upload; the sweep will");
    }
    result
}

async fn commit_staged(
    state: &AppState,
    metadata: UploadMetadata,
    staged: &StagedBlob,
    actor: &str,
) -> Result<(UploadOutcome, ReleaseView), ApiError> {
    check_file(state, &metadata, staged)?;
    let hardware: Vec<String> = metadata.hardware.iter().map(|h| h.to_string()).collect();
    let version_key = metadata.version.precedence_key();
    if let Some(outcome) = existing(state, &metadata, &version_key, &hardware, staged).await? {
        return Ok(outcome);
    }

    let final_key = ObjectKey::Firmware(staged.sha256);
    state.store.promote(&staged.key, &final_key).await?;

    let row = draft_row(&metadata, version_key.clone(), staged, actor)?;
    let inserted = async {
        let txn = crate::db::begin_write(&state.db).await?;
        let release = db::firmware::insert(&txn, row, &hardware).await?;
        txn.commit().await?;
        Ok::<_, sea_orm::DbErr>(release)
    }
    .await;
    match inserted {
        Ok(release) => Ok((UploadOutcome::Created, ReleaseView::new(release, Vec::new()))),
        // A concurrent upload of the same version won the race: answer as if it had come first.
        // The promoted image, if now unreferenced, is left to the sweep.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            existing(state, &metadata, &version_key, &hardware, staged).await?.ok_or_else(|| {
                ApiError::Conflict(format!("version {} was uploaded concurrently", metadata.version))
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The new draft's row.
fn draft_row(
    metadata: &UploadMetadata,
    version_key: String,
    staged: &StagedBlob,
    actor: &str,
) -> Result<firmware::Model, ApiError> {
    let now = Utc::now();
    Ok(firmware::Model {
        id: Uuid::new_v4(),
        version: metadata.version.to_string(),
        version_key,
        size: i64::try_from(staged.size).map_err(ApiError::internal)?,
        sha256: staged.sha256.to_hex(),
        release_signature: metadata.release_signature.clone(),
        release_notes: metadata.release_notes.clone(),
        min_from_version: metadata.min_from_version.as_ref().map(|v| v.to_string()),
        mandatory: metadata.mandatory,
        state: FirmwareState::Draft,
        created_by: actor.to_owned(),
        created_at: now,
        updated_at: now,
        published_at: None,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        // Built at publish (`services::chunks`): a draft is never relayed.
        chunk_size: None,
        chunk_table_sha256: None,
    })
}

/// The file as received: not empty, the SHA-256 the metadata expects, signed by a trusted
/// release key if it carries a signature.
fn check_file(state: &AppState, metadata: &UploadMetadata, staged: &StagedBlob) -> Result<(), ApiError> {
    if staged.size == 0 {
        return Err(ApiError::field("file", "must not be empty"));
    }
    if let Some(expected) = &metadata.expected_sha256
        && *expected != staged.sha256
    {
        return Err(ApiError::field(
            "metadata.expected_sha256",
            format!("does not match the uploaded file (its SHA-256 is {})", staged.sha256),
        ));
    }
    if let Some(signature) = &metadata.release_signature
        && !state.release_keys.verify(&staged.sha256, signature)
    {
        return Err(ApiError::field(
            "metadata.release_signature",
            "is not a valid signature of the file's SHA-256 by a trusted release key",
        ));
    }
    Ok(())
}

/// The same version for any of the hardware ids already exists: the same upload again (same
/// bytes, same hardware) answers with it; anything else conflicts.
async fn existing(
    state: &AppState,
    metadata: &UploadMetadata,
    version_key: &str,
    hardware: &[String],
    staged: &StagedBlob,
) -> Result<Option<(UploadOutcome, ReleaseView)>, ApiError> {
    let mut conflicts = db::firmware::find_version_conflicts(&state.db, version_key, hardware).await?;
    let Some(first) = conflicts.pop() else {
        return Ok(None);
    };
    let same =
        conflicts.is_empty() && first.row.sha256 == staged.sha256.to_hex() && first.hardware == hardware;
    if same {
        let id = first.row.id;
        let channels = db::firmware::channels(&state.db, &[id]).await?.remove(&id).unwrap_or_default();
        return Ok(Some((UploadOutcome::AlreadyExists, ReleaseView::new(first, channels))));
    }
    Err(ApiError::Conflict(format!(
        "version {} already exists for hardware {} as firmware {} with other contents",
        metadata.version,
        first.hardware.join(", "),
        first.row.id
    )))
}
