//! Hashing and counting bytes as they stream, with the size limit enforced on the way; ending
//! a body that stops moving.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::time::Sleep;

use super::StorageError;
use crate::domain::Sha256Digest;

/// Feeds every chunk through SHA-256 and a byte count; errors once the count passes `limit`.
pub struct HashingCounter {
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl HashingCounter {
    pub fn new(limit: u64) -> Self {
        Self { hasher: Sha256::new(), size: 0, limit }
    }

    pub fn update(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(StorageError::TooLarge(self.limit));
        }
        self.hasher.update(chunk);
        Ok(())
    }

    pub fn finish(self) -> (u64, Sha256Digest) {
        (self.size, Sha256Digest::from_bytes(self.hasher.finalize().into()))
    }
}

/// Ends a body that sends nothing for `idle` with an error, and says so through
/// [`Self::stalled`]: without it, a client that stops sending mid-upload holds its buffers (a
/// part of up to `storage.s3.part_size_bytes`) and its staging object for as long as it likes.
pub struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    stalled: Arc<AtomicBool>,
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, idle: Duration) -> Self {
        Self { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)), stalled: Arc::default() }
    }

    /// Set once the body stalled (the stream then ended with an error).
    pub fn stalled(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stalled)
    }
}

impl<S, T, E> Stream for IdleTimeout<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<T, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stalled.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(item) => {
                let next = tokio::time::Instant::now() + self.idle;
                self.deadline.as_mut().reset(next);
                Poll::Ready(item.map(|r| r.map_err(|e| e.to_string())))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.stalled.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(format!("no data for {} s", self.idle.as_secs()))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
