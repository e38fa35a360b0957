//! `/healthz` (the process answers) and `/readyz` (the database and blob store answer, and how
//! the proxy's upstream is doing). A 503 says what is down and, for the database, why in a few
//! fixed words (`database unreachable: connection refused`), never its URL.
//!
//! Readiness is about what this service needs to do its own work: without the database or the
//! blob store it cannot, and `/readyz` is 503 so that a load balancer stops sending it traffic.
//! The full backend behind the proxy is another matter: update checks, downloads, reports and
//! the admin API all work without it, and every instance shares the same upstream, so taking
//! instances out of rotation when it fails would turn a partial outage into a total one. So with
//! `proxy.upstream` set, `/readyz` stays 200 and says `"upstream": "ok"`, `"unreachable"` or
//! `"timeout"`, with `"status": "degraded"` when it is not ok; the probe is a `HEAD` of the
//! upstream's base path that any answer passes, bounded by [`UPSTREAM_PROBE_TIMEOUT`]. Without an
//! upstream the field is absent.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use serde_json::json;

use crate::error::{ApiError, ErrorBody};
use crate::proxy::{Forwarder, UpstreamHealth};
use crate::state::AppState;
use utoipa_actix_web::service_config::ServiceConfig;

/// The longest `/readyz` waits for the upstream.
pub const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// The body of a 200 from `/readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, or `degraded` when the upstream is not ok.
    pub status: &'static str,
    /// Always `ok` (otherwise the answer is 503).
    pub database: &'static str,
    /// Always `ok` (otherwise the answer is 503).
    pub storage: &'static str,
    /// `ok`, `unreachable` or `timeout`; absent when no `proxy.upstream` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'static str>,
}

#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The process answers", body = Object))
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Database and blob store answer; `upstream` says whether the proxied backend does (not a condition of readiness)", body = Readiness),
        (status = 503, description = "Not ready: the database or the blob store does not answer", body = ErrorBody),
    )
)]
#[get("/readyz")]
#[tracing::instrument(skip_all)]
pub async fn readyz(
    state: web::Data<AppState>,
    forwarder: web::Data<Forwarder>,
) -> Result<HttpResponse, ApiError> {
    let (database, storage, upstream) = tokio::join!(
        crate::db::ping(&state.db),
        state.store.check(),
        forwarder.probe(UPSTREAM_PROBE_TIMEOUT)
    );
    let mut problems = Vec::new();
    if let Err(e) = database {
        tracing::warn!(error = %e, "readiness: database unreachable");
        let why = crate::db::unavailable_reason(&e, state.settings.database.acquire_timeout_s);
        problems.push(format!("database unreachable: {why}"));
    }
    if let Err(e) = storage {
        tracing::warn!(error = %e, "readiness: blob storage unreachable");
        problems.push(format!("{} blob storage unreachable", state.store.backend_name()));
    }
    if !problems.is_empty() {
        return Err(ApiError::ServiceUnavailable(problems.join("; ")));
    }
    let degraded = upstream.is_some_and(|h| h != UpstreamHealth::Ok);
    if degraded {
        tracing::warn!(
            upstream = upstream.map(UpstreamHealth::as_str),
            "readiness: the proxy upstream is not answering"
        );
    }
    Ok(HttpResponse::Ok().json(Readiness {
        status: if degraded { "degraded" } else { "ready" },
        database: "ok",
        storage: "ok",
        upstream: upstream.map(UpstreamHealth::as_str),
    }))
}
