//! Reading an upload's multipart body: the `metadata` part first, then the `file` part streamed
//! into the store, each read waiting at most `firmware.upload_idle_timeout_s` for bytes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_multipart::{Field, Multipart};
use actix_web::HttpRequest;
use futures_util::TryStreamExt;

use crate::error::ApiError;
use crate::services::upload::UploadMetadata;
use crate::storage::{BlobStore, IdleTimeout, StagedBlob};

/// Largest `metadata` part accepted.
const MAX_METADATA_BYTES: usize = 128 * 1024;

/// Room in an upload's `Content-Length` for what is not the image: the metadata part and the
/// multipart framing (boundaries, part headers).
const MULTIPART_ALLOWANCE: u64 = MAX_METADATA_BYTES as u64 + 64 * 1024;

/// A body that announces more than the image limit plus [`MULTIPART_ALLOWANCE`] is 413 before a
/// byte of it is read; one that announces nothing (chunked) is held to the limit as it streams.
pub fn refuse_announced_oversize(req: &HttpRequest, max_upload_bytes: u64) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(actix_web::http::header::CONTENT_LENGTH) else {
        return Ok(());
    };
    let length: u64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::field("Content-Length", "not a number"))?;
    if length > max_upload_bytes.saturating_add(MULTIPART_ALLOWANCE) {
        return Err(ApiError::PayloadTooLarge(format!(
            "file: the body announces {length} bytes, more than firmware.max_upload_bytes ({max_upload_bytes}) allows"
        )));
    }
    Ok(())
}

/// The next part, if it starts within `idle`.
async fn next_part(multipart: &mut Multipart, idle: Duration) -> Result<Option<Field>, ApiError> {
    tokio::time::timeout(idle, multipart.try_next())
        .await
        .map_err(|_| stalled(idle))?
        .map_err(|e| ApiError::bad_request(format!("body: malformed multipart: {e}")))
}

/// The 408 of an upload whose body stopped for `firmware.upload_idle_timeout_s`.
fn stalled(idle: Duration) -> ApiError {
    ApiError::RequestTimeout(format!("body: nothing received for {} s", idle.as_secs()))
}

/// The parts of an upload, read in order.
pub struct UploadParts {
    multipart: Multipart,
    idle: Duration,
}

impl UploadParts {
    pub fn new(multipart: Multipart, idle_timeout_s: u64) -> Self {
        Self { multipart, idle: Duration::from_secs(idle_timeout_s) }
    }

    /// The first part, which must be `metadata` (at most [`MAX_METADATA_BYTES`]).
    pub async fn metadata(&mut self) -> Result<UploadMetadata, ApiError> {
        let idle = self.idle;
        match next_part(&mut self.multipart, idle).await? {
            Some(mut field) if field.name() == Some("metadata") => {
                let bytes = tokio::time::timeout(idle, field.bytes(MAX_METADATA_BYTES))
                    .await
                    .map_err(|_| stalled(idle))?
                    .map_err(|_| {
                        ApiError::field("metadata", format!("must be at most {MAX_METADATA_BYTES} bytes"))
                    })?
                    .map_err(|e| ApiError::bad_request(format!("body: malformed multipart: {e}")))?;
                crate::routes::json::parse_part::<UploadMetadata>(&bytes, "metadata")
            }
            Some(field) if field.name() == Some("file") => {
                Err(ApiError::bad_request("file: arrived before metadata; send the metadata part first"))
            }
            Some(field) => Err(ApiError::bad_request(format!(
                "body: unexpected part {:?}; expected \"metadata\" then \"file\"",
                field.name().unwrap_or_default()
            ))),
            None => Err(ApiError::bad_request("metadata: missing part")),
        }
    }

    /// The second part, `file`, streamed into a staging object of `store` (at most `limit`
    /// bytes); nothing may follow it.
    pub async fn file_into(&mut self, store: &BlobStore, limit: u64) -> Result<StagedBlob, ApiError> {
        let idle = self.idle;
        let file = match next_part(&mut self.multipart, idle).await? {
            Some(field) if field.name() == Some("file") => field,
            Some(field) => {
                return Err(ApiError::bad_request(format!(
                    "body: unexpected part {:?}; expected \"file\"",
                    field.name().unwrap_or_default()
                )));
            }
            None => return Err(ApiError::bad_request("file: missing part")),
        };
        let file = IdleTimeout::new(file, idle);
        let file_stalled = file.stalled();
        let staged = match store.put_staging(file, limit).await {
            Err(_) if file_stalled.load(Ordering::Relaxed) => return Err(stalled(idle)),
            staged => staged?,
        };
        if let Some(extra) = next_part(&mut self.multipart, idle).await.transpose() {
            store.delete(&staged.key).await.ok();
            let name = extra.ok().and_then(|f| f.name().map(str::to_owned)).unwrap_or_default();
            return Err(ApiError::bad_request(format!("body: unexpected part {name:?} after file")));
        }
        Ok(staged)
    }
}
