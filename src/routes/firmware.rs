//! `firmware`: what watches and the phone app call: the update check, release metadata and
//! manifests, trusted keys, image downloads and status reports.

use actix_web::http::header::{self, EntityTag, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{Caller, OptionalCaller};
use crate::catalog::PublicRelease;
use crate::domain::{Channel, DeviceId, HardwareId, Version};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::{BadInput, Conflict, JsonBody, NeedsToken, NotFound};
use crate::openapi::{ChannelName, DeviceName, HardwareName, SemVer};
use crate::routes::http::{if_none_match, parse_id};
use crate::routes::json::Json;
use crate::routes::{chunks, delta, download};
use crate::services::offers::{self, CheckRequest, CheckResponse, PublicReleaseList};
use crate::services::reports::{self, ReportRequest, ReportView};
use crate::signing::KeyList;
use crate::signing::ManifestEnvelope;
use crate::state::AppState;

/// `check` and `keys` before `{id}`, which would take them for release ids.
pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(check)
        .service(keys)
        .service(list)
        .service(get_release)
        .service(signed_manifest)
        .service(download::serve)
        .service(download::head)
        .service(delta::serve)
        .service(delta::head)
        .service(chunks::serve)
        .service(chunks::head)
        .service(report);
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// The device's hardware id.
    #[param(required = true, value_type = HardwareName)]
    hardware: Option<String>,
    /// The installed version.
    #[param(required = true, value_type = SemVer)]
    version: Option<String>,
    /// The device's stable id.
    #[param(required = true, value_type = DeviceName)]
    device_id: Option<String>,
    /// The device's channel; default: the most stable.
    #[param(value_type = Option<ChannelName>, nullable = false)]
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
#[utoipa::path(
    tag = "firmware",
    security(("bearer" = [])),
    params(
        CheckQuery,
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "The ETag of an offer"),
    ),
    responses(
        (status = 200, description = "Install this now", body = CheckResponse, headers(("ETag" = String, description = "Weak validator of the offer"))),
        (status = 204, description = "Nothing to install"),
        (status = 304, description = "The offer named by If-None-Match still stands"),
        BadInput,
        NeedsToken,
        (status = 429, description = "This device checked again within firmware.min_check_interval_s", body = ErrorBody, headers(("Retry-After" = u64, description = "Whole seconds until the device may check again"))),
    )
)]
#[get("/v1/firmware/check")]
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
    let etag = EntityTag::new_weak(offer.tag());
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Releases for this hardware id.
    #[param(required = true, value_type = HardwareName)]
    hardware: Option<String>,
    /// Default: the most stable channel.
    #[param(value_type = Option<ChannelName>, nullable = false)]
    channel: Option<String>,
}

/// `GET /v1/firmware`: published releases visible on a channel, newest first (for changelogs).
#[utoipa::path(
    tag = "firmware",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Published releases visible on the channel, newest first", body = PublicReleaseList),
        BadInput,
        NeedsToken,
    )
)]
#[get("/v1/firmware")]
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
#[utoipa::path(
    tag = "firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    responses(
        (status = 200, description = "Public metadata", body = PublicRelease),
        BadInput,
        NeedsToken,
        NotFound,
    )
)]
#[get("/v1/firmware/{id}")]
pub async fn get_release(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(offers::public_release(&state, &caller, parse_id(&id)?).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ManifestQuery {
    /// Needed only when the release is built for several hardware ids.
    #[param(value_type = Option<HardwareName>, nullable = false)]
    hardware: Option<String>,
    /// Default: the most stable channel the release is on.
    #[param(value_type = Option<ChannelName>, nullable = false)]
    channel: Option<String>,
}

/// `GET /v1/firmware/{id}/manifest?hardware=&channel=`: the signed manifest of an offered
/// release. `hardware` may be left out when the release has one; `channel` defaults to the most
/// stable one it is published on.
#[utoipa::path(
    operation_id = "manifest",
    tag = "firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id"), ManifestQuery),
    responses(
        (status = 200, description = "The signed manifest", body = ManifestEnvelope),
        BadInput,
        NeedsToken,
        NotFound,
    )
)]
#[get("/v1/firmware/{id}/manifest")]
pub async fn signed_manifest(
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
#[utoipa::path(
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    responses((status = 200, description = "Keys that verify manifests", body = KeyList), NeedsToken)
)]
#[get("/v1/firmware/keys")]
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
#[utoipa::path(
    tag = "firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    request_body = ReportRequest,
    responses(
        (status = 200, description = "The device's latest status for this release", body = ReportView),
        BadInput,
        NeedsToken,
        (status = 403, description = "This token may not report for this device (another account owns it, or the token's device claim does not name it)", body = ErrorBody),
        NotFound,
        Conflict,
        JsonBody,
        (status = 429, description = "Too many reports from this account or for this device (limits.*)", body = ErrorBody, headers(("Retry-After" = u64, description = "Whole seconds until the next report is accepted"))),
    )
)]
#[post("/v1/firmware/{id}/report")]
#[tracing::instrument(skip_all, fields(firmware_id = %id))]
pub async fn report(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<ReportRequest>,
) -> Result<HttpResponse, ApiError> {
    let view = reports::submit(&state, &caller, parse_id(&id)?, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view))
}
