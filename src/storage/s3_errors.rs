//! S3 failures as [`StorageError`]s, for the store and its multipart uploads.

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};

use super::StorageError;

pub(super) fn s3_error(e: impl std::error::Error) -> StorageError {
    // DisplayErrorContext prints the whole source chain, which the log needs.
    StorageError::S3(DisplayErrorContext(e).to_string())
}

/// A failed S3 call: `Unavailable` when the request could not be sent or got no answer in time
/// (S3 down, restarting, unreachable), `S3` for anything S3 answered.
pub(super) fn sdk_error<E, R>(e: SdkError<E, R>) -> StorageError
where
    SdkError<E, R>: std::error::Error,
{
    let unreachable = matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_));
    let message = DisplayErrorContext(&e).to_string();
    if unreachable { StorageError::Unavailable(message) } else { StorageError::S3(message) }
}
