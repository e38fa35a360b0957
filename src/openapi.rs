//! The OpenAPI document. Each route and its `#[utoipa::path]` are registered together where the
//! routes are mounted ([`crate::startup`], through `utoipa-actix-web`), so the document lists
//! exactly the routes the service answers; this module holds what no single handler owns: the
//! document's head and security schemes, the response sets and input rules the handlers share,
//! and what the settings change in the document
//! ([`for_settings`]: which channels exist, which routes need a token).

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

use crate::config::Settings;
use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nowatch-ota",
        description = "Firmware over-the-air service of the NOWATCH platform: the `firmware` and \
            `admin-firmware` tags. Every other NOWATCH tag is forwarded to the full backend. \
            Errors use the NOWATCH shape (`ErrorBody`); every response carries `x-request-id`. \
            A method a path does not take is 405 with `Allow`. A request the HTTP/1.1 parser \
            refuses (a NUL or other control byte in a header, a request line that is not \
            HTTP) is answered 400 with an empty body and no `x-request-id` before it reaches \
            the service."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "firmware", description = "Firmware updates and downloads (watches and the phone app)"),
        (name = "admin-firmware", description = "Admin firmware management (release engineers and CI)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
                ),
            );
            components.add_security_scheme(
                "metrics_token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("`metrics.token`: the shared secret of the Prometheus scraper"))
                        .build(),
                ),
            );
        }
    }
}

/// Operation extension naming the setting under which the operation needs no credentials:
/// `auth.public_downloads` (true) or `metrics.token` (empty). [`for_settings`] reads it.
pub const ANONYMOUS_WHEN: &str = "x-anonymous-when";

/// The document as a service with `settings` answers: the configured channels are the only
/// [`ChannelName`]s, and the operations marked [`ANONYMOUS_WHEN`] take a request without
/// credentials when the setting allows it (and need them otherwise).
pub fn for_settings(mut api: utoipa::openapi::OpenApi, settings: &Settings) -> utoipa::openapi::OpenApi {
    let channels = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A channel named in `firmware.channels`, most stable first"))
        .enum_values(Some(settings.firmware.channels.clone()))
        .build();
    if let Some(components) = api.components.as_mut() {
        components.schemas.insert("ChannelName".into(), channels.into());
    }
    for item in api.paths.paths.values_mut() {
        let operations =
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.head, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            if anonymous_allowed(operation, settings)
                && let Some(security) = operation.security.as_mut()
            {
                security.insert(0, SecurityRequirement::default());
            }
        }
    }
    api
}

fn anonymous_allowed(operation: &Operation, settings: &Settings) -> bool {
    let when = operation.extensions.as_ref().and_then(|e| e.get(ANONYMOUS_WHEN)).and_then(|v| v.as_str());
    match when {
        Some("auth.public_downloads") => settings.auth.public_downloads,
        Some("metrics.token") => secrecy::ExposeSecret::expose_secret(&settings.metrics.token).is_empty(),
        _ => false,
    }
}

// --- Input rules ---------------------------------------------------------------------------
// The newtypes of `crate::domain` parse these; the patterns say the same for clients.

/// A semantic version (`1.2.0`, `1.3.0-rc.1`, `2.0.0+build.7`; a leading `v` is accepted), at
/// most 128 characters.
#[derive(ToSchema)]
#[schema(
    pattern = r"^v?(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})(-(0|[1-9][0-9]{0,18}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]{0,18}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$",
    max_length = 128,
    example = "1.2.0"
)]
pub struct SemVer(pub String);

/// A hardware model id: a letter or digit, then letters, digits, `-`, `_` or `.`; at most 64.
#[derive(ToSchema)]
#[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", example = "nw-s1")]
pub struct HardwareName(pub String);

/// A device's stable id: a letter or digit, then letters, digits, `-`, `_`, `.` or `:`; at
/// most 128.
#[derive(ToSchema)]
#[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", example = "watch-0001")]
pub struct DeviceName(pub String);

/// A channel named in `firmware.channels` ([`for_settings`] lists them).
#[derive(ToSchema)]
#[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,31}$", example = "stable")]
pub struct ChannelName(pub String);

/// A lowercase hex SHA-256.
#[derive(ToSchema)]
#[schema(pattern = r"^[0-9a-fA-F]{64}$")]
pub struct Sha256Hex(pub String);

/// The request headers a download honours (`GET` and `HEAD`).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct DownloadHeaders {
    /// One range: `bytes=a-b`, `a-` or `-n`.
    #[param(rename = "Range", nullable = false)]
    pub range: Option<String>,
    /// Resume only if the ETag still matches.
    #[param(rename = "If-Range", nullable = false)]
    pub if_range: Option<String>,
    /// The ETag the client has.
    #[param(rename = "If-None-Match", nullable = false)]
    pub if_none_match: Option<String>,
}

// --- Response sets ---------------------------------------------------------------------------

/// 400: a parameter or a body field breaks its rule; the message names it.
#[derive(IntoResponses)]
pub enum BadInput {
    #[response(status = 400, description = "Bad input: the message names the parameter or field")]
    BadRequest(ErrorBody),
}

/// 401: every route that needs a token.
#[derive(IntoResponses)]
pub enum NeedsToken {
    #[response(status = 401, description = "No valid token")]
    Unauthorized(ErrorBody),
}

/// 401 and 403: the admin routes.
#[derive(IntoResponses)]
pub enum NeedsAdmin {
    #[response(status = 401, description = "No valid token")]
    Unauthorized(ErrorBody),
    #[response(status = 403, description = "Not an admin")]
    Forbidden(ErrorBody),
}

/// 404: the id names nothing this caller may see.
#[derive(IntoResponses)]
pub enum NotFound {
    #[response(status = 404, description = "Not found (or not visible to this caller)")]
    NotFound(ErrorBody),
}

/// 409: the change does not fit the current state.
#[derive(IntoResponses)]
pub enum Conflict {
    #[response(status = 409, description = "Conflicts with the current state")]
    Conflict(ErrorBody),
}

/// 413 and 415: a JSON request body too large or not JSON (400 when it does not parse).
#[derive(IntoResponses)]
pub enum JsonBody {
    #[response(status = 413, description = "The body is larger than `server.max_json_bytes`")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "The Content-Type is not application/json")]
    NotJson(ErrorBody),
}

// --- Bodies the handlers assemble themselves -------------------------------------------------

/// An image's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Image(pub Vec<u8>);
