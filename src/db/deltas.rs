//! Queries on `firmware_delta`: planning rows (an upsert on the key, so two instances planning
//! at once agree), claiming one to build (a conditional update: one instance wins), finishing it
//! under its claim, and what the catalog, the admin list and the sweep read.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entities::{device, firmware, firmware_delta, firmware_hardware};
use crate::domain::{DeltaState, FirmwareState, Version};

use firmware_delta::Column;

/// How many devices of each of `hardware` run each version: `(hardware, version, devices)`.
pub async fn fleet_versions(
    db: &impl ConnectionTrait,
    hardware: &[String],
) -> Result<Vec<(String, String, i64)>, DbErr> {
    device::Entity::find()
        .select_only()
        .column(device::Column::Hardware)
        .column(device::Column::Version)
        .column_as(device::Column::DeviceId.count(), "devices")
        .filter(device::Column::Hardware.is_in(hardware.iter().cloned()))
        .group_by(device::Column::Hardware)
        .group_by(device::Column::Version)
        .into_tuple()
        .all(db)
        .await
}

/// The stored image of `version` for `hardware`: a published or revoked release's (drafts are
/// not what devices run). `(release id, sha256, size)`.
pub async fn stored_image(
    db: &impl ConnectionTrait,
    hardware: &str,
    version: &Version,
) -> Result<Option<(Uuid, String, i64)>, DbErr> {
    let Some(link) = firmware_hardware::Entity::find()
        .filter(firmware_hardware::Column::Hardware.eq(hardware))
        .filter(firmware_hardware::Column::VersionKey.eq(version.precedence_key()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(firmware::Entity::find_by_id(link.firmware_id)
        .filter(firmware::Column::State.is_in([FirmwareState::Published, FirmwareState::Revoked]))
        .one(db)
        .await?
        .map(|row| (row.id, row.sha256, row.size)))
}

/// Adds a planned row, or refreshes the device count of the one already there (its state is
/// kept: planning never undoes a build).
pub async fn upsert_planned(db: &impl ConnectionTrait, row: firmware_delta::Model) -> Result<(), DbErr> {
    firmware_delta::Entity::insert(firmware_delta::ActiveModel::from(row))
        .on_conflict(
            OnConflict::columns([Column::FirmwareId, Column::FromVersion, Column::FromSha256])
                .update_columns([Column::Devices, Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Rows waiting for a builder, or held by one whose lease ran out; most devices first.
pub async fn claimable(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<firmware_delta::Model>, DbErr> {
    firmware_delta::Entity::find()
        .filter(claimable_condition(now))
        .order_by_desc(Column::Devices)
        .limit(limit)
        .all(db)
        .await
}

fn claimable_condition(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::State.eq(DeltaState::Pending))
        .add(Condition::all().add(Column::State.eq(DeltaState::Building)).add(Column::LeaseUntil.lt(now)))
}

fn key_condition(row: &firmware_delta::Model) -> Condition {
    Condition::all()
        .add(Column::FirmwareId.eq(row.firmware_id))
        .add(Column::FromVersion.eq(row.from_version.as_str()))
        .add(Column::FromSha256.eq(row.from_sha256.as_str()))
}

/// Takes `row` for this build if it is still claimable: exactly one of the instances (or
/// builders) trying at once gets `true`.
pub async fn claim(
    db: &impl ConnectionTrait,
    row: &firmware_delta::Model,
    claim: Uuid,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<bool, DbErr> {
    let taken = firmware_delta::Entity::update_many()
        .col_expr(Column::State, Expr::value(DeltaState::Building.as_str()))
        .col_expr(Column::Claim, Expr::value(claim))
        .col_expr(Column::LeaseUntil, Expr::value(now + lease))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .filter(key_condition(row))
        .filter(claimable_condition(now))
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// Extends the lease of a build that still holds `claim`; whether it still does.
pub async fn renew(
    db: &impl ConnectionTrait,
    row: &firmware_delta::Model,
    claim: Uuid,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let renewed = firmware_delta::Entity::update_many()
        .col_expr(Column::LeaseUntil, Expr::value(until))
        .filter(key_condition(row))
        .filter(Column::Claim.eq(claim))
        .exec(db)
        .await?;
    Ok(renewed.rows_affected == 1)
}

/// What a finished build wrote.
pub struct Outcome {
    pub state: DeltaState,
    pub reason: Option<String>,
    /// `(size, sha256)` of a ready patch.
    pub patch: Option<(i64, String)>,
}

/// Records the build's outcome, only while `claim` still holds the row (a rebuild or a
/// take-over since then wins); whether it did.
pub async fn finish(
    db: &impl ConnectionTrait,
    row: &firmware_delta::Model,
    claim: Uuid,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let (size, sha256) = outcome.patch.unzip();
    let done = firmware_delta::Entity::update_many()
        .col_expr(Column::State, Expr::value(outcome.state.as_str()))
        .col_expr(Column::Reason, Expr::value(outcome.reason))
        .col_expr(Column::Size, Expr::value(size))
        .col_expr(Column::Sha256, Expr::value(sha256))
        .col_expr(Column::Claim, Expr::value(Option::<Uuid>::None))
        .col_expr(Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(Column::UpdatedAt, Expr::value(now))
        .col_expr(Column::BuiltAt, Expr::value(Some(now)))
        .filter(key_condition(row))
        .filter(Column::Claim.eq(claim))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Every row of release `firmware_id`, most devices first.
pub async fn of_release(
    db: &impl ConnectionTrait,
    firmware_id: Uuid,
) -> Result<Vec<firmware_delta::Model>, DbErr> {
    firmware_delta::Entity::find()
        .filter(Column::FirmwareId.eq(firmware_id))
        .order_by_desc(Column::Devices)
        .order_by_asc(Column::FromVersion)
        .all(db)
        .await
}

/// The ready patches of release `id`, or of every release (the catalog's offers).
pub async fn ready(db: &impl ConnectionTrait, id: Option<Uuid>) -> Result<Vec<firmware_delta::Model>, DbErr> {
    let mut query = firmware_delta::Entity::find().filter(Column::State.eq(DeltaState::Ready));
    if let Some(id) = id {
        query = query.filter(Column::FirmwareId.eq(id));
    }
    query.all(db).await
}

/// The ready patch to release `id` from the image with digest `from_sha256`.
pub async fn ready_from(
    db: &impl ConnectionTrait,
    id: Uuid,
    from_sha256: &str,
) -> Result<Option<firmware_delta::Model>, DbErr> {
    firmware_delta::Entity::find()
        .filter(Column::FirmwareId.eq(id))
        .filter(Column::FromSha256.eq(from_sha256))
        .filter(Column::State.eq(DeltaState::Ready))
        .one(db)
        .await
}

/// Forgets every row of release `firmware_id` (a rebuild plans them afresh).
pub async fn forget_release(db: &impl ConnectionTrait, firmware_id: Uuid) -> Result<u64, DbErr> {
    Ok(firmware_delta::Entity::delete_many()
        .filter(Column::FirmwareId.eq(firmware_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Whether a ready patch of a published release is stored under this digest.
pub async fn patch_in_use(db: &impl ConnectionTrait, sha256: &str) -> Result<bool, DbErr> {
    let published = sea_orm::sea_query::Query::select()
        .column(firmware::Column::Id)
        .from(firmware::Entity)
        .and_where(firmware::Column::State.eq(FirmwareState::Published))
        .to_owned();
    let count = firmware_delta::Entity::find()
        .filter(Column::Sha256.eq(sha256))
        .filter(Column::State.eq(DeltaState::Ready))
        .filter(Column::FirmwareId.in_subquery(published))
        .count(db)
        .await?;
    Ok(count > 0)
}
