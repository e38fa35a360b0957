//! `/v1/admin/firmware/{id}/deltas`: the patches to a release (from which versions, for how
//! many devices, how large, in which state and why) and queueing them again.

use actix_web::{HttpResponse, get, post, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::openapi::{BadInput, Conflict, NeedsAdmin, NotFound};
use crate::routes::http::parse_id;
use crate::services::deltas::{self, DeltaList};
use crate::state::AppState;

pub fn mount(cfg: &mut ServiceConfig) {
    cfg.service(list_deltas).service(rebuild_deltas);
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    responses(
        (status = 200, description = "The release's patches, most devices first", body = DeltaList),
        BadInput,
        NeedsAdmin,
        NotFound,
    )
)]
#[get("/v1/admin/firmware/{id}/deltas")]
pub async fn list_deltas(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(deltas::list(&state, parse_id(&id)?).await?))
}

#[utoipa::path(
    tag = "admin-firmware",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Release id")),
    responses(
        (status = 202, description = "Forgotten and planned again from the fleet's versions; built in the background", body = DeltaList),
        BadInput,
        NeedsAdmin,
        NotFound,
        Conflict,
    )
)]
#[post("/v1/admin/firmware/{id}/deltas/rebuild")]
#[tracing::instrument(skip_all, fields(actor = %crate::telemetry::escaped(&admin.0.sub)))]
pub async fn rebuild_deltas(
    state: web::Data<AppState>,
    admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Accepted().json(deltas::rebuild(&state, parse_id(&id)?, &admin.0.sub).await?))
}
