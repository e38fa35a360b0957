//! Multipart uploads, and making sure their parts do not outlive them. S3 keeps (and bills) the
//! parts of an upload that was neither completed nor aborted, and lists them nowhere an object
//! listing shows. So an upload is aborted on every way it can fail: an error from the client's
//! body or from S3 (awaited), and the upload's future being dropped (the abort is spawned). An
//! abort S3 could not take, being down, is kept and retried by the sweep, which also aborts
//! staging uploads older than `storage.staging_ttl_s` that S3 lists (a process that died
//! mid-upload); on AWS a lifecycle rule does the same (README, "Operations").

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

use super::s3_errors::sdk_error;
use super::{ObjectKey, StorageError};

/// One multipart upload, by key and id.
#[derive(Debug, Clone)]
pub(super) struct UploadRef {
    key: String,
    upload_id: String,
}

/// Aborts that failed, to be retried by the sweep.
#[derive(Default)]
pub(super) struct PendingAborts(Mutex<Vec<UploadRef>>);

impl PendingAborts {
    fn push(&self, upload: UploadRef) {
        if let Ok(mut pending) = self.0.lock() {
            pending.push(upload);
        }
    }

    fn take(&self) -> Vec<UploadRef> {
        self.0.lock().map(|mut pending| std::mem::take(&mut *pending)).unwrap_or_default()
    }
}

/// What the store needs to talk to S3 about multipart uploads.
#[derive(Clone)]
pub(super) struct Bucket {
    pub client: Client,
    pub name: String,
    pub pending: Arc<PendingAborts>,
    /// Whether the log has said that the store cannot list multipart uploads (said once).
    pub told_unlisted: Arc<AtomicBool>,
}

impl Bucket {
    pub async fn start(&self, key: &ObjectKey) -> Result<MultipartUpload, StorageError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.name)
            .key(key.to_string())
            .content_type(key.content_type())
            .send()
            .await
            .map_err(sdk_error)?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::S3("CreateMultipartUpload returned no upload id".into()))?;
        Ok(MultipartUpload {
            bucket: self.clone(),
            upload: Some(UploadRef { key: key.to_string(), upload_id: upload_id.to_owned() }),
            parts: Vec::new(),
        })
    }

    /// Aborts the upload; if S3 cannot be reached, remembers it for the sweep.
    async fn abort(&self, upload: UploadRef) -> bool {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.name)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .send()
            .await;
        match aborted {
            Ok(_) => true,
            // Already gone (aborted by a lifecycle rule, or an earlier retry that got through).
            Err(e) if e.as_service_error().is_some_and(|e| e.code() == Some("NoSuchUpload")) => true,
            Err(e) => {
                let error = sdk_error(e);
                tracing::warn!(key = %upload.key, %error, "could not abort a multipart upload; the sweep will retry");
                self.pending.push(upload);
                false
            }
        }
    }

    /// Retries the aborts that failed; returns how many went through.
    pub async fn retry_aborts(&self) -> usize {
        let mut done = 0;
        for upload in self.pending.take() {
            done += usize::from(self.abort(upload).await);
        }
        done
    }

    /// Aborts staging uploads S3 lists as started before `cutoff`. `None` when the store does not
    /// implement ListMultipartUploads (s3s-fs): then only the aborts this process remembers are
    /// retried, and a lifecycle rule must do the rest.
    pub async fn abort_started_before(&self, cutoff: SystemTime) -> Result<Option<usize>, StorageError> {
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        let mut stale = Vec::new();
        loop {
            let listed = self
                .client
                .list_multipart_uploads()
                .bucket(&self.name)
                .prefix(ObjectKey::STAGING_PREFIX)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await;
            let page = match listed {
                Ok(page) => page,
                Err(e) if not_implemented(&e) => return Ok(None),
                Err(e) => return Err(sdk_error(e)),
            };
            for upload in page.uploads() {
                let started = upload.initiated().and_then(|t| SystemTime::try_from(*t).ok());
                if let (Some(key), Some(upload_id), Some(started)) =
                    (upload.key(), upload.upload_id(), started)
                    && started <= cutoff
                {
                    stale.push(UploadRef { key: key.to_owned(), upload_id: upload_id.to_owned() });
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        let mut aborted = 0;
        for upload in stale {
            aborted += usize::from(self.abort(upload).await);
        }
        Ok(Some(aborted))
    }
}

/// Whether S3 answered that it does not implement the call (`NotImplemented`, HTTP 501).
fn not_implemented(e: &SdkError<ListMultipartUploadsError, HttpResponse>) -> bool {
    e.as_service_error().and_then(|e| e.code()) == Some("NotImplemented")
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 501)
}

/// A multipart upload in progress. Dropped before [`Self::complete`] or [`Self::abort`] (the
/// request's future was dropped), it aborts itself on a task of its own.
pub(super) struct MultipartUpload {
    bucket: Bucket,
    /// `None` once completed or aborted.
    upload: Option<UploadRef>,
    parts: Vec<CompletedPart>,
}

impl MultipartUpload {
    pub async fn send_part(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        let Some(upload) = &self.upload else {
            return Err(StorageError::S3("a part sent to a finished multipart upload".into()));
        };
        let number = self.parts.len() as i32 + 1;
        let part = self
            .bucket
            .client
            .upload_part()
            .bucket(&self.bucket.name)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(sdk_error)?;
        self.parts.push(
            CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(str::to_owned)).build(),
        );
        Ok(())
    }

    pub async fn complete(&mut self) -> Result<(), StorageError> {
        let Some(upload) = &self.upload else {
            return Err(StorageError::S3("a finished multipart upload completed again".into()));
        };
        self.bucket
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket.name)
            .key(&upload.key)
            .upload_id(&upload.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(self.parts.clone())).build())
            .send()
            .await
            .map_err(sdk_error)?;
        self.upload = None;
        Ok(())
    }

    pub async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            self.bucket.abort(upload).await;
        }
    }
}

impl Drop for MultipartUpload {
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let bucket = self.bucket.clone();
                runtime.spawn(async move { bucket.abort(upload).await });
            }
            // No runtime to abort on (the process is ending): the sweep's listing or the
            // bucket's lifecycle rule removes the parts.
            Err(_) => self.bucket.pending.push(upload),
        }
    }
}
