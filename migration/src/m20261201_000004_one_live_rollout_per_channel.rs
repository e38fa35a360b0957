//! One live rollout per (release, channel), held by the database, and report counters that agree
//! with the reports.
//!
//! Before this migration two concurrent publishes could both create a rollout on one channel,
//! and concurrent reports for one device could leave `rollout_report_count` off (even negative)
//! on PostgreSQL. Existing databases are brought into line first:
//! - of the live (active, paused, halted) rollouts of one release on one channel, the oldest is
//!   kept and the others are aborted, each with an `aborted` event (actor `migration`) that names
//!   the one kept, appended to its hash chain;
//! - every counter is recounted from `device_report`;
//!
//! then the partial unique index is added (PostgreSQL and SQLite both have them).

use chrono::{DateTime, SubsecRound, Utc};
use nowatch_ota_core::signing::{ChainEvent, GENESIS_HASH, event_hash};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, QueryResult};
use serde_json::json;
use uuid::Uuid;

pub const LIVE_INDEX: &str = "uq_rollout_live_per_channel";
const ACTOR: &str = "migration";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let now = Utc::now().trunc_subsecs(3);
        abort_duplicate_live_rollouts(db, now).await?;
        db.execute_unprepared("DELETE FROM rollout_report_count").await?;
        db.execute_unprepared(
            "INSERT INTO rollout_report_count (rollout_id, status, devices) \
             SELECT rollout_id, status, COUNT(*) FROM device_report \
             WHERE rollout_id IS NOT NULL GROUP BY rollout_id, status",
        )
        .await?;
        db.execute_unprepared(&format!(
            "CREATE UNIQUE INDEX {LIVE_INDEX} ON rollout (firmware_id, channel) \
             WHERE state IN ('active', 'paused', 'halted')"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The aborts and the recount stand: they repaired data, they did not change the schema.
        manager.get_connection().execute_unprepared(&format!("DROP INDEX IF EXISTS {LIVE_INDEX}")).await?;
        Ok(())
    }
}

fn get<T: sea_orm_migration::sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, DbErr> {
    row.try_get("", column)
}

async fn abort_duplicate_live_rollouts(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<(), DbErr> {
    let live = Query::select()
        .columns([Rollout::Id, Rollout::FirmwareId, Rollout::Channel, Rollout::State, Rollout::CurrentStage])
        .from(Rollout::Table)
        .and_where(Expr::col(Rollout::State).is_in(["active", "paused", "halted"]))
        .order_by(Rollout::FirmwareId, Order::Asc)
        .order_by(Rollout::Channel, Order::Asc)
        .order_by(Rollout::CreatedAt, Order::Asc)
        .order_by(Rollout::Id, Order::Asc)
        .to_owned();
    let mut kept: Option<(Uuid, String, Uuid)> = None;
    for row in db.query_all(&live).await? {
        let id: Uuid = get(&row, "id")?;
        let firmware_id: Uuid = get(&row, "firmware_id")?;
        let channel: String = get(&row, "channel")?;
        match &kept {
            Some((f, c, keeper)) if *f == firmware_id && *c == channel => {
                let detail = json!({
                    "reason": format!("duplicate live rollout on channel {channel}: rollout {keeper} was kept"),
                    "from_state": get::<String>(&row, "state")?,
                    "to_state": "aborted",
                    "from_stage": get::<i32>(&row, "current_stage")?,
                    "to_stage": get::<i32>(&row, "current_stage")?,
                });
                abort(db, id, detail, now).await?;
            }
            _ => kept = Some((firmware_id, channel, id)),
        }
    }
    Ok(())
}

/// Aborts one rollout and appends the event that says why to its chain.
async fn abort(
    db: &impl ConnectionTrait,
    id: Uuid,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let last = Query::select()
        .columns([RolloutEvent::Seq, RolloutEvent::Hash])
        .from(RolloutEvent::Table)
        .and_where(Expr::col(RolloutEvent::RolloutId).eq(id))
        .order_by(RolloutEvent::Seq, Order::Desc)
        .limit(1)
        .to_owned();
    let (seq, prev_hash) = match db.query_one(&last).await? {
        Some(row) => (get::<i32>(&row, "seq")? + 1, get::<String>(&row, "hash")?),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let rollout_id = id.to_string();
    let event = ChainEvent {
        rollout_id: &rollout_id,
        seq,
        actor: ACTOR,
        kind: "aborted",
        detail: &detail,
        created_at: now,
    };
    let hash = event_hash(&prev_hash, &event).map_err(|e| DbErr::Custom(format!("event detail: {e}")))?;
    let insert = Query::insert()
        .into_table(RolloutEvent::Table)
        .columns([
            RolloutEvent::RolloutId,
            RolloutEvent::Seq,
            RolloutEvent::Actor,
            RolloutEvent::Kind,
            RolloutEvent::Detail,
            RolloutEvent::PrevHash,
            RolloutEvent::Hash,
            RolloutEvent::CreatedAt,
        ])
        .values([
            id.into(),
            seq.into(),
            ACTOR.into(),
            "aborted".into(),
            detail.into(),
            prev_hash.into(),
            hash.clone().into(),
            now.into(),
        ])
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    db.execute(&insert).await?;
    let update = Query::update()
        .table(Rollout::Table)
        .value(Rollout::State, "aborted")
        .value(Rollout::UpdatedAt, now)
        .value(Rollout::EventCount, seq)
        .value(Rollout::ChainHead, hash)
        .and_where(Expr::col(Rollout::Id).eq(id))
        .to_owned();
    db.execute(&update).await?;
    Ok(())
}

#[derive(DeriveIden)]
enum Rollout {
    Table,
    Id,
    FirmwareId,
    Channel,
    State,
    CurrentStage,
    CreatedAt,
    UpdatedAt,
    EventCount,
    ChainHead,
}

#[derive(DeriveIden)]
enum RolloutEvent {
    Table,
    RolloutId,
    Seq,
    Actor,
    Kind,
    Detail,
    PrevHash,
    Hash,
    CreatedAt,
}
