//! A report's effects on counters: per-status counts of its rollout, the places each account
//! has in a rollout, and the releases a device failed too often.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{EntityTrait, Set};
use uuid::Uuid;

use crate::db::entities::{
    device_report, rollout_owner_count, rollout_report_count, rollout_uncounted_count,
};
use crate::domain::ReportStatus;
use crate::error::ApiError;
use crate::state::AppState;

/// After `rollout.max_failures_per_device` failures of a device on a release, this instance's
/// update check stops offering the release to it at once (the others at their next catalog
/// rebuild, which reads the same rows).
pub(super) async fn cut_off_if_failing(state: &AppState, report: &device_report::Model) {
    let limit = state.settings.rollout.max_failures_per_device;
    if limit > 0 && u32::try_from(report.failures).is_ok_and(|f| f >= limit) {
        state.catalog.cut_offs.add(&report.device_id, report.firmware_id);
    }
    // A device that failed on a patch gets the full image next (`catalog::cut_offs`).
    if report.delta_failures > 0 {
        state.catalog.full_only.add(&report.device_id, report.firmware_id);
    }
}

/// Moves devices between a rollout's per-status counts, in the report's transaction: those that
/// count towards its health (`rollout_report_count`) or those it keeps apart
/// (`rollout_uncounted_count`). Rows are touched in status order, so two reports moving devices
/// in opposite directions (failed → downloading, downloading → failed) cannot deadlock on
/// PostgreSQL.
pub(super) async fn count_moves(
    db: &impl sea_orm::ConnectionTrait,
    rollout_id: Uuid,
    counted: bool,
    moves: &[(ReportStatus, i64)],
) -> Result<(), ApiError> {
    use rollout_report_count::Column;
    use sea_orm::EntityName;
    use sea_orm::sea_query::{Alias, Query};
    // The two tables have the same columns; the column names are taken from one of them.
    let table = Alias::new(match counted {
        true => rollout_report_count::Entity.table_name(),
        false => rollout_uncounted_count::Entity.table_name(),
    });
    let mut moves = moves.to_vec();
    moves.sort_by_key(|(status, _)| status.as_str());
    for (status, delta) in moves {
        let upsert = Query::insert()
            .into_table(table.clone())
            .columns([Column::RolloutId, Column::Status, Column::Devices])
            .values([rollout_id.into(), status.as_str().into(), delta.into()])
            .map_err(ApiError::internal)?
            .on_conflict(
                OnConflict::columns([Column::RolloutId, Column::Status])
                    .value(Column::Devices, Expr::col((table.clone(), Column::Devices)).add(delta))
                    .to_owned(),
            )
            .to_owned();
        db.execute(&upsert).await?;
    }
    Ok(())
}

/// Counts one more device of `owner` towards a rollout, unless `rollout.max_devices_per_owner`
/// count already: a conditional increment, so concurrent first reports of one account cannot
/// both take the last place. Whether it was taken.
pub(super) async fn owner_slot_free(
    db: &impl sea_orm::ConnectionTrait,
    rollout_id: Uuid,
    owner: &str,
    max: u32,
) -> Result<bool, ApiError> {
    use rollout_owner_count::{ActiveModel, Column, Entity};
    let row = ActiveModel { rollout_id: Set(rollout_id), owner: Set(owner.to_owned()), devices: Set(1) };
    let taken = Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::RolloutId, Column::Owner])
                .value(Column::Devices, Expr::col((Entity, Column::Devices)).add(1))
                .action_and_where(Expr::col((Entity, Column::Devices)).lt(i64::from(max)))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(taken == 1)
}
