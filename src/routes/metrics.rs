//! `GET /metrics`: Prometheus text format, for anyone or only for scrapers that send
//! `metrics.token` as a bearer token.

use actix_web::{HttpRequest, HttpResponse, get, web};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(metrics);
}

#[utoipa::path(
    tag = "operations",
    security(("metrics_token" = [])),
    extensions(("x-anonymous-when" = json!("metrics.token"))),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "`metrics.token` is set and the request does not carry it as a bearer token", body = ErrorBody, headers(("WWW-Authenticate" = String, description = "Bearer"))),
    )
)]
#[get("/metrics")]
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !may_read(state.settings.metrics.token.expose_secret(), &req) {
        return Err(ApiError::Unauthorized("metrics: the metrics token is required".into()));
    }
    let body = crate::services::metrics_scrape::render(&state).await?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body))
}

/// Whether `req` may read the metrics: always without a configured token, else only with it as
/// its bearer token. Compared as SHA-256 digests in constant time, so neither the time taken nor
/// an early exit says how much of a guess was right, or how long the token is.
fn may_read(token: &str, req: &HttpRequest) -> bool {
    if token.is_empty() {
        return true;
    }
    let Ok(Some(presented)) = crate::auth::bearer(req) else {
        return false;
    };
    let (presented, expected) = (Sha256::digest(presented.as_bytes()), Sha256::digest(token.as_bytes()));
    presented.as_slice().ct_eq(expected.as_slice()).into()
}
