//! `GET /v1/stats`: the last 24 hours by hour (jobs submitted, units they earned once recorded)
//! and jobs by state — what the dashboard's charts draw. Read from the store's time index, newest
//! first, stopping at the window's start: the cost follows a day's jobs, never the whole history;
//! the answer is kept for [`STATS_TTL`] so a room full of dashboards costs one read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};
use crate::job_index::JobFilter;
use crate::lifecycle::JobState;

/// How long one answer is reused.
pub const STATS_TTL: Duration = Duration::from_secs(30);
/// Jobs read at most for one answer; past it the hours are lower bounds (`truncated`).
const MAX_JOBS_READ: usize = 200_000;
const HOUR_MS: u64 = 3_600_000;

/// One hour of the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourStats {
    /// Its start, unix ms.
    pub start_ms: u64,
    /// Jobs submitted in it.
    pub jobs: u64,
    /// Units those jobs earned on chain so far.
    pub units: u64,
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsView {
    /// The last 24 hours, oldest first (the last one is the current, partial hour).
    pub hours: Vec<HourStats>,
    /// Jobs per state, all time.
    pub jobs_by_state: BTreeMap<String, u64>,
    /// When this answer was computed, unix ms.
    pub generated_ms: u64,
    /// Whether more jobs fell in the window than were read.
    pub truncated: bool,
}

/// The hours of the 24-hour window ending with the hour that holds `now_ms`, from `jobs`
/// (in any order; those outside the window are skipped).
pub fn bucket<'a>(
    now_ms: u64,
    jobs: impl Iterator<Item = &'a crate::lifecycle::Job>,
) -> Vec<HourStats> {
    let current = now_ms - now_ms % HOUR_MS;
    let first = current.saturating_sub(23 * HOUR_MS);
    let mut hours: Vec<HourStats> = (0..24)
        .map(|i| HourStats {
            start_ms: first + i * HOUR_MS,
            ..HourStats::default()
        })
        .collect();
    for job in jobs {
        if job.submitted_ms < first || job.submitted_ms >= current + HOUR_MS {
            continue;
        }
        let h = &mut hours[((job.submitted_ms - first) / HOUR_MS) as usize];
        h.jobs += 1;
        if matches!(job.state, JobState::Recorded { .. }) {
            h.units += job.credits.iter().map(|c| c.units).sum::<u64>();
        }
    }
    hours
}

/// The 24 hourly buckets ending with the hour of `now_ms`, read from `store`'s time index back
/// to the window's start; and whether the read stopped at its cap.
pub fn read_hours(
    store: &crate::store::DispatcherStore,
    now_ms: u64,
) -> Result<(Vec<HourStats>, bool), crate::job_index::ListError> {
    let first = (now_ms - now_ms % HOUR_MS).saturating_sub(23 * HOUR_MS);
    let mut jobs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = store.list_jobs(&JobFilter::default(), 1_000, cursor.as_deref())?;
        let older = page.last().is_none_or(|j| j.submitted_ms < first);
        jobs.extend(page);
        match next {
            Some(_) if jobs.len() >= MAX_JOBS_READ => {
                return Ok((bucket(now_ms, jobs.iter()), true));
            }
            Some(c) if !older => cursor = Some(c),
            _ => return Ok((bucket(now_ms, jobs.iter()), false)),
        }
    }
}

pub(super) async fn stats(State(s): State<Arc<ApiState>>) -> Response {
    if let Ok(cache) = s.stats_cache.lock()
        && let Some((at, view)) = cache.as_ref()
        && at.elapsed() < STATS_TTL
    {
        return Json(view.clone()).into_response();
    }
    let status = match s.engine.status().await {
        Ok(st) => st,
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    let store = s.store.clone();
    let now = pocmesh_protocol::unix_ms_now();
    let read =
        tokio::task::spawn_blocking(move || read_hours(&store, now).map_err(|e| e.to_string()))
            .await;
    let (hours, truncated) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return ApiError::unavailable(e).into_response(),
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    let view = StatsView {
        hours,
        jobs_by_state: status.jobs,
        generated_ms: now,
        truncated,
    };
    if let Ok(mut cache) = s.stats_cache.lock() {
        *cache = Some((Instant::now(), view.clone()));
    }
    Json(view).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{Credit, Job};
    use pocmesh_protocol::{Address, BatchId, Hash32, JobId, JobParams, JobSpec, Limits};

    fn job(n: u8, submitted_ms: u64, recorded_units: Option<u64>) -> Job {
        let spec = JobSpec {
            params: JobParams::Hash {
                seed: Hash32([n; 32]),
                iterations: 1,
            },
            limits: Limits {
                max_ms: 1,
                max_mem_mb: 1,
                max_output_bytes: 32,
                max_fuel: None,
            },
        };
        let mut job = Job::queued(JobId::from([n; 32]), spec, 1, submitted_ms);
        if let Some(units) = recorded_units {
            job.state = JobState::Recorded {
                batch: BatchId::from([1; 32]),
                tx: Hash32([2; 32]),
                block: 1,
            };
            job.credits.push(Credit {
                job: job.id,
                node: Address::from([3; 20]),
                peer: String::new(),
                wallet: Address::from([4; 20]),
                units,
                result_hash: Hash32([0; 32]),
            });
        }
        job
    }

    #[test]
    fn jobs_fall_in_their_hour_and_only_recorded_ones_count_units() {
        let now = 100 * HOUR_MS + 1_234;
        let jobs = [
            job(1, now, Some(5)),                    // the current hour
            job(2, now - HOUR_MS, Some(3)),          // the hour before
            job(3, now - HOUR_MS, None),             // queued: a job, no units
            job(4, now - 23 * HOUR_MS, Some(7)),     // the window's first hour
            job(5, now - 24 * HOUR_MS - 1, Some(9)), // outside the window
        ];
        let hours = bucket(now, jobs.iter());
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[23].start_ms, 100 * HOUR_MS);
        assert_eq!((hours[23].jobs, hours[23].units), (1, 5));
        assert_eq!((hours[22].jobs, hours[22].units), (2, 3));
        assert_eq!((hours[0].jobs, hours[0].units), (1, 7));
        assert_eq!(
            hours.iter().map(|h| h.jobs).sum::<u64>(),
            4,
            "the old job is left out"
        );
    }
}
