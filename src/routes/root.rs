//! `firmware` (root of trust): every version of the signed root document, for devices walking
//! from the root they pinned to the newest. The documents are signed offline, so serving them
//! asks no trust of this service; like the key list they need a token unless
//! `auth.public_downloads`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::OptionalCaller;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::{BadInput, NeedsToken};
use crate::signing::RootEnvelope;
use crate::state::AppState;

/// Mounted before `/v1/firmware/{id}`, which would take `root` for a release id.
pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(newest).service(version);
}

fn answer(
    state: &AppState,
    caller: &OptionalCaller,
    document: &str,
    max_age_s: u32,
) -> Result<HttpResponse, ApiError> {
    if caller.0.is_none() && !state.settings.auth.public_downloads {
        return Err(crate::auth::AuthError::Missing.into());
    }
    let mut response = HttpResponse::Ok();
    if state.settings.auth.public_downloads {
        let cache = format!("public, max-age={max_age_s}");
        if let Ok(value) = HeaderValue::from_str(&cache) {
            response.insert_header((header::CACHE_CONTROL, value));
        }
    }
    Ok(response.content_type("application/json").body(document.to_owned()))
}

/// `GET /v1/firmware/root`: the newest root document.
#[utoipa::path(
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    responses(
        (status = 200, description = "The newest signed root document: which keys sign manifests, which are retired or revoked, until when, and which root keys (and how many) must sign the next version", body = RootEnvelope),
        NeedsToken,
    )
)]
#[get("/v1/firmware/root")]
pub async fn newest(state: web::Data<AppState>, caller: OptionalCaller) -> Result<HttpResponse, ApiError> {
    let roots = &state.roots;
    let document = roots.document(roots.newest_version()).map(|d| d.to_string()).unwrap_or_default();
    answer(&state, &caller, &document, 300)
}

/// `GET /v1/firmware/root/{version}`: one version, for a device walking from the one it holds.
#[utoipa::path(
    tag = "firmware",
    security(("bearer" = [])),
    extensions(("x-anonymous-when" = json!("auth.public_downloads"))),
    params(("version" = u64, Path, minimum = 1, description = "Root version, from 1", example = 2)),
    responses(
        (status = 200, description = "That version of the signed root document", body = RootEnvelope),
        BadInput,
        NeedsToken,
        (status = 404, description = "No such version yet: the device has the newest", body = ErrorBody),
    )
)]
#[get("/v1/firmware/root/{version}")]
pub async fn version(
    state: web::Data<AppState>,
    caller: OptionalCaller,
    version: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let number: u64 = version
        .parse()
        .ok()
        .filter(|&v| v >= 1)
        .ok_or_else(|| ApiError::field("version", "must be a whole number from 1"))?;
    let document = state.roots.document(number).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no root version {number}; the newest is {}",
            state.roots.newest_version()
        ))
    })?;
    // A version never changes once published.
    answer(&state, &caller, document, 86_400)
}
