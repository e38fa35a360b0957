//! Thin HTTP handlers, one module per resource: parse the request, call a service, shape the
//! answer. Mounted by [`crate::startup`].

pub mod admin_deltas;
pub mod admin_devices;
pub mod admin_firmware;
pub mod admin_hardware;
pub mod admin_rollouts;
pub mod admin_timeline;
pub mod chunks;
pub mod console;
pub mod delta;
pub mod docs;
pub mod download;
pub mod firmware;
pub mod health;
pub mod http;
pub mod json;
pub mod metrics;
pub mod root;
pub mod upload_form;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

/// After every documented route: each documented path answers any other method with 405 and an
/// `Allow` header listing the methods the document gives it. (Each route is mounted with its
/// method as a guard, so without this a wrong method would fall through to the 404.) The paths
/// come in the document's order, where a literal segment sorts before a `{parameter}`, so
/// `/v1/firmware/keys` is tried before `/v1/firmware/{id}`.
pub fn method_not_allowed(cfg: &mut web::ServiceConfig, api: &utoipa::openapi::OpenApi) {
    for (path, item) in &api.paths.paths {
        let methods = [
            ("DELETE", item.delete.is_some()),
            ("GET", item.get.is_some()),
            ("HEAD", item.head.is_some()),
            ("PATCH", item.patch.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
        ];
        let allow: String = methods
            .iter()
            .filter(|(_, documented)| *documented)
            .map(|(m, _)| *m)
            .collect::<Vec<_>>()
            .join(", ");
        cfg.service(web::resource(path.as_str()).to(move || {
            let allow = allow.clone();
            async move { HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, allow)).finish() }
        }));
    }
}
