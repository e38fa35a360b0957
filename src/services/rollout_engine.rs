//! The background evaluation of rollouts: every `rollout.tick_interval_s` it halts rollouts whose
//! failure rate crossed their threshold (recording the figures), advances healthy stages whose
//! `min_duration_s` has passed, and completes rollouts after their last stage. It acts as the
//! actor `system`.
//!
//! With several instances on one PostgreSQL, one tick runs at a time: each tick is one
//! transaction that first takes a transaction-level advisory lock and skips the tick if another
//! instance holds it. SQLite serialises writers by itself.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, Statement};
use serde_json::json;

use crate::db::entities::rollout;
use crate::domain::rollout::{Decision, Health, Outcomes, RolloutState, Stages, evaluate};
use crate::services::rollouts::{counts, move_to, position};
use crate::state::AppState;

/// Arbitrary, fixed: the advisory lock every instance contends for.
pub const TICK_LOCK_KEY: i64 = 0x6e77_6f74_615f_726f; // "nwota_ro"

pub const ACTOR: &str = "system";

/// Evaluates every active or paused rollout as of `now`; returns how many changed.
pub async fn tick(state: &AppState, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let txn = crate::db::begin_write(&state.db).await?;
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        let locked = txn
            .query_one_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                format!("SELECT pg_try_advisory_xact_lock({TICK_LOCK_KEY}) AS locked"),
            ))
            .await?
            .map(|row| row.try_get::<bool>("", "locked"))
            .transpose()?
            .unwrap_or(false);
        if !locked {
            return Ok(0);
        }
    }
    let rows = rollout::Entity::find()
        .filter(rollout::Column::State.is_in([RolloutState::Active.as_str(), RolloutState::Paused.as_str()]))
        .all(&txn)
        .await?;
    let mut changed = Vec::new();
    for row in rows {
        let stages =
            Stages::from_json(&row.stages).map_err(|e| anyhow::anyhow!("rollout {}: {e}", row.id))?;
        let counts = counts(&txn, row.id).await?;
        let outcomes = Outcomes {
            installed: counts.get("installed").copied().unwrap_or(0),
            failed: counts.get("failed").copied().unwrap_or(0),
        };
        let health = Health {
            max_failure_rate: row.max_failure_rate,
            min_reports: u64::try_from(row.min_reports).unwrap_or(0),
        };
        let at = position(&row).map_err(|e| anyhow::anyhow!("rollout {}: {e}", row.id))?;
        let age = (now - row.stage_started_at).num_seconds();
        let Some(decision) = evaluate(at, &stages, health, outcomes, age) else { continue };
        let id = row.id;
        changed.push(row.firmware_id);
        match decision {
            Decision::Halt => {
                let detail = json!({
                    "installed": outcomes.installed,
                    "failed": outcomes.failed,
                    "failure_rate_ppm": outcomes.failure_rate().map(|r| (r * 1e6).round() as i64),
                    "max_failure_rate_ppm": (row.max_failure_rate * 1e6).round() as i64,
                    "min_reports": row.min_reports,
                });
                let to = crate::domain::rollout::Position { state: RolloutState::Halted, ..at };
                move_to(&txn, row, to, ACTOR, "halted", detail, now).await?;
                tracing::warn!(rollout_id = %id, installed = outcomes.installed, failed = outcomes.failed, "rollout halted");
            }
            Decision::Advance(to) => {
                let kind = if to.state == RolloutState::Completed { "completed" } else { "advanced" };
                move_to(&txn, row, to, ACTOR, kind, json!({}), now).await?;
                tracing::info!(rollout_id = %id, stage = to.stage, kind, "rollout moved");
            }
        }
    }
    txn.commit().await?;
    let moved = changed.len();
    changed.sort();
    changed.dedup();
    for firmware_id in changed {
        state.release_changed(firmware_id).await;
    }
    Ok(moved)
}
