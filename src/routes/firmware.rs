//! `firmware`: what watches and the phone app call: the update check, release metadata and
//! manifests, trusted keys, image downloads and status reports.

use actix_web::http::header::{self, EntityTag, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::{Caller, OptionalCaller};
#[allow(unused_imports)]
use crate::catalog::PublicRelease;
use crate::domain::{Channel, DeviceId, HardwareId, Version};
use crate::error::ApiError;
use crate::routes::download;
use crate::routes::http::{if_none_match, parse_id};
#[allow(unused_imports)]
use crate::services::offers::CheckResponse;
use crate::services::offers::{self, CheckRequest, PublicReleaseList};
#[allow(unused_imports)]
use crate::services::reports::ReportView;
use crate::services::reports::{self, ReportRequest};
use crate::signing::KeyList;
#[allow(unused_imports)]
use crate::signing::ManifestEnvelope;
use crate::state::AppState;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/firmware/check").route(web::get().to(check)))
        .service(web::resource("/v1/firmware/keys").route(web::get().to(keys)))
        .service(web::resource("/v1/firmware").route(web::get().to(list)))
        .service(web::resource("/v1/firmware/{id}").route(web::get().to(get_release)))
        .service(web::resource("/v1/firmware/{id}/manifest").route(web::get().to(manifest)))
        .service(
            web::resource("/v1/firmware/{id}/download")
                .route(web::get().to(download::serve))
                .route(web::head().to(download::head)),
        )
        .service(web::resource("/v1/firmware/{id}/report").route(web::post().to(report)));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    hardware: Option<String>,
    version: Option<String>,
    device_id: Option<String>,
    channel: Option<String>,
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or_else(|| ApiError::field(name, "is required"))
}

/// Parses `channel` (default: the most stable) into its rank.
fn channel_rank(state: &AppState, channel: Option<&str>) -> Result<usize, ApiError> {
    let channels = &state.settings.firmware.channels;
    let Some(raw) = channel else { return Ok(0) };
    let channel = Channel::parse(raw).map_err(|e| ApiError::field("channel", e))?;
    channels
        .iter()
        .position(|c| c == channel.as_str())
        .ok_or_else(|| ApiError::field("channel", format!("{raw:?} is not one of {}", channels.join(", "))))
}

/// Where clients reach this service, for download links: `server.public_url` (which production
/// requires), else this connection's scheme and `Host`. Never a forwarding header: a client's
/// `X-Forwarded-Host` would point the link elsewhere, and a shared cache could keep it.
fn base_url(state: &AppState, req: &HttpRequest) -> String {
    let configured = state.settings.server.public_url.trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let scheme = if req.app_config().secure() { "https" } else { "http" };
    let host = req.headers().get(actix_web::http::header::HOST).and_then(|h| h.to_str().ok());
    format!("{scheme}://{}", host.unwrap_or_else(|| req.app_config().host()))
}

/// `GET /v1/firmware/check`: answered from the in-memory catalog, never the database.
#[utoipa::path(get, path = "/v1/firmware/check", tag = "firmware", security(("bearer" = [])), params(("hardware" = String, Query, description = "Hardware id", example = "nw-s1"), ("version" = String, Query, description = "Installed version (semver)", example = "1.2.0"), ("device_id" = String, Query, description = "Stable device id", example = "watch-0001"), ("channel" = Option<String>, Query, description = "Default: the most stable channel", example = "beta")), responses((status = 200, description = "Install this now", body = CheckResponse, headers(("ETag" = String, description = "Weak validator of the offer"))), (status = 204, description = "Nothing to install"), (status = 304, description = "The offer named by If-None-Match still stands"), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 429, description = "This device checked again within firmware.min_check_interval_s", body = crate::error::ErrorBody, headers(("Retry-After" = u64, description = "Whole seconds until the device may check again")))))]
pub async fn check(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<CheckQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = CheckRequest {
        hardware: HardwareId::parse(required(&query.hardware, "hardware")?)
            .map_err(|e| ApiError::field("hardware", e))?,
        current: Version::parse(required(&query.version, "version")?)
            .map_err(|e| ApiError::field("version", e))?,
        device_id: DeviceId::parse(required(&query.device_id, "device_id")?)
            .map_err(|e| ApiError::field("device_id", e))?,
        channel_rank: channel_rank(&state, query.channel.as_deref())?,
    };
    let Some(offer) = offers::check(&state, &caller, &request)? else {
        return Ok(HttpResponse::NoContent().insert_header((header::CACHE_CONTROL, "no-store")).finish());
    };
    let etag = EntityTag::new_weak(offer.manifest.tag.clone());
    if if_none_match(&req, &etag) {
        state.metrics.update_checks.with_label_values(&["not_modified"]).inc();
        return Ok(HttpResponse::NotModified().insert_header(header::ETag(etag)).finish());
    }
    state.metrics.update_checks.with_label_values(&["offered"]).inc();
    let poll = state.settings.firmware.poll_after_s;
    let jitter = if poll >= 10 { rand::random_range(0..=poll / 10) } else { 0 };
    let body = offer.response(&base_url(&state, &req), poll - poll / 20 + jitter);
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(etag))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    hardware: Option<String>,
    channel: Option<String>,
}

/// `GET /v1/firmware`: published releases visible on a channel, newest first (for changelogs).
#[utoipa::path(get, path = "/v1/firmware", tag = "firmware", security(("bearer" = [])), params(("hardware" = String, Query, description = "Hardware id"), ("channel" = Option<String>, Query, description = "Default: the most stable channel")), responses((status = 200, description = "Published releases visible on the channel, newest first", body = PublicReleaseList), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let hardware = HardwareId::parse(required(&query.hardware, "hardware")?)
        .map_err(|e| ApiError::field("hardware", e))?;
    let rank = channel_rank(&state, query.channel.as_deref())?;
    let releases = offers::list(&state, &caller, &hardware, rank);
    Ok(HttpResponse::Ok().json(PublicReleaseList::new(&releases)))
}

/// `GET /v1/firmware/{id}`: a published or revoked release's public metadata (drafts are 404).
#[utoipa::path(get, path = "/v1/firmware/{id}", tag = "firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Release id")), responses((status = 200, description = "Public metadata", body = PublicRelease), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
pub async fn get_release(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(offers::public_release(&state, &caller, parse_id(&id)?).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestQuery {
    hardware: Option<String>,
    channel: Option<String>,
}

/// `GET /v1/firmware/{id}/manifest?hardware=&channel=`: the signed manifest of an offered
/// release. `hardware` may be left out when the release has one; `channel` defaults to the most
/// stable one it is published on.
#[utoipa::path(get, path = "/v1/firmware/{id}/manifest", tag = "firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Release id"), ("hardware" = Option<String>, Query, description = "Required when the release has several hardware ids"), ("channel" = Option<String>, Query, description = "Default: the most stable channel it is on")), responses((status = 200, description = "The signed manifest", body = ManifestEnvelope), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody)))]
pub async fn manifest(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<ManifestQuery>,
) -> Result<HttpResponse, ApiError> {
    let hardware = query
        .hardware
        .as_deref()
        .map(HardwareId::parse)
        .transpose()
        .map_err(|e| ApiError::field("hardware", e))?;
    let rank = query.channel.as_deref().map(|c| channel_rank(&state, Some(c))).transpose()?;
    let manifest = offers::manifest(&state, &caller, parse_id(&id)?, hardware, rank)?;
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(EntityTag::new_weak(manifest.tag.clone())))
        .json(&manifest.json))
}

/// `GET /v1/firmware/keys`: the public keys that verify manifests.
#[utoipa::path(get, path = "/v1/firmware/keys", tag = "firmware", security((), ("bearer" = [])), responses((status = 200, description = "Keys that verify manifests", body = KeyList), (status = 401, description = "A token is needed unless auth.public_downloads", body = crate::error::ErrorBody)))]
pub async fn keys(state: web::Data<AppState>, caller: OptionalCaller) -> Result<HttpResponse, ApiError> {
    if caller.0.is_none() && !state.settings.auth.public_downloads {
        return Err(crate::auth::AuthError::Missing.into());
    }
    let mut response = HttpResponse::Ok();
    if state.settings.auth.public_downloads {
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")));
    }
    Ok(response.json(KeyList { keys: state.signer.key_infos() }))
}

/// `POST /v1/firmware/{id}/report`.
#[utoipa::path(post, path = "/v1/firmware/{id}/report", tag = "firmware", security(("bearer" = [])), params(("id" = uuid::Uuid, Path, description = "Release id")), request_body = ReportRequest, responses((status = 200, description = "The device's latest status for this release", body = ReportView), (status = 400, description = "Bad input, naming the field", body = crate::error::ErrorBody), (status = 401, description = "No valid token", body = crate::error::ErrorBody), (status = 403, description = "This token may not report for this device (another account owns it, or the token's device claim does not name it)", body = crate::error::ErrorBody), (status = 404, description = "Not found", body = crate::error::ErrorBody), (status = 409, description = "Conflicts with the current state", body = crate::error::ErrorBody), (status = 429, description = "Too many reports from this account or for this device (limits.*)", body = crate::error::ErrorBody, headers(("Retry-After" = u64, description = "Whole seconds until the next report is accepted")))))]
#[tracing::instrument(skip_all, fields(firmware_id = %id))]
pub async fn report(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<ReportRequest>,
) -> Result<HttpResponse, ApiError> {
    let view = reports::submit(&state, &caller, parse_id(&id)?, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view))
}
