//! A rollout over time, for the release console's chart: report counts by status per interval
//! since the rollout started, the failure rate as it stood at the end of each interval, and when
//! each stage was entered (from the event chain).
//!
//! The counts come from `device_report`, which keeps one row per device and release: a device
//! is counted once, by its latest status, in the interval of its latest report (the database
//! groups them: [`crate::db::report_timeline`]). So the last interval's cumulative failure rate
//! is the rollout view's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde::Serialize;
use uuid::Uuid;

use crate::db::entities::rollout;
use crate::db::{report_timeline, rollout_events};
use crate::domain::ReportStatus;
use crate::domain::rollout::{EventKind, Outcomes, StageInput};
use crate::error::ApiError;
use crate::state::AppState;

/// The most intervals one answer holds.
pub const MAX_BUCKETS: u64 = 1000;
/// The longest interval, in seconds (a day).
pub const MAX_STEP_S: u64 = 86_400;

/// `GET /v1/admin/rollouts/{id}/timeline`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    pub rollout_id: Uuid,
    /// Seconds per interval.
    pub step: u64,
    /// When the rollout was created: the first interval starts here.
    pub started_at: DateTime<Utc>,
    /// When this answer was computed: the last interval holds it.
    pub until: DateTime<Utc>,
    pub max_failure_rate: f64,
    pub min_reports: i64,
    /// Oldest first, one per `step` seconds, none skipped.
    pub buckets: Vec<Bucket>,
    /// The stages as published, each with when it was (last) entered, if it was.
    pub stages: Vec<StageEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    /// Devices (counted towards health) whose latest report fell in this interval, by status.
    pub counts: BTreeMap<String, u64>,
    /// `failed / (installed + failed)` over the devices reported up to the end of this interval;
    /// null before any outcome.
    pub failure_rate: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StageEntry {
    pub stage: usize,
    pub percent: f64,
    pub min_duration_s: u64,
    /// Null for a stage not reached yet.
    pub entered_at: Option<DateTime<Utc>>,
}

/// The interval to use: `requested`, checked, or one that keeps the whole rollout within
/// [`MAX_BUCKETS`] (at least a minute). `age_s` is how long the rollout has run.
pub fn choose_step(requested: Option<u64>, age_s: u64) -> Result<u64, ApiError> {
    let smallest = age_s / MAX_BUCKETS + 1;
    match requested {
        None => Ok(smallest.max(60)),
        Some(step) if !(1..=MAX_STEP_S).contains(&step) => {
            Err(ApiError::field("step", format!("must be between 1 and {MAX_STEP_S} seconds")))
        }
        Some(step) if step < smallest => Err(ApiError::field(
            "step",
            format!(
                "the rollout has run for {age_s} s: at least {smallest} s keeps it within {MAX_BUCKETS} intervals"
            ),
        )),
        Some(step) => Ok(step),
    }
}

pub async fn timeline(state: &AppState, id: Uuid, step: Option<u64>) -> Result<Timeline, ApiError> {
    let txn = crate::db::begin_snapshot(&state.db).await?;
    let row = rollout::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("rollout {id} not found")))?;
    let now = Utc::now();
    let age_s = u64::try_from((now - row.created_at).num_seconds()).unwrap_or(0);
    let step = choose_step(step, age_s)?;
    let counts = report_timeline::counts_by_interval(&txn, id, row.created_at, step).await?;
    let events = rollout_events::list(&txn, id).await?;
    txn.commit().await?;

    let buckets = buckets(row.created_at, step, age_s / step + 1, &counts);
    let stages = stage_entries(&row, &events);
    Ok(Timeline {
        rollout_id: id,
        step,
        started_at: row.created_at,
        until: now,
        max_failure_rate: row.max_failure_rate,
        min_reports: row.min_reports,
        buckets,
        stages,
    })
}

/// `count` intervals of `step` seconds from `start`, each with the devices counted in it, from
/// `(interval, status, devices)` rows (one before `start` counts in the first interval, one
/// after the last interval in the last).
fn buckets(start: DateTime<Utc>, step: u64, count: u64, rows: &[(i64, ReportStatus, i64)]) -> Vec<Bucket> {
    let empty: BTreeMap<String, u64> = ReportStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    let mut counts = vec![empty; usize::try_from(count).unwrap_or(1).max(1)];
    let last = counts.len() - 1;
    for (interval, status, devices) in rows {
        let index = usize::try_from(*interval).unwrap_or(0).min(last);
        if let Some(slot) = counts[index].get_mut(status.as_str()) {
            *slot += u64::try_from(*devices).unwrap_or(0);
        }
    }
    let mut so_far = Outcomes { installed: 0, failed: 0 };
    counts
        .into_iter()
        .enumerate()
        .map(|(i, counts)| {
            so_far.installed += counts.get(ReportStatus::Installed.as_str()).copied().unwrap_or(0);
            so_far.failed += counts.get(ReportStatus::Failed.as_str()).copied().unwrap_or(0);
            let offset = chrono::Duration::seconds(i64::try_from(i as u64 * step).unwrap_or(i64::MAX));
            Bucket { start: start + offset, counts, failure_rate: so_far.failure_rate() }
        })
        .collect()
}

/// The published stages with when each was last entered: stage 0 at the `created` event, the
/// others at the event that moved the rollout to them.
fn stage_entries(
    row: &rollout::Model,
    events: &[crate::db::entities::rollout_event::Model],
) -> Vec<StageEntry> {
    let published: Vec<StageInput> = serde_json::from_value(row.stages.clone()).unwrap_or_default();
    let mut entered: BTreeMap<usize, DateTime<Utc>> = BTreeMap::new();
    for event in events {
        let stage_of = |key: &str| event.detail.get(key).and_then(|v| v.as_u64()).map(|s| s as usize);
        match (event.kind, stage_of("from_stage"), stage_of("to_stage")) {
            (EventKind::Created, _, _) => {
                entered.insert(0, event.created_at);
            }
            (_, Some(from), Some(to)) if from != to => {
                entered.insert(to, event.created_at);
            }
            _ => {}
        }
    }
    published
        .into_iter()
        .enumerate()
        .map(|(stage, s)| StageEntry {
            stage,
            percent: s.percent,
            min_duration_s: s.min_duration_s,
            entered_at: entered.get(&stage).copied(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_chosen_to_fit_the_cap_and_a_too_small_one_is_refused() {
        assert_eq!(choose_step(None, 10).unwrap(), 60);
        assert_eq!(choose_step(None, 10 * 86_400).unwrap(), 864 + 1);
        assert_eq!(choose_step(Some(5), 100).unwrap(), 5);
        assert!(choose_step(Some(0), 100).is_err());
        assert!(choose_step(Some(86_401), 100).is_err());
        assert!(choose_step(Some(1), 5000).is_err());
    }

    #[test]
    fn reports_fall_into_their_interval_and_the_rate_accumulates() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let at = |s: i64| start + chrono::Duration::seconds(s);
        let rows = vec![
            (0, ReportStatus::Installed, 1),
            (1, ReportStatus::Failed, 1),
            (-1, ReportStatus::Installed, 1),
            (50, ReportStatus::Downloading, 1),
        ];
        let buckets = buckets(start, 10, 3, &rows);
        assert_eq!(buckets.len(), 3);
        assert_eq!(buckets[0].counts["installed"], 2);
        assert_eq!(buckets[0].failure_rate, Some(0.0));
        assert_eq!(buckets[1].counts["failed"], 1);
        assert_eq!(buckets[1].failure_rate, Some(1.0 / 3.0));
        assert_eq!(buckets[2].counts["downloading"], 1);
        assert_eq!(buckets[2].start, at(20));
    }
}
