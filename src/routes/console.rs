//! `/console/`: the release console, a small single-page app whose files are compiled into the
//! binary (`src/console/`). Loading it needs no token; every data call it makes does (it uses
//! the admin JSON API with the token the user gives it). The files are served with an ETag
//! (304 on `If-None-Match`), revalidated on each load, and a Content-Security-Policy that lets
//! the page load and call nothing but this origin and run no inline script.

use std::sync::OnceLock;

use actix_web::http::header::{self, EntityTag};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::routes::http::if_none_match;

/// What a console response may load: this origin only, no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'none'";

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../console/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("chart.js", JS),
    asset!("releases.js", JS),
    asset!("release.js", JS),
    asset!("rollout.js", JS),
    asset!("upload.js", JS),
    asset!("device.js", JS),
];

/// Each asset's strong ETag: the first 16 bytes of its SHA-256, hex.
fn etags() -> &'static [EntityTag] {
    static TAGS: OnceLock<Vec<EntityTag>> = OnceLock::new();
    TAGS.get_or_init(|| {
        use sha2::Digest;
        ASSETS
            .iter()
            .map(|a| EntityTag::new_strong(hex::encode(&sha2::Sha256::digest(a.body)[..16])))
            .collect()
    })
}

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(|| async {
        HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/console/")).finish()
    })))
    .service(web::resource("/console/").route(web::get().to(index)))
    .service(web::resource("/console/{name}").route(web::get().to(file)));
}

async fn index(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, "index.html")
}

async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    serve(&req, &name)
}

fn serve(req: &HttpRequest, name: &str) -> Result<HttpResponse, ApiError> {
    let index = ASSETS
        .iter()
        .position(|a| a.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("console: no file {name:?}")))?;
    let (asset, etag) = (&ASSETS[index], &etags()[index]);
    let unchanged = if_none_match(req, etag);
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response.insert_header((header::CONTENT_TYPE, asset.content_type)).body(asset.body))
}
