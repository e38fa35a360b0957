//! `GET /openapi.json` (the document of the routes as mounted) and the Swagger UI at `/docs`,
//! whose assets are compiled into the binary (no CDN at run time).

use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::SwaggerUi;

pub fn mount(cfg: &mut web::ServiceConfig, api: utoipa::openapi::OpenApi) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api)).service(
        web::resource("/docs").route(web::get().to(|| async {
            HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
        })),
    );
}
