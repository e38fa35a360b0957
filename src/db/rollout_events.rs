//! The append-only, hash-chained audit trail of each rollout. The chain's rule lives in
//! `signing::event_hash`; [`verify_chain`] finds the first edited, reordered or missing link.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::Value;
use uuid::Uuid;

use super::entities::{rollout, rollout_event};
use crate::domain::rollout::EventKind;
pub use crate::signing::GENESIS_HASH;
use crate::signing::{ChainEvent, event_hash};

fn chain_hash(prev_hash: &str, event: &ChainEvent<'_>) -> Result<String, DbErr> {
    event_hash(prev_hash, event).map_err(|e| DbErr::Custom(format!("event detail: {e}")))
}

/// Appends one event. Call in the transaction that changed the rollout, holding its row lock
/// (`services::rollouts::lock`), which serialises concurrent appends.
pub async fn append(
    db: &impl ConnectionTrait,
    rollout_id: Uuid,
    actor: &str,
    kind: EventKind,
    detail: Value,
    now: DateTime<Utc>,
) -> Result<rollout_event::Model, DbErr> {
    let last = rollout_event::Entity::find()
        .filter(rollout_event::Column::RolloutId.eq(rollout_id))
        .order_by_desc(rollout_event::Column::Seq)
        .one(db)
        .await?;
    let (seq, prev_hash) = match last {
        Some(event) => (event.seq + 1, event.hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    // Stored timestamps keep milliseconds on every database, so the hash can be recomputed.
    let at = now.trunc_subsecs(3);
    let id = rollout_id.to_string();
    let event =
        ChainEvent { rollout_id: &id, seq, actor, kind: kind.as_str(), detail: &detail, created_at: at };
    let hash = chain_hash(&prev_hash, &event)?;
    // The anchor is moved before the event is inserted: the insert's foreign-key check shares a
    // lock on the rollout row, and on PostgreSQL an UPDATE of that row after it, while another
    // transaction queues for the row (`FOR UPDATE`), deadlocks with that transaction.
    rollout::Entity::update_many()
        .col_expr(rollout::Column::EventCount, sea_orm::sea_query::Expr::value(seq))
        .col_expr(rollout::Column::ChainHead, sea_orm::sea_query::Expr::value(hash.clone()))
        .filter(rollout::Column::Id.eq(rollout_id))
        .exec(db)
        .await?;
    let model = rollout_event::ActiveModel {
        rollout_id: Set(rollout_id),
        seq: Set(seq),
        actor: Set(actor.to_owned()),
        kind: Set(kind),
        detail: Set(detail),
        prev_hash: Set(prev_hash),
        hash: Set(hash),
        created_at: Set(at),
        ..Default::default()
    };
    let event = rollout_event::Entity::insert(model).exec_with_returning(db).await?;
    Ok(event)
}

/// The events of a rollout, in order.
pub async fn list(db: &impl ConnectionTrait, rollout_id: Uuid) -> Result<Vec<rollout_event::Model>, DbErr> {
    rollout_event::Entity::find()
        .filter(rollout_event::Column::RolloutId.eq(rollout_id))
        .order_by_asc(rollout_event::Column::Seq)
        .all(db)
        .await
}

/// Where a chain breaks.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event {0} is missing or out of order")]
    Gap(i32),
    #[error("event {0} does not link to the hash of the event before it")]
    BrokenLink(i32),
    #[error("event {0} was altered: its hash does not match its contents")]
    Altered(i32),
    #[error("the chain does not end where the rollout says: events were removed from its end")]
    Truncated,
}

/// Checks a rollout's events, in `seq` order, from the first, against the anchor kept in the
/// rollout row (`event_count`, `chain_head`).
pub fn verify_chain(events: &[rollout_event::Model], anchor: &rollout::Model) -> Result<(), ChainError> {
    let mut prev_hash = GENESIS_HASH.to_owned();
    for (i, event) in events.iter().enumerate() {
        let expected_seq = i as i32 + 1;
        if event.seq != expected_seq {
            return Err(ChainError::Gap(expected_seq));
        }
        if event.prev_hash != prev_hash {
            return Err(ChainError::BrokenLink(event.seq));
        }
        let id = event.rollout_id.to_string();
        let link = ChainEvent {
            rollout_id: &id,
            seq: event.seq,
            actor: &event.actor,
            kind: event.kind.as_str(),
            detail: &event.detail,
            created_at: event.created_at,
        };
        if chain_hash(&prev_hash, &link).ok().as_deref() != Some(event.hash.as_str()) {
            return Err(ChainError::Altered(event.seq));
        }
        prev_hash = event.hash.clone();
    }
    let count_matches = usize::try_from(anchor.event_count).is_ok_and(|n| n == events.len());
    let head_matches = events.last().map_or(anchor.chain_head.is_empty(), |e| e.hash == anchor.chain_head);
    if !count_matches || !head_matches {
        return Err(ChainError::Truncated);
    }
    Ok(())
}
