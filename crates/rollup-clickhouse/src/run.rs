//! A run of the `clickhouse` target: the watermark moves only after the buckets it passes are written.
//!
//! The bookkeeping lives in the PostgreSQL analytics schema the other targets
//! use (migrations/analytics), on the `bookkeeping` connection: the run is a
//! row of `analytics.rollup_runs` with target `clickhouse`, whose id is the
//! `version` of every row it writes (identity values only grow, so a later
//! run's rows replace an earlier run's), and its watermark is the row
//! [`WATERMARK`] of `analytics.rollup_watermarks`, apart from the PostgreSQL
//! targets' one. A run
//!
//! 1. takes the session advisory lock [`RUN_LOCK`] on `bookkeeping` (one run
//!    of the target at a time; another one fails at once with
//!    [`Error::RunLocked`]);
//! 2. picks the new watermark `U` as the PostgreSQL targets do
//!    ([`rollup_engine::run::safe_upper_bound`]) and lists the
//!    (organization, hour) buckets of the events ingested since the
//!    watermark with the engine's `analytics/transforms/dirty_buckets.sql`;
//! 3. writes their hourly rows on ClickHouse in batches of
//!    `max_batch_buckets`, then derives each of their (organization, day)
//!    pairs once, from all the run's hours ([`crate::buckets`]);
//! 4. moves the watermark to `U` and records the run as succeeded.
//!
//! The first run and a [`RunMode::Full`] one rebuild instead of listing
//! buckets: they stream the hourly rows of every event, one partition of
//! `usage_events` at a time, derive the daily rows month by month, and then
//! delete every row they did not write ([`crate::prune`]). A
//! [`RunMode::Recompute`] run adds every bucket of the hours overlapping its
//! range to step 2 and deletes the rows of those hours it did not write
//! again. Rows whose events are gone disappear either way.
//!
//! There is no queue table: the buckets between the watermark and `U` are
//! the queue. A run that stops before step 4 (a crash, a ClickHouse error)
//! leaves the watermark where it was, so the next run lists and rewrites the
//! same buckets again with its own, higher version: a replay, which changes
//! nothing readers see.

use std::collections::BTreeSet;
use std::time::Instant;

use rollup_engine::config::EngineSettings;
pub use rollup_engine::run::RunMode;
use time::{Date, OffsetDateTime};
use tokio_postgres::Client;

use crate::buckets::{
    Bucket, DERIVE_PAIRS, derive_days, derive_month, utc_text, write_hours, write_range,
};
use crate::migrate::with_session_lock;
use crate::prune::{self, Versions};
use crate::transforms::{self, postgres};
use crate::{ClickHouse, Error};

/// The `source_table` of the target's row in `analytics.rollup_watermarks`.
pub const WATERMARK: &str = "public.usage_events@clickhouse";

/// The session advisory lock (two `int4` keys) a run holds on the
/// bookkeeping database: "dbch", and 2.
pub const RUN_LOCK: (i32, i32) = (0x6462_6368, 2);

/// The target's name in `analytics.rollup_runs`.
pub const TARGET: &str = "clickhouse";

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The run's id in `analytics.rollup_runs`, and the version of its rows.
    pub run_id: i64,
    /// Whether every bucket was written: the first run, or a
    /// [`RunMode::Full`] one.
    pub full_rebuild: bool,
    /// The watermark before the run (`None` on the first run).
    pub watermark_from: Option<OffsetDateTime>,
    /// The watermark after it.
    pub watermark_to: OffsetDateTime,
    /// (organization, hour) buckets rewritten.
    pub buckets: u64,
    /// Distinct hours among them.
    pub hours: u64,
    /// Hourly rows written.
    pub hourly_rows_written: u64,
    /// (organization, day) pairs whose daily rows were written again.
    pub days: u64,
}

/// One run: see the module documentation.
pub async fn run(
    ch: &ClickHouse,
    source: &Client,
    bookkeeping: &Client,
    settings: &EngineSettings,
    mode: RunMode,
) -> Result<RunReport, Error> {
    if let RunMode::Recompute { from, to } = mode
        && from >= to
    {
        return Err(Error::InvalidRange { from, to });
    }
    with_session_lock(bookkeeping, RUN_LOCK, Error::RunLocked, async {
        recorded(ch, source, bookkeeping, settings, mode).await
    })
    .await
}

/// A run under the lock, recorded in `analytics.rollup_runs`.
async fn recorded(
    ch: &ClickHouse,
    source: &Client,
    bookkeeping: &Client,
    settings: &EngineSettings,
    mode: RunMode,
) -> Result<RunReport, Error> {
    let run_id: i64 = bookkeeping
        .query_one(
            "INSERT INTO analytics.rollup_runs (target) VALUES ($1) RETURNING id",
            &[&TARGET],
        )
        .await
        .map_err(postgres("recording the run"))?
        .get(0);
    let started = Instant::now();
    let result = work(ch, source, bookkeeping, settings, mode, run_id).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let recorded = match &result {
        Ok(report) => {
            bookkeeping
                .execute(
                    "UPDATE analytics.rollup_runs SET status = 'succeeded', finished_at = clock_timestamp(), \
                     duration_ms = $2, watermark_from_at = $3, watermark_to_at = $4, buckets_queued = $5, \
                     buckets_covered = $5, hours_covered = $6, days_covered = $7, hourly_rows_written = $8 \
                     WHERE id = $1",
                    &[
                        &run_id,
                        &duration_ms,
                        &report.watermark_from,
                        &report.watermark_to,
                        &i32::try_from(report.buckets).unwrap_or(i32::MAX),
                        &i32::try_from(report.hours).unwrap_or(i32::MAX),
                        &i32::try_from(report.days).unwrap_or(i32::MAX),
                        &i64::try_from(report.hourly_rows_written).unwrap_or(i64::MAX),
                    ],
                )
                .await
        }
        Err(e) => {
            // The message names servers and files, never credentials.
            let message: String = e.to_string().chars().take(4000).collect();
            bookkeeping
                .execute(
                    "UPDATE analytics.rollup_runs SET status = 'failed', finished_at = clock_timestamp(), \
                     duration_ms = $2, error_message = $3 WHERE id = $1",
                    &[&run_id, &duration_ms, &message],
                )
                .await
        }
    };
    let report = result?;
    recorded.map_err(postgres("recording the end of the run"))?;
    Ok(report)
}

async fn work(
    ch: &ClickHouse,
    source: &Client,
    bookkeeping: &Client,
    settings: &EngineSettings,
    mode: RunMode,
    run_id: i64,
) -> Result<RunReport, Error> {
    bookkeeping
        .execute(
            "INSERT INTO analytics.rollup_watermarks (source_table, watermark_at) VALUES ($1, '-infinity') \
             ON CONFLICT (source_table) DO NOTHING",
            &[&WATERMARK],
        )
        .await
        .map_err(postgres("creating the watermark"))?;
    let watermark_from: Option<OffsetDateTime> = bookkeeping
        .query_one(
            "SELECT nullif(watermark_at, '-infinity') FROM analytics.rollup_watermarks WHERE source_table = $1",
            &[&WATERMARK],
        )
        .await
        .map_err(postgres("reading the watermark"))?
        .get(0);
    let bound = rollup_engine::run::safe_upper_bound(source, settings).await?;
    let from =
        watermark_from.unwrap_or(OffsetDateTime::UNIX_EPOCH - time::Duration::days(365 * 100));
    // A prepared transaction's events carry its start, which no view shows
    // once it is prepared: the watermark stays where it was until it is
    // resolved, as on the other targets.
    let watermark_to = if bound.held_by_prepared {
        from.min(bound.at)
    } else {
        bound.at
    };
    let full = watermark_from.is_none() || mode == RunMode::Full;
    let version = u64::try_from(run_id).expect("identity values are positive");
    let covered = if full {
        rebuild(ch, source, version).await?
    } else {
        rewrite_buckets(ch, source, settings, mode, (from, watermark_to), version).await?
    };
    let report = RunReport {
        run_id,
        full_rebuild: full,
        watermark_from,
        watermark_to,
        buckets: covered.buckets,
        hours: covered.hours,
        hourly_rows_written: covered.hourly_rows,
        days: covered.days,
    };
    bookkeeping
        .execute(
            "UPDATE analytics.rollup_watermarks SET watermark_at = $2, updated_at = now() WHERE source_table = $1",
            &[&WATERMARK, &watermark_to],
        )
        .await
        .map_err(postgres("moving the watermark"))?;
    Ok(report)
}

/// What a run covered.
struct Covered {
    buckets: u64,
    hours: u64,
    hourly_rows: u64,
    days: u64,
}

/// The earliest and latest times a full rebuild reads events between:
/// PostgreSQL's `timestamptz` holds both.
const EARLIEST: OffsetDateTime = time::macros::datetime!(0001-01-01 0:00 UTC);
const LATEST: OffsetDateTime = time::macros::datetime!(9999-12-31 0:00 UTC);

/// A full rebuild: every event's hourly rows, one partition of the events
/// at a time (the ranges the `local` target's rebuild reads), then the
/// daily rows month by month, then every row not written by this run
/// deleted.
async fn rebuild(ch: &ClickHouse, source: &Client, version: u64) -> Result<Covered, Error> {
    let mut edges = vec![EARLIEST];
    edges.extend(rollup_engine::run::partition_bounds(source).await?);
    edges.push(LATEST);
    for table in ["usage_hourly_rollups_local", "usage_daily_rollups_local"] {
        prune::delete(ch, table, "1", Versions::NotOlder, version).await?;
    }
    let mut hourly_rows = 0;
    for range in edges.windows(2) {
        hourly_rows += write_range(ch, source, range[0], range[1], version).await?;
    }
    prune::delete(
        ch,
        "usage_hourly_rollups_local",
        "1",
        Versions::Older,
        version,
    )
    .await?;
    // What the run wrote, counted where it is rather than kept per row.
    let summary = ch
        .query(
            0,
            &format!(
                "SELECT uniqExact(organization_id, hour_at), uniqExact(hour_at), \
                 uniqExact(organization_id, toDate(hour_at)), groupUniqArray(toYYYYMM(hour_at)) \
                 FROM usage_hourly_rollups WHERE version = {version} FORMAT TabSeparated"
            ),
            "counting what the rebuild wrote",
        )
        .await?;
    let (buckets, hours, days, months) = parse_summary(&summary).ok_or_else(|| Error::Server {
        node: ch.node_name(0),
        context: "counting what the rebuild wrote".into(),
        message: format!("unexpected answer {:?}", summary.trim()),
    })?;
    for month in months {
        derive_month(ch, month, version).await?;
    }
    prune::delete(
        ch,
        "usage_daily_rollups_local",
        "1",
        Versions::Older,
        version,
    )
    .await?;
    Ok(Covered {
        buckets,
        hours,
        hourly_rows,
        days,
    })
}

/// An incremental run or a recompute: the buckets of the events ingested in
/// `ingested` (and of the recomputed hours), in batches of
/// `max_batch_buckets`, then each of their (organization, day) pairs once,
/// from all of the run's hours.
async fn rewrite_buckets(
    ch: &ClickHouse,
    source: &Client,
    settings: &EngineSettings,
    mode: RunMode,
    ingested: (OffsetDateTime, OffsetDateTime),
    version: u64,
) -> Result<Covered, Error> {
    let mut buckets: BTreeSet<Bucket> = source
        .query(&transforms::dirty_buckets(), &[&ingested.0, &ingested.1])
        .await
        .map_err(postgres(
            "listing the buckets with analytics/transforms/dirty_buckets.sql",
        ))?
        .iter()
        .map(|row| Bucket {
            hour_at: row.get(0),
            organization_id: row.get(1),
        })
        .collect();
    // The hours a recompute covers: from the hour holding `from` to the
    // end of the hour holding the instant before `to`.
    let range = match mode {
        RunMode::Recompute { from, to } => {
            let first = hour_floor(from);
            let end = hour_floor(to - time::Duration::MICROSECOND) + time::Duration::HOUR;
            buckets.extend(buckets_between(source, first, end).await?);
            Some((first, end))
        }
        _ => None,
    };
    let buckets: Vec<Bucket> = buckets.into_iter().collect();
    let hours = range.map(|(first, end)| {
        format!(
            "hour_at >= toDateTime('{}', 'UTC') AND hour_at < toDateTime('{}', 'UTC')",
            utc_text(first),
            utc_text(end)
        )
    });
    if let Some(hours) = &hours {
        prune::delete(
            ch,
            "usage_hourly_rollups_local",
            hours,
            Versions::NotOlder,
            version,
        )
        .await?;
    }
    let batch = usize::try_from(settings.max_batch_buckets)
        .unwrap_or(usize::MAX)
        .max(1);
    let mut hourly_rows = 0;
    let mut days = BTreeSet::new();
    for chunk in buckets.chunks(batch) {
        let (rows, chunk_days) = write_hours(ch, source, chunk, version).await?;
        hourly_rows += rows;
        days.extend(chunk_days);
    }
    // A recompute: rows of the covered hours that this run did not write
    // again go, and with them the daily rows of their (organization, day)
    // pairs, which are derived again below from what is left.
    if let Some(hours) = &hours {
        let stale = ch
            .query(
                0,
                &format!(
                    "SELECT DISTINCT organization_id, toDate(hour_at) FROM usage_hourly_rollups \
                     WHERE {hours} AND version < {version} FORMAT TabSeparated"
                ),
                "listing the rows the recompute replaces",
            )
            .await?;
        days.extend(stale.lines().filter_map(parse_pair));
        prune::delete(
            ch,
            "usage_hourly_rollups_local",
            hours,
            Versions::Older,
            version,
        )
        .await?;
    }
    let days: Vec<(i64, Date)> = days.into_iter().collect();
    for chunk in days.chunks(DERIVE_PAIRS) {
        // The daily rows of a recompute's pairs: foreign versions go first,
        // older ones once the new rows are written (see crate::prune).
        let pairs = range.is_some().then(|| {
            let pairs: Vec<String> = chunk
                .iter()
                .map(|(organization, day)| format!("({organization}, toDate('{day}'))"))
                .collect();
            format!("(organization_id, day) IN ({})", pairs.join(", "))
        });
        if let Some(pairs) = &pairs {
            prune::delete(
                ch,
                "usage_daily_rollups_local",
                pairs,
                Versions::NotOlder,
                version,
            )
            .await?;
        }
        derive_days(ch, &chunk.iter().copied().collect(), version).await?;
        if let Some(pairs) = &pairs {
            prune::delete(
                ch,
                "usage_daily_rollups_local",
                pairs,
                Versions::Older,
                version,
            )
            .await?;
        }
    }
    Ok(Covered {
        buckets: buckets.len() as u64,
        hours: buckets
            .iter()
            .map(|b| b.hour_at)
            .collect::<BTreeSet<_>>()
            .len() as u64,
        hourly_rows,
        days: days.len() as u64,
    })
}

/// The start of the UTC hour holding `at`.
fn hour_floor(at: OffsetDateTime) -> OffsetDateTime {
    let seconds = at.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(seconds - seconds.rem_euclid(3600))
        .expect("the start of an hour of a valid time is valid")
}

/// Every (organization, hour) bucket with events that occurred in `[first, end)`.
async fn buckets_between(
    source: &Client,
    first: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<Vec<Bucket>, Error> {
    Ok(source
        .query(
            "SELECT DISTINCT date_trunc('hour', occurred_at, 'UTC'), organization_id \
             FROM public.usage_events WHERE occurred_at >= $1 AND occurred_at < $2",
            &[&first, &end],
        )
        .await
        .map_err(postgres("listing the buckets of the recomputed range"))?
        .iter()
        .map(|row| Bucket {
            hour_at: row.get(0),
            organization_id: row.get(1),
        })
        .collect())
}

/// The rebuild's summary line: buckets, hours, (organization, day) pairs,
/// and the months as `[202510,202511]`.
fn parse_summary(line: &str) -> Option<(u64, u64, u64, Vec<u32>)> {
    let fields: Vec<&str> = line.trim().split('\t').collect();
    let [buckets, hours, days, months] = fields[..] else {
        return None;
    };
    let months = months.strip_prefix('[')?.strip_suffix(']')?;
    let months = if months.is_empty() {
        Vec::new()
    } else {
        months
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?
    };
    Some((
        buckets.parse().ok()?,
        hours.parse().ok()?,
        days.parse().ok()?,
        months,
    ))
}

/// An `organization_id<TAB>YYYY-MM-DD` line of ClickHouse's.
fn parse_pair(line: &str) -> Option<(i64, Date)> {
    let (organization, day) = line.split_once('\t')?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Some((organization.parse().ok()?, Date::parse(day, format).ok()?))
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn hours_and_pairs() {
        assert_eq!(
            hour_floor(datetime!(2025-11-16 13:59:59.9 +01:00)),
            datetime!(2025-11-16 12:00 UTC)
        );
        assert_eq!(
            parse_pair("42\t2025-11-16"),
            Some((42, date!(2025 - 11 - 16)))
        );
        assert_eq!(parse_pair("42"), None);
        assert_eq!(
            parse_summary("720\t24\t30\t[202511,202510]\n"),
            Some((720, 24, 30, vec![202511, 202510]))
        );
        assert_eq!(parse_summary("0\t0\t0\t[]"), Some((0, 0, 0, vec![])));
        assert_eq!(parse_summary("1\t2"), None);
    }
}
