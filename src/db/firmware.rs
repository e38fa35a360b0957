//! Queries on releases and the hardware they are built for.

use std::collections::HashMap;

use sea_orm::sea_query::LockType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use uuid::Uuid;

use super::entities::{firmware, firmware_hardware, rollout};
use crate::domain::rollout::RolloutState;

/// A release row with its hardware ids.
#[derive(Debug, Clone)]
pub struct Release {
    pub row: firmware::Model,
    pub hardware: Vec<String>,
}

/// Loads the hardware ids of each row, in one query.
async fn with_hardware(db: &impl ConnectionTrait, rows: Vec<firmware::Model>) -> Result<Vec<Release>, DbErr> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut by_id: HashMap<Uuid, Vec<String>> = HashMap::new();
    for link in firmware_hardware::Entity::find()
        .filter(firmware_hardware::Column::FirmwareId.is_in(ids))
        .order_by_asc(firmware_hardware::Column::Hardware)
        .all(db)
        .await?
    {
        by_id.entry(link.firmware_id).or_default().push(link.hardware);
    }
    Ok(rows
        .into_iter()
        .map(|row| Release { hardware: by_id.remove(&row.id).unwrap_or_default(), row })
        .collect())
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Release>, DbErr> {
    let Some(row) = firmware::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    Ok(with_hardware(db, vec![row]).await?.pop())
}

/// A release, its row locked until the transaction ends (`FOR NO KEY UPDATE` on PostgreSQL, see
/// `services::rollouts::lock`; SQLite serialises write transactions): publish and revoke of one
/// release take turns, so a publish never lands on a release revoked meanwhile.
pub async fn lock(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Release>, DbErr> {
    let Some(row) = firmware::Entity::find_by_id(id).lock(LockType::NoKeyUpdate).one(db).await? else {
        return Ok(None);
    };
    Ok(with_hardware(db, vec![row]).await?.pop())
}

/// Releases that already hold `version_key` for any of `hardware`.
pub async fn find_version_conflicts(
    db: &impl ConnectionTrait,
    version_key: &str,
    hardware: &[String],
) -> Result<Vec<Release>, DbErr> {
    let ids: Vec<Uuid> = firmware_hardware::Entity::find()
        .filter(firmware_hardware::Column::VersionKey.eq(version_key))
        .filter(firmware_hardware::Column::Hardware.is_in(hardware.iter().cloned()))
        .all(db)
        .await?
        .into_iter()
        .map(|link| link.firmware_id)
        .collect();
    let rows = firmware::Entity::find().filter(firmware::Column::Id.is_in(ids)).all(db).await?;
    with_hardware(db, rows).await
}

/// Inserts a release and its hardware links; call inside a transaction.
pub async fn insert(
    db: &impl ConnectionTrait,
    row: firmware::Model,
    hardware: &[String],
) -> Result<Release, DbErr> {
    let links: Vec<firmware_hardware::ActiveModel> = hardware
        .iter()
        .map(|h| firmware_hardware::ActiveModel {
            firmware_id: Set(row.id),
            hardware: Set(h.clone()),
            version_key: Set(row.version_key.clone()),
        })
        .collect();
    firmware::Entity::insert(firmware::ActiveModel::from(row.clone())).exec_without_returning(db).await?;
    firmware_hardware::Entity::insert_many(links).exec_without_returning(db).await?;
    Ok(Release { row, hardware: hardware.to_vec() })
}

/// Filters of the admin list.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub hardware: Option<String>,
    pub state: Option<crate::domain::FirmwareState>,
}

/// One page of releases, newest first, and the total count.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: &ListFilter,
    page: u64,
    per_page: u64,
) -> Result<(Vec<Release>, u64), DbErr> {
    let mut query = firmware::Entity::find();
    if let Some(hardware) = &filter.hardware {
        query = query.filter(
            firmware::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(firmware_hardware::Column::FirmwareId)
                    .from(firmware_hardware::Entity)
                    .and_where(firmware_hardware::Column::Hardware.eq(hardware.as_str()))
                    .to_owned(),
            ),
        );
    }
    if let Some(state) = &filter.state {
        query = query.filter(firmware::Column::State.eq(state.as_str()));
    }
    let total = query.clone().count(db).await?;
    let rows = query
        .order_by_desc(firmware::Column::CreatedAt)
        .order_by_desc(firmware::Column::Id)
        .offset((page - 1) * per_page)
        .limit(per_page)
        .all(db)
        .await?;
    Ok((with_hardware(db, rows).await?, total))
}

/// Whether any release still references the image with this digest.
pub async fn sha256_in_use(db: &impl ConnectionTrait, sha256: &str) -> Result<bool, DbErr> {
    Ok(firmware::Entity::find().filter(firmware::Column::Sha256.eq(sha256)).count(db).await? > 0)
}

/// The channels each release is offered on (rollouts not aborted).
/// Every channel release `id` was ever offered on, aborted rollouts included: who may see a
/// release is decided by all of them (a revoke aborts them all).
pub async fn channels_ever(db: &impl ConnectionTrait, id: Uuid) -> Result<Vec<String>, DbErr> {
    let mut channels: Vec<String> = rollout::Entity::find()
        .filter(rollout::Column::FirmwareId.eq(id))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.channel)
        .collect();
    channels.sort();
    channels.dedup();
    Ok(channels)
}

pub async fn channels(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<String>>, DbErr> {
    let mut by_id: HashMap<Uuid, Vec<String>> = HashMap::new();
    for r in rollout::Entity::find()
        .filter(rollout::Column::FirmwareId.is_in(ids.iter().copied()))
        .filter(rollout::Column::State.ne(RolloutState::Aborted))
        .order_by_asc(rollout::Column::CreatedAt)
        .all(db)
        .await?
    {
        let channels = by_id.entry(r.firmware_id).or_default();
        if !channels.contains(&r.channel) {
            channels.push(r.channel);
        }
    }
    Ok(by_id)
}
