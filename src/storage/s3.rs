//! The S3 backend (AWS or any S3-compatible server). Uploads stream through one part buffer of
//! at most `storage.s3.part_size_bytes`, grown as the bytes arrive (an upload that stalls early
//! holds what it sent, not a whole part): a stream that fits in one part is a single PutObject,
//! a larger one a multipart upload that is aborted if anything fails (`s3_multipart`). Promotion is CopyObject + delete
//! (images stay under CopyObject's 5 GiB limit because `firmware.max_upload_bytes` is validated
//! below it).

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use secrecy::ExposeSecret;

use super::s3_errors::{s3_error, sdk_error};
use super::s3_multipart::{Bucket, MultipartUpload, PendingAborts};
use super::{BlobStream, ByteRange, HashingCounter, ObjectInfo, ObjectKey, StorageError};
use crate::config::S3Settings;
use crate::domain::Sha256Digest;

pub struct S3Store {
    client: Client,
    /// Signs download URLs for `storage.s3.public_endpoint`, the host clients reach the store
    /// at (the same client when it is not set). Presigning makes no request.
    presigner: Client,
    bucket: String,
    part_size: usize,
    multipart: Bucket,
}

impl S3Store {
    pub async fn new(settings: &S3Settings) -> anyhow::Result<Self> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()));
        if !settings.endpoint.is_empty() {
            loader = loader.endpoint_url(&settings.endpoint);
        }
        if !settings.access_key_id.is_empty() {
            loader = loader.credentials_provider(Credentials::new(
                &settings.access_key_id,
                settings.secret_access_key.expose_secret(),
                None,
                None,
                "nowatch-ota-config",
            ));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.path_style);
        let client = Client::from_conf(config.clone().build());
        let presigner = if settings.public_endpoint.is_empty() {
            client.clone()
        } else {
            Client::from_conf(config.endpoint_url(&settings.public_endpoint).build())
        };
        let multipart = Bucket {
            client: client.clone(),
            name: settings.bucket.clone(),
            pending: std::sync::Arc::new(PendingAborts::default()),
            told_unlisted: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        Ok(Self {
            client,
            presigner,
            bucket: settings.bucket.clone(),
            part_size: settings.part_size_bytes,
            multipart,
        })
    }

    pub(super) async fn put<S>(
        &self,
        key: &ObjectKey,
        mut body: S,
    ) -> Result<(u64, Sha256Digest), StorageError>
    where
        S: Stream<Item = Result<Bytes, StorageError>> + Unpin,
    {
        let mut counter = HashingCounter::default();
        let mut buffer = Vec::new();
        let mut upload: Option<MultipartUpload> = None;
        let result: Result<(), StorageError> = async {
            while let Some(chunk) = body.next().await {
                let mut chunk = chunk?;
                counter.update(&chunk);
                while !chunk.is_empty() {
                    let take = chunk.len().min(self.part_size - buffer.len());
                    grow(&mut buffer, take, self.part_size);
                    buffer.extend_from_slice(&chunk.split_to(take));
                    if buffer.len() == self.part_size {
                        let part = Bytes::from(std::mem::take(&mut buffer));
                        if upload.is_none() {
                            upload = Some(self.multipart.start(key).await?);
                        }
                        if let Some(upload) = upload.as_mut() {
                            upload.send_part(part).await?;
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        let result = match (result, upload) {
            (Ok(()), None) => self.put_whole(key, Bytes::from(buffer)).await,
            (Ok(()), Some(mut upload)) => {
                let finished = async {
                    if !buffer.is_empty() {
                        upload.send_part(Bytes::from(buffer)).await?;
                    }
                    upload.complete().await
                }
                .await;
                if finished.is_err() {
                    upload.abort().await;
                }
                finished
            }
            (Err(e), Some(upload)) => {
                upload.abort().await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        };
        result.map(|()| counter.finish())
    }

    async fn put_whole(&self, key: &ObjectKey, bytes: Bytes) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .content_type(key.content_type())
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    pub(super) async fn rename(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{from}", self.bucket))
            .key(to.to_string())
            .content_type(to.content_type())
            .send()
            .await
            .map_err(sdk_error)?;
        self.delete(from).await
    }

    pub(super) async fn size(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        match self.client.head_object().bucket(&self.bucket).key(key.to_string()).send().await {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    pub(super) async fn open(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<BlobStream, StorageError> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(key.to_string());
        if let Some(range) = range {
            request = request.range(format!("bytes={}-{}", range.start, range.end));
        }
        let object = match request.send().await {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(StorageError::NotFound(key.to_string()));
            }
            Err(e) => return Err(sdk_error(e)),
        };
        let stream = futures_util::stream::unfold(object.body, |mut body| async move {
            let next = body.next().await?;
            Some((next.map_err(s3_error), body))
        });
        Ok(stream.boxed())
    }

    pub(super) async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> Result<String, StorageError> {
        let config = PresigningConfig::expires_in(ttl).map_err(s3_error)?;
        let request = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .presigned(config)
            .await
            .map_err(sdk_error)?;
        Ok(request.uri().to_owned())
    }

    pub(super) async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.to_string())
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut pages =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for object in page.map_err(sdk_error)?.contents() {
                let modified = object
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push(ObjectInfo {
                    key: object.key().unwrap_or_default().to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    modified,
                });
            }
        }
        Ok(out)
    }

    /// Deletes the object unless S3 says it was modified after `cutoff` (a CopyObject onto it,
    /// a promote, makes it new), asked right before the delete; whether it deleted. S3 has no
    /// delete conditional on the modified time, so a promote between the two calls (one round
    /// trip) can still lose its image; the filesystem store has no such window.
    pub(super) async fn delete_if_unmodified_since(
        &self,
        key: &ObjectKey,
        cutoff: SystemTime,
    ) -> Result<bool, StorageError> {
        let head = match self.client.head_object().bucket(&self.bucket).key(key.to_string()).send().await {
            Ok(head) => head,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(false),
            Err(e) => return Err(sdk_error(e)),
        };
        let modified = head.last_modified().and_then(|t| SystemTime::try_from(*t).ok());
        if modified.is_none_or(|m| m > cutoff) {
            return Ok(false);
        }
        self.delete(key).await?;
        Ok(true)
    }

    /// Retries the aborts that failed and aborts staging multipart uploads started before
    /// `cutoff`; how many. A store without ListMultipartUploads (s3s-fs) gets the retries only.
    pub(super) async fn abort_incomplete(&self, cutoff: SystemTime) -> Result<usize, StorageError> {
        let retried = self.multipart.retry_aborts().await;
        match self.multipart.abort_started_before(cutoff).await? {
            Some(aborted) => Ok(retried + aborted),
            None => {
                if !self.multipart.told_unlisted.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::info!(
                        "this S3 store does not list multipart uploads: incomplete uploads this process did not start are left to the bucket's lifecycle rule"
                    );
                }
                Ok(retried)
            }
        }
    }

    pub(super) async fn check(&self) -> Result<(), StorageError> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(sdk_error)?;
        Ok(())
    }
}

/// Makes room in a part buffer for `more` bytes: doubling, so a part is copied about twice in
/// all, but never past `part_size`, and allocated only as the bytes arrive.
fn grow(buffer: &mut Vec<u8>, more: usize, part_size: usize) {
    let needed = buffer.len() + more;
    if needed > buffer.capacity() {
        let target = needed.max(buffer.capacity() * 2).min(part_size);
        buffer.reserve_exact(target - buffer.len());
    }
}
