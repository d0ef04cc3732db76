//! `dbops rollup status`: the watermark, the queue, and recent runs with their durations, slow ones flagged.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::config::EngineSettings;
use crate::run::{SOURCE_TABLE, is_slow};
use crate::{Error, ensure_schema};

/// The state of a target's rollups.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// Events ingested before this have been queued or rolled up; `None`
    /// before the first run.
    pub watermark: Option<OffsetDateTime>,
    /// (organization, hour) buckets waiting in the queue.
    pub queued_buckets: i64,
    /// Events in `analytics.quarantined_events`: left out of the rollups
    /// because they cannot be rolled up.
    pub quarantined_events: i64,
    /// The most recent runs, newest first.
    pub runs: Vec<RunRecord>,
}

/// One row of `analytics.rollup_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The run's id.
    pub id: i64,
    /// Its target.
    pub target: String,
    /// `running`, `succeeded`, `failed` or `abandoned` (its session ended
    /// while it was running, as a later run found).
    pub status: String,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// How long it took; `None` while running (or after a crash).
    pub duration: Option<Duration>,
    /// (organization, hour) buckets it queued.
    pub buckets_queued: i64,
    /// (organization, hour) buckets it recomputed.
    pub buckets_covered: i64,
    /// Distinct hours of data it recomputed.
    pub hours_covered: i64,
    /// Days it recomputed.
    pub days_covered: i64,
    /// Hourly rows written.
    pub hourly_rows_written: i64,
    /// Daily rows written.
    pub daily_rows_written: i64,
    /// Why it failed.
    pub error_message: Option<String>,
    /// Whether it took longer than the limit per hour covered.
    pub slow: bool,
}

impl RunRecord {
    /// Seconds per hour of data covered, if it covered any.
    pub fn seconds_per_hour(&self) -> Option<f64> {
        let duration = self.duration?;
        (self.hours_covered > 0).then(|| duration.as_secs_f64() / self.hours_covered as f64)
    }
}

/// Reads the watermark, the queue depth and the `limit` most recent runs.
pub async fn status(
    rollups: &Client,
    settings: &EngineSettings,
    limit: i64,
) -> Result<StatusReport, Error> {
    ensure_schema(rollups).await?;
    let watermark = rollups
        .query_opt(
            "SELECT nullif(watermark_at, '-infinity') FROM analytics.rollup_watermarks WHERE source_table = $1",
            &[&SOURCE_TABLE],
        )
        .await
        .map_err(Error::db("reading the watermark"))?
        .and_then(|row| row.get(0));
    let queued_buckets: i64 = rollups
        .query_one(
            "SELECT count(*) FROM (SELECT DISTINCT hour_at, organization_id FROM analytics.rollup_dirty_buckets) AS q",
            &[],
        )
        .await
        .map_err(Error::db("counting queued buckets"))?
        .get(0);
    let quarantined_events = quarantined_events(rollups).await?;
    let rows = rollups
        .query(
            "SELECT id, target, status, started_at, duration_ms, buckets_queued, buckets_covered, hours_covered, \
                    days_covered, hourly_rows_written, daily_rows_written, error_message \
             FROM analytics.rollup_runs ORDER BY started_at DESC, id DESC LIMIT $1",
            &[&limit],
        )
        .await
        .map_err(Error::db("reading recent runs"))?;
    let runs = rows
        .iter()
        .map(|row| {
            let duration = row
                .get::<_, Option<i64>>(4)
                .map(|ms| Duration::from_millis(ms.max(0) as u64));
            let count = |i: usize| i64::from(row.get::<_, i32>(i));
            let hours_covered = count(7);
            RunRecord {
                id: row.get(0),
                target: row.get(1),
                status: row.get(2),
                started_at: row.get(3),
                duration,
                buckets_queued: count(5),
                buckets_covered: count(6),
                hours_covered,
                days_covered: count(8),
                hourly_rows_written: row.get(9),
                daily_rows_written: row.get(10),
                error_message: row.get(11),
                slow: duration.is_some_and(|d| is_slow(d, hours_covered.max(0) as u64, settings)),
            }
        })
        .collect();
    Ok(StatusReport {
        watermark,
        queued_buckets,
        quarantined_events,
        runs,
    })
}

/// How many events `analytics.quarantined_events` holds: events the rollups
/// leave out because they cannot be rolled up (see [`crate::run`]).
pub async fn quarantined_events(rollups: &Client) -> Result<i64, Error> {
    ensure_schema(rollups).await?;
    Ok(rollups
        .query_one("SELECT count(*) FROM analytics.quarantined_events", &[])
        .await
        .map_err(Error::db("counting quarantined events"))?
        .get(0))
}
