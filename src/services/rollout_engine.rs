//! The background evaluation of rollouts: every `rollout.tick_interval_s` it halts rollouts whose
//! failure rate crossed their threshold (recording the figures), advances healthy stages whose
//! `min_duration_s` has passed, and completes rollouts after their last stage. It acts as the
//! actor `system`.
//!
//! Each rollout is evaluated in a transaction of its own, on its row locked (`FOR UPDATE`), so
//! that a decision is taken on the latest committed state: an admin's abort or another
//! instance's tick that committed first is seen, never overwritten, and two instances ticking at
//! once move a rollout once. A rollout that cannot be read (stored data from an older version) is
//! logged and skipped; every other rollout is still evaluated. What a transition logs is logged
//! after its commit.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::db::entities::rollout;
use crate::domain::rollout::{
    Decision, EventKind, Health, Outcomes, Position, RolloutState, Stages, evaluate,
};
use crate::services::rollouts::{counts, lock, move_to, outcomes, position};
use crate::state::AppState;

pub const ACTOR: &str = "system";

/// What one evaluation changed.
struct Moved {
    firmware_id: Uuid,
    decision: Decision,
    outcomes: Outcomes,
}

/// Evaluates every active or paused rollout as of `now`; returns how many changed.
pub async fn tick(state: &AppState, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let ids: Vec<Uuid> = rollout::Entity::find()
        .select_only()
        .column(rollout::Column::Id)
        .filter(rollout::Column::State.is_in([RolloutState::Active, RolloutState::Paused]))
        .order_by_asc(rollout::Column::Id)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut changed = Vec::new();
    for id in ids {
        match evaluate_one(state, id, now).await {
            Ok(Some(moved)) => {
                log_move(id, &moved);
                changed.push(moved.firmware_id);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(rollout_id = %id, error = %format!("{e:#}"), "rollout skipped: it cannot be evaluated");
            }
        }
    }
    let moved = changed.len();
    changed.sort();
    changed.dedup();
    for firmware_id in changed {
        state.release_changed(firmware_id).await;
    }
    Ok(moved)
}

/// Evaluates one rollout in its own transaction, on its locked row.
async fn evaluate_one(state: &AppState, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<Option<Moved>> {
    let txn = crate::db::begin_write(&state.db).await?;
    // Gone, or moved by someone else since it was listed: whatever it is now decides.
    let Some(row) = lock(&txn, id).await? else { return Ok(None) };
    let at = position(&row).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !matches!(at.state, RolloutState::Active | RolloutState::Paused) {
        return Ok(None);
    }
    let stages = Stages::from_json(&row.stages)?;
    let counts = counts(&txn, id).await?;
    let outcomes = outcomes(&counts);
    let health = Health {
        max_failure_rate: row.max_failure_rate,
        min_reports: u64::try_from(row.min_reports).unwrap_or(0),
    };
    let age = (now - row.stage_started_at).num_seconds();
    let Some(decision) = evaluate(at, &stages, health, outcomes, age) else { return Ok(None) };
    let firmware_id = row.firmware_id;
    match decision {
        Decision::Halt => {
            let detail = json!({
                "installed": outcomes.installed,
                "failed": outcomes.failed,
                "failure_rate_ppm": outcomes.failure_rate().map(|r| (r * 1e6).round() as i64),
                "max_failure_rate_ppm": (row.max_failure_rate * 1e6).round() as i64,
                "min_reports": row.min_reports,
            });
            let to = Position { state: RolloutState::Halted, ..at };
            move_to(&txn, row, to, ACTOR, EventKind::Halted, detail, now).await?;
        }
        Decision::Advance(to) => {
            let kind =
                if to.state == RolloutState::Completed { EventKind::Completed } else { EventKind::Advanced };
            move_to(&txn, row, to, ACTOR, kind, json!({}), now).await?;
        }
    }
    txn.commit().await?;
    Ok(Some(Moved { firmware_id, decision, outcomes }))
}

fn log_move(id: Uuid, moved: &Moved) {
    match moved.decision {
        Decision::Halt => tracing::warn!(
            rollout_id = %id,
            installed = moved.outcomes.installed,
            failed = moved.outcomes.failed,
            "rollout halted"
        ),
        Decision::Advance(to) => {
            let kind =
                if to.state == RolloutState::Completed { EventKind::Completed } else { EventKind::Advanced };
            tracing::info!(rollout_id = %id, stage = to.stage, kind = kind.as_str(), "rollout moved");
        }
    }
}
