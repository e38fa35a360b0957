//! Prometheus metrics, one registry per application: HTTP requests by route pattern (never the
//! raw path, which would explode the label set) and status, latency histograms, image bytes in
//! and out, update-check outcomes, delta builds and the bytes patches saved, rollout states (read at scrape time) and proxy traffic.
//!
//! Every label value comes from a fixed set, whatever clients send: the method ([`method_label`]),
//! the route pattern (or "proxy", "unmatched"), the status code our handlers or the configured
//! upstream chose (at most 900 values), a configured proxy tag, a fixed outcome or state. A label
//! a client could choose would add series, and memory, for good with every new value.

use actix_web::http::Method;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub upload_bytes: IntCounter,
    pub download_bytes: IntCounter,
    pub update_checks: IntCounterVec,
    pub rollouts: IntGaugeVec,
    pub proxy_requests: IntCounterVec,
    pub proxy_upstream_errors: IntCounterVec,
    pub deltas_built: IntCounterVec,
    pub delta_download_bytes: IntCounter,
    pub delta_bytes_saved: IntCounter,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("nowatch_ota".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route pattern and status"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to the response head, by route pattern",
            )
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
            &["method", "route"],
        )?;
        let upload_bytes = IntCounter::new("upload_bytes_total", "Image bytes received by uploads")?;
        let download_bytes = IntCounter::new("download_bytes_total", "Image bytes sent by downloads")?;
        let update_checks = IntCounterVec::new(
            Opts::new("update_checks_total", "Update checks by outcome: offered, none, not_modified"),
            &["outcome"],
        )?;
        let rollouts = IntGaugeVec::new(Opts::new("rollouts", "Rollouts by state"), &["state"])?;
        let proxy_requests = IntCounterVec::new(
            Opts::new("proxy_requests_total", "Requests forwarded to the backend, by API tag and status"),
            &["tag", "status"],
        )?;
        let proxy_upstream_errors = IntCounterVec::new(
            Opts::new("proxy_upstream_errors_total", "Forwarding failures by API tag and kind"),
            &["tag", "kind"],
        )?;
        let deltas_built = IntCounterVec::new(
            Opts::new(
                "deltas_built_total",
                "Patch builds by this instance, by outcome: ready, skipped, failed",
            ),
            &["outcome"],
        )?;
        let delta_download_bytes =
            IntCounter::new("delta_download_bytes_total", "Patch bytes sent by delta downloads")?;
        let delta_bytes_saved = IntCounter::new(
            "delta_bytes_saved_total",
            "Image bytes not sent because a device took a patch: image size minus patch size, per delta \
             download that reached the patch's last byte",
        )?;
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(upload_bytes.clone()),
            Box::new(download_bytes.clone()),
            Box::new(update_checks.clone()),
            Box::new(rollouts.clone()),
            Box::new(proxy_requests.clone()),
            Box::new(proxy_upstream_errors.clone()),
            Box::new(deltas_built.clone()),
            Box::new(delta_download_bytes.clone()),
            Box::new(delta_bytes_saved.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            upload_bytes,
            download_bytes,
            update_checks,
            rollouts,
            proxy_requests,
            proxy_upstream_errors,
            deltas_built,
            delta_download_bytes,
            delta_bytes_saved,
        })
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> prometheus::Result<String> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The `method` label: the method's name for the standard ones, "other" for every other token a
/// client may send (HTTP allows any), each of which would otherwise add series for good.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}
