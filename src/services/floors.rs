//! Anti-rollback floors: per hardware id, the lowest version a device may be offered.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};
use serde::{Deserialize, Serialize};

use crate::db::entities::hardware_floor;
use crate::domain::{HardwareId, Version};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FloorView {
    pub hardware: String,
    /// Null when the hardware has no floor.
    pub min_version: Option<String>,
    pub updated_by: Option<String>,
    pub updated_at: Option<chrono::DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FloorRequest {
    #[schema(value_type = crate::openapi::SemVer)]
    pub min_version: Version,
}

pub async fn get(state: &AppState, hardware: &HardwareId) -> Result<FloorView, ApiError> {
    let row = hardware_floor::Entity::find_by_id(hardware.to_string()).one(&state.db).await?;
    Ok(FloorView {
        hardware: hardware.to_string(),
        min_version: row.as_ref().map(|r| r.min_version.clone()),
        updated_by: row.as_ref().map(|r| r.updated_by.clone()),
        updated_at: row.map(|r| r.updated_at),
    })
}

pub async fn put(
    state: &AppState,
    hardware: &HardwareId,
    request: FloorRequest,
    actor: &str,
) -> Result<FloorView, ApiError> {
    let model = hardware_floor::ActiveModel {
        hardware: Set(hardware.to_string()),
        min_version: Set(request.min_version.to_string()),
        updated_by: Set(actor.to_owned()),
        updated_at: Set(Utc::now()),
    };
    hardware_floor::Entity::insert(model)
        .on_conflict(
            OnConflict::column(hardware_floor::Column::Hardware)
                .update_columns([
                    hardware_floor::Column::MinVersion,
                    hardware_floor::Column::UpdatedBy,
                    hardware_floor::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&state.db)
        .await?;
    state.catalog_changed().await;
    get(state, hardware).await
}
