//! `GET /openapi.json` (generated from the code) and the Swagger UI at `/docs`, whose assets are
//! compiled into the binary (no CDN at run time).

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::openapi::ApiDoc;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi())).service(
        web::resource("/docs").route(web::get().to(|| async {
            HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
        })),
    );
}
