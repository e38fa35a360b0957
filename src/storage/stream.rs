//! Uploads as they stream: the size limit (one guard for both stores), hashing and counting,
//! and the end of a body that stops moving.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::time::Sleep;

use super::StorageError;
use crate::domain::Sha256Digest;

/// An upload's body as the stores read it: its own errors become the client's (`file: upload
/// interrupted`), and it ends with [`StorageError::TooLarge`] once more than `limit` bytes have
/// come, before the chunk that passes the limit is handed on.
pub struct SizeGuard<S> {
    inner: S,
    seen: u64,
    limit: u64,
}

impl<S> SizeGuard<S> {
    pub fn new(inner: S, limit: u64) -> Self {
        Self { inner, seen: 0, limit }
    }
}

impl<S, E> Stream for SizeGuard<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, StorageError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        Poll::Ready(match std::task::ready!(Pin::new(&mut this.inner).poll_next(cx)) {
            None => None,
            Some(Err(e)) => Some(Err(StorageError::Client(format!("file: upload interrupted: {e}")))),
            Some(Ok(chunk)) => {
                this.seen += chunk.len() as u64;
                Some(if this.seen > this.limit { Err(StorageError::TooLarge(this.limit)) } else { Ok(chunk) })
            }
        })
    }
}

/// Feeds every chunk through SHA-256 and a byte count.
#[derive(Default)]
pub struct HashingCounter {
    hasher: Sha256,
    size: u64,
}

impl HashingCounter {
    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.hasher.update(chunk);
    }

    pub fn finish(self) -> (u64, Sha256Digest) {
        (self.size, Sha256Digest::from_bytes(self.hasher.finalize().into()))
    }
}

/// Ends a body that sends nothing for `idle` with an error, and says so through
/// [`Self::stalled`]: without it, a client that stops sending mid-upload holds its buffers (a
/// part of up to `storage.s3.part_size_bytes`) and its staging object for as long as it likes.
///
/// The clock runs only while the reader waits for the body: time the service spends elsewhere
/// between two reads (sending a part to a slow S3, a full write queue) is not the client's.
pub struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Whether the last poll found nothing, so the clock is running since it started.
    waiting: bool,
    stalled: Arc<AtomicBool>,
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, idle: Duration) -> Self {
        let deadline = Box::pin(tokio::time::sleep(idle));
        Self { inner, idle, deadline, waiting: false, stalled: Arc::default() }
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
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            self.waiting = false;
            return Poll::Ready(item.map(|r| r.map_err(|e| e.to_string())));
        }
        if !self.waiting {
            self.waiting = true;
            let deadline = tokio::time::Instant::now() + self.idle;
            self.deadline.as_mut().reset(deadline);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(format!("no data for {} s", self.idle.as_secs()))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};
    use std::time::Duration;

    use futures_util::{Stream, StreamExt};

    use super::IdleTimeout;

    fn poll_once<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
        stream.poll_next_unpin(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test]
    async fn time_the_reader_spends_elsewhere_is_not_counted_as_the_body_stalling() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Result<u8, String>>();
        let received =
            futures_util::stream::unfold(receiver, |mut r| async move { Some((r.recv().await?, r)) });
        let mut body = IdleTimeout::new(Box::pin(received), Duration::from_millis(100));
        sender.send(Ok(1)).unwrap();
        assert_eq!(body.next().await, Some(Ok(1)));
        // The reader is busy (a slow part upload) for three times the idle timeout...
        tokio::time::sleep(Duration::from_millis(300)).await;
        // ...and only then waits: the body has not stalled yet.
        assert!(poll_once(&mut body).is_pending());
        sender.send(Ok(2)).unwrap();
        assert_eq!(body.next().await, Some(Ok(2)));
        // Nothing comes for longer than the timeout while it waits: that is a stall.
        let ended = body.next().await;
        assert!(matches!(ended, Some(Err(ref e)) if e.contains("no data")), "{ended:?}");
        assert!(body.stalled().load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(body.next().await, None);
        drop(sender);
    }
}
