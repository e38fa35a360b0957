//! What became of proxied requests and probes, and the proxy's share of `/metrics`.

use actix_web::http::StatusCode;

/// What became of a proxied request, for the metrics hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status (its body may still be streaming).
    Answered(StatusCode),
    /// No `proxy.upstream` is configured: 503.
    NoUpstream,
    /// The request body was over `proxy.max_body_bytes`: 413.
    TooLarge,
    /// The client's request body broke off or stalled: 400 or 408.
    ClientFailed,
    /// The upstream could not be reached or answered garbage: 502.
    Unreachable,
    /// The upstream did not answer within the timeout: 504.
    TimedOut,
    /// The upstream's response body broke off or stalled after the head was sent.
    BodyFailed,
}

/// What a readiness probe learnt about the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamHealth {
    /// It answered (with any status).
    Ok,
    /// The connection failed: refused, reset, TLS, or not HTTP.
    Unreachable,
    /// No answer within the probe's time limit: down behind a firewall, or hanging.
    Timeout,
}

impl UpstreamHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
        }
    }
}

/// The proxy's share of `/metrics`: requests by tag (the prefix's last segment: `measurement`,
/// `auth`, ...) and status, and upstream failures by tag and kind.
#[derive(Clone)]
pub struct ProxyMetrics {
    requests: prometheus::IntCounterVec,
    upstream_errors: prometheus::IntCounterVec,
}

impl ProxyMetrics {
    pub fn new(metrics: &crate::metrics::Metrics) -> Self {
        Self {
            requests: metrics.proxy_requests.clone(),
            upstream_errors: metrics.proxy_upstream_errors.clone(),
        }
    }

    /// Called once for every proxied request, and again if its response body fails.
    pub fn record(&self, tag: &str, outcome: Outcome) {
        let status = match outcome {
            Outcome::Answered(status) => status.as_u16(),
            Outcome::NoUpstream => 503,
            Outcome::TooLarge => 413,
            Outcome::ClientFailed => 400,
            Outcome::Unreachable => 502,
            Outcome::TimedOut => 504,
            Outcome::BodyFailed => {
                self.upstream_errors.with_label_values(&[tag, "body_failed"]).inc();
                return;
            }
        };
        match outcome {
            Outcome::Unreachable => self.upstream_errors.with_label_values(&[tag, "unreachable"]).inc(),
            Outcome::TimedOut => self.upstream_errors.with_label_values(&[tag, "timeout"]).inc(),
            _ => {}
        }
        self.requests.with_label_values(&[tag, &status.to_string()]).inc();
    }
}
