//! `admin-firmware`: rollout progress.

use actix_web::{HttpResponse, web};

use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::routes::admin_firmware::parse_id;
use crate::services::rollouts;
use crate::state::AppState;

pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/admin/rollouts/{id}").route(web::get().to(get_rollout)));
}

async fn get_rollout(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(rollouts::view(&state, parse_id(&id)?).await?))
}
