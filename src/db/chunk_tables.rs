//! Queries on releases' chunk tables (`services::chunks`).

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::entities::firmware;
use crate::domain::FirmwareState;

/// Records release `id`'s chunk table unless it has one: whether this call set it. Two builders
/// of one table (two publishes, or the backfill of another instance) set it once; the other
/// keeps the table already there, the same bytes if their chunk size agreed.
pub async fn set(db: &impl ConnectionTrait, id: Uuid, chunk_size: u32, sha256: &str) -> Result<bool, DbErr> {
    let updated = firmware::Entity::update_many()
        .col_expr(firmware::Column::ChunkSize, Expr::value(i64::from(chunk_size)))
        .col_expr(firmware::Column::ChunkTableSha256, Expr::value(sha256))
        .filter(firmware::Column::Id.eq(id))
        .filter(firmware::Column::ChunkTableSha256.is_null())
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Every published release with its chunk table's digest, if it has one (the backfill's work list:
/// two columns a release).
pub async fn published(db: &impl ConnectionTrait) -> Result<Vec<(Uuid, Option<String>)>, DbErr> {
    firmware::Entity::find()
        .select_only()
        .column(firmware::Column::Id)
        .column(firmware::Column::ChunkTableSha256)
        .filter(firmware::Column::State.eq(FirmwareState::Published))
        .into_tuple()
        .all(db)
        .await
}

/// Whether any release's chunk table has this digest (the sweep keeps it).
pub async fn in_use(db: &impl ConnectionTrait, sha256: &str) -> Result<bool, DbErr> {
    let rows =
        firmware::Entity::find().filter(firmware::Column::ChunkTableSha256.eq(sha256)).count(db).await?;
    Ok(rows > 0)
}
