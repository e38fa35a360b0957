//! The two body streams: the client's request body on its way up (counted against the limit,
//! its progress watched by the timeout) and the upstream's response body on its way down (cut
//! off when the upstream stalls). Neither holds more than the chunk in hand.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use super::{Outcome, ProxyMetrics};

/// What the request body stream tells the forwarder: when bytes last moved, whether it is
/// waiting on the client, and how it failed.
#[derive(Debug)]
pub struct Progress {
    last: Cell<Instant>,
    waiting_on_client: Cell<bool>,
    failure: Cell<Option<BodyFailure>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// More bytes than `proxy.max_body_bytes`.
    TooLarge,
    /// The client's body broke off (disconnect, bad chunk encoding).
    Client,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            last: Cell::new(Instant::now()),
            waiting_on_client: Cell::new(false),
            failure: Cell::new(None),
        }
    }

    pub fn last(&self) -> Instant {
        self.last.get()
    }

    pub fn waiting_on_client(&self) -> bool {
        self.waiting_on_client.get()
    }

    pub fn failure(&self) -> Option<BodyFailure> {
        self.failure.get()
    }
}

/// The client's body, failing once it passes `limit` bytes.
pub struct RequestBody<S> {
    inner: S,
    seen: u64,
    limit: u64,
    progress: std::rc::Rc<Progress>,
}

impl<S> RequestBody<S> {
    pub fn new(inner: S, limit: u64, progress: std::rc::Rc<Progress>) -> Self {
        Self { inner, seen: 0, limit, progress }
    }
}

impl<S> Stream for RequestBody<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = this.inner.poll_next_unpin(cx);
        this.progress.waiting_on_client.set(polled.is_pending());
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Ok(chunk))) => {
                this.progress.last.set(Instant::now());
                this.seen += chunk.len() as u64;
                if this.seen > this.limit {
                    this.progress.failure.set(Some(BodyFailure::TooLarge));
                    return Poll::Ready(Some(Err(std::io::Error::other("request body over the limit"))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.progress.failure.set(Some(BodyFailure::Client));
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
        }
    }
}

/// The upstream's body, ended with an error (so the client sees a cut-off response, never a
/// complete-looking short one) when no byte comes for `idle`. The idle clock only runs while this
/// stream is being asked for more, so a slow client is not mistaken for a slow upstream.
pub struct ResponseBody<S> {
    inner: S,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    waiting: bool,
    tag: String,
    metrics: ProxyMetrics,
    request_id: String,
}

impl<S> ResponseBody<S> {
    pub fn new(inner: S, idle: Duration, tag: String, request_id: String, metrics: ProxyMetrics) -> Self {
        Self {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            tag,
            metrics,
            request_id,
        }
    }
}

impl<S> Stream for ResponseBody<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if !this.waiting {
            this.waiting = true;
            let deadline = Instant::now() + this.idle;
            this.sleep.as_mut().reset(deadline);
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(request_id = %this.request_id, tag = %this.tag, error = %e, "proxy: upstream response body failed");
                this.metrics.record(&this.tag, Outcome::BodyFailed);
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    tracing::warn!(request_id = %this.request_id, tag = %this.tag, idle_s = this.idle.as_secs(), "proxy: upstream response body stalled");
                    this.metrics.record(&this.tag, Outcome::BodyFailed);
                    Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "upstream response body stalled",
                    ))))
                }
            },
        }
    }
}
