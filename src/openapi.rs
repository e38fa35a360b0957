//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nowatch-ota",
        description = "Firmware over-the-air service of the NOWATCH platform: the `firmware` and \
            `admin-firmware` tags. Every other NOWATCH tag is forwarded to the full backend. \
            Errors use the NOWATCH shape (`ErrorBody`); every response carries `x-request-id`."
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::metrics::metrics,
        routes::firmware::check,
        routes::firmware::list,
        routes::firmware::get_release,
        routes::firmware::manifest,
        routes::firmware::keys,
        routes::root::newest,
        routes::root::version,
        routes::firmware::report,
        routes::download::serve,
        routes::download::head,
        routes::admin_firmware::upload_release,
        routes::admin_firmware::list_releases,
        routes::admin_firmware::get_release,
        routes::admin_firmware::patch_release,
        routes::admin_firmware::delete_release,
        routes::admin_firmware::publish_release,
        routes::admin_firmware::revoke_release,
        routes::admin_hardware::get_floor,
        routes::admin_hardware::put_floor,
        routes::admin_rollouts::list_rollouts,
        routes::admin_rollouts::get_rollout,
        routes::admin_rollouts::preview_rollout,
        routes::admin_rollouts::pause,
        routes::admin_rollouts::resume,
        routes::admin_rollouts::advance,
        routes::admin_rollouts::abort,
        routes::admin_devices::get_device,
        routes::admin_devices::release_owner,
        routes::admin_devices::clear_failures,
    ),
    components(schemas(crate::error::ErrorBody)),
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
                        .description(Some(
                            "`metrics.token`, when set: the shared secret of the Prometheus scraper",
                        ))
                        .build(),
                ),
            );
        }
    }
}
