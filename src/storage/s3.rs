//! The S3 backend (AWS or any S3-compatible server). Uploads stream through one part buffer of
//! `storage.s3.part_size_bytes`: a stream that fits in one part is a single PutObject, a larger
//! one a multipart upload that is aborted if anything fails. Promotion is CopyObject + delete
//! (images stay under CopyObject's 5 GiB limit because `firmware.max_upload_bytes` is validated
//! below it).

use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::{BlobStream, ByteRange, HashingCounter, ObjectInfo, ObjectKey, StorageError};
use crate::config::S3Settings;
use crate::domain::Sha256Digest;

pub struct S3Store {
    client: Client,
    bucket: String,
    part_size: usize,
}

fn s3_error(e: impl std::error::Error) -> StorageError {
    // DisplayErrorContext prints the whole source chain, which the log needs.
    StorageError::S3(DisplayErrorContext(e).to_string())
}

/// A failed S3 call: `Unavailable` when the request could not be sent or got no answer in time
/// (S3 down, restarting, unreachable), `S3` for anything S3 answered.
fn sdk_error<E, R>(e: SdkError<E, R>) -> StorageError
where
    SdkError<E, R>: std::error::Error,
{
    let unreachable = matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_));
    let message = DisplayErrorContext(&e).to_string();
    if unreachable { StorageError::Unavailable(message) } else { StorageError::S3(message) }
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
                &settings.secret_access_key,
                None,
                None,
                "nowatch-ota-config",
            ));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.path_style).build();
        Ok(Self {
            client: Client::from_conf(config),
            bucket: settings.bucket.clone(),
            part_size: settings.part_size_bytes,
        })
    }

    pub(super) async fn put<S, E>(
        &self,
        key: &ObjectKey,
        mut body: S,
        limit: u64,
    ) -> Result<(u64, Sha256Digest), StorageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut counter = HashingCounter::new(limit);
        let mut buffer = BytesMut::with_capacity(self.part_size);
        let mut upload: Option<MultipartUpload> = None;
        let result: Result<(), StorageError> = async {
            while let Some(chunk) = body.next().await {
                let mut chunk =
                    chunk.map_err(|e| StorageError::Client(format!("file: upload interrupted: {e}")))?;
                counter.update(&chunk)?;
                while !chunk.is_empty() {
                    let take = chunk.len().min(self.part_size - buffer.len());
                    buffer.extend_from_slice(&chunk.split_to(take));
                    if buffer.len() == self.part_size {
                        let part = buffer.split().freeze();
                        if upload.is_none() {
                            upload = Some(self.start_multipart(key).await?);
                        }
                        if let Some(upload) = upload.as_mut() {
                            upload.send_part(self, part).await?;
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        let result = match (result, upload) {
            (Ok(()), None) => self.put_whole(key, buffer.freeze()).await,
            (Ok(()), Some(mut upload)) => {
                let finished = async {
                    if !buffer.is_empty() {
                        upload.send_part(self, buffer.freeze()).await?;
                    }
                    upload.complete(self).await
                }
                .await;
                if finished.is_err() {
                    upload.abort(self).await;
                }
                finished
            }
            (Err(e), Some(upload)) => {
                upload.abort(self).await;
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

    async fn start_multipart(&self, key: &ObjectKey) -> Result<MultipartUpload, StorageError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.to_string())
            .content_type(key.content_type())
            .send()
            .await
            .map_err(sdk_error)?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::S3("CreateMultipartUpload returned no upload id".into()))?;
        Ok(MultipartUpload { key: key.to_string(), upload_id: upload_id.to_owned(), parts: Vec::new() })
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
            .client
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

    pub(super) async fn check(&self) -> Result<(), StorageError> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(sdk_error)?;
        Ok(())
    }
}

/// A multipart upload in progress.
struct MultipartUpload {
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

impl MultipartUpload {
    async fn send_part(&mut self, store: &S3Store, bytes: Bytes) -> Result<(), StorageError> {
        let number = self.parts.len() as i32 + 1;
        let part = store
            .client
            .upload_part()
            .bucket(&store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
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

    async fn complete(&self, store: &S3Store) -> Result<(), StorageError> {
        store
            .client
            .complete_multipart_upload()
            .bucket(&store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(self.parts.clone())).build())
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn abort(&self, store: &S3Store) {
        let aborted = store
            .client
            .abort_multipart_upload()
            .bucket(&store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(key = %self.key, error = %s3_error(e), "could not abort a multipart upload");
        }
    }
}
