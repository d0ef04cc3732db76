//! `dbops rollup run`: recompute the (organization, hour) buckets touched by newly ingested events, then their days.
//!
//! # Late events and the watermark
//! The engine remembers, per source table, a watermark on `ingested_at`:
//! every event ingested before it has had its bucket queued. A run
//!
//! 1. picks a new watermark `U` on the operational database, reads the
//!    (organization, hour) buckets of the events with
//!    `watermark <= ingested_at < U` (`analytics/transforms/dirty_buckets.sql`),
//!    queues them in `analytics.rollup_dirty_buckets` and moves the watermark
//!    to `U`, all in one transaction on the rollups database;
//! 2. claims queued buckets in batches (`FOR UPDATE SKIP LOCKED`), and for
//!    each batch, in one transaction: locks the batch's (organization, day)
//!    pairs, deletes the hourly rows of its buckets and writes them again
//!    from the events (`hourly_rollup.sql`, streamed with binary `COPY`),
//!    deletes the daily rows of its (organization, day) pairs and derives
//!    them again from the hourly rows (`daily_rollup.sql`), and deletes the
//!    claimed queue entries.
//!
//! `ingested_at` defaults to `now()`, the start of the inserting transaction,
//! so a transaction that is still open can commit events whose `ingested_at`
//! is older than a watermark set meanwhile. `U` therefore never passes the
//! start of the oldest transaction open on the operational database
//! (`pg_stat_activity.xact_start`), and stays [`EngineSettings::safety_lag`]
//! behind its clock for sessions the engine's role cannot see. An event
//! whose `ingested_at` is set explicitly to an older time is not found by
//! this; `reconcile` reports its bucket and a [`RunMode::Recompute`] run
//! repairs it.
//!
//! A prepared (two-phase) transaction is not in `pg_stat_activity` while it
//! waits, though its events carry its start as `ingested_at`: while one is
//! listed in `pg_prepared_xacts`, the watermark stays where it is. A role
//! without `pg_read_all_stats` cannot see other roles' transactions at all:
//! the run warns, or refuses ([`EngineSettings::missing_read_all_stats`]).
//!
//! # Poisoned events
//! A row of `hourly_rollup.sql` flagged `poisoned` (an event with a value
//! the rollups refuse, or a sum above [`HOURLY_SUM_LIMIT`]) is not written:
//! its events at fault go to `analytics.quarantined_events` with their
//! reason (`quarantine_events.sql`), and the row is read again without them.
//! Every other row proceeds; see `docs/analytics.md`.
//!
//! A crash loses nothing: the watermark moves in the transaction that queues
//! the buckets, and queue entries are deleted in the transaction that
//! rewrites the buckets. Running again with no new events queues nothing and
//! writes nothing. A run whose session ended while it was `running` is
//! marked `abandoned` by the next run.
//!
//! The first run (no watermark yet) and a [`RunMode::Full`] run rebuild
//! everything in one transaction, holding the global lock exclusively.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::{TryStreamExt, pin_mut};
use time::{Date, OffsetDateTime};
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Transaction};
use tracing::Instrument;

use crate::config::{EngineSettings, MissingGrant};
use crate::histogram::Histogram;
use crate::transform::{
    Bound, DAILY_ROLLUP, DIRTY_BUCKETS, HOURLY_ROLLUP, QUARANTINE_EVENTS, Value,
};
use crate::{Error, ensure_schema, locks};

/// The table whose events are rolled up, as recorded in `rollup_watermarks`.
pub const SOURCE_TABLE: &str = "public.usage_events";

/// The largest sum an hourly row may hold: bigint's maximum / 24, so that
/// the sum of a day's hours (in SQL or in [`Sums::add`]) never overflows.
/// A row past it is poisoned: see the module documentation.
pub const HOURLY_SUM_LIMIT: i64 = i64::MAX / 24;

/// How many days one daily statement of a full rebuild covers, which bounds
/// the memory the engine holds while merging daily histograms.
const DAYS_PER_DAILY_STATEMENT: i64 = 7;

/// What a run should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// The target's name, recorded with the run.
    pub target: String,
    /// Which buckets to recompute.
    pub mode: RunMode,
}

/// Which buckets a run recomputes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// The buckets touched by events ingested since the last run, and any
    /// left queued. The first run of a database is a full rebuild.
    Incremental,
    /// Every bucket: rebuild both tables from all events.
    Full,
    /// Every bucket of the hours overlapping `[from, to)` (those with events
    /// and those with rollup rows) in addition to the incremental work: a
    /// repair after events were written with an explicit, older
    /// `ingested_at`, or after a rollup row was damaged.
    Recompute {
        /// Start of the range.
        from: OffsetDateTime,
        /// End of the range, exclusive.
        to: OffsetDateTime,
    },
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The run's id in `analytics.rollup_runs`.
    pub run_id: i64,
    /// Whether the run rebuilt everything.
    pub full_rebuild: bool,
    /// The watermark before the run; `None` before the first run.
    pub watermark_from: Option<OffsetDateTime>,
    /// The watermark after the run.
    pub watermark_to: Option<OffsetDateTime>,
    /// (organization, hour) buckets queued by this run.
    pub buckets_queued: u64,
    /// (organization, hour) buckets recomputed by this run.
    pub buckets_covered: u64,
    /// Distinct hours recomputed by this run, for any organization: the
    /// hours of data it covered.
    pub hours_covered: u64,
    /// Distinct days whose daily rows were recomputed, for any organization.
    pub days_covered: u64,
    /// Rows written to `usage_hourly_rollups`.
    pub hourly_rows_written: u64,
    /// Rows written to `usage_daily_rollups`.
    pub daily_rows_written: u64,
    /// Events of the buckets this run recomputed that cannot be rolled up:
    /// the run put them in `analytics.quarantined_events` (again, if an
    /// earlier run of the same bucket had) and rolled the buckets up without
    /// them.
    pub events_quarantined: u64,
    /// Earlier runs found `running` whose session had ended (killed, lost),
    /// marked `abandoned` by this run.
    pub abandoned_runs: Vec<i64>,
    /// Whether the role reading the events can see other roles' open
    /// transactions (`pg_read_all_stats`); when not, the watermark covers
    /// them only by the safety lag, and the run warned.
    pub sees_all_transactions: bool,
    /// Whether a prepared (two-phase) transaction on the operational
    /// database held the watermark where it was.
    pub held_by_prepared: bool,
    /// Wall time of the run.
    pub duration: Duration,
    /// Whether the run was slower than [`EngineSettings::slow_run_per_hour`]
    /// per hour covered.
    pub slow: bool,
}

/// Runs the rollups once: see the module documentation.
///
/// `source` is a connection to the operational database; `rollups` one to
/// the database holding the analytics schema (for the `local` target, a
/// second connection to the operational database). The run is recorded in
/// `analytics.rollup_runs`, including when it fails.
pub async fn run(
    source: &Client,
    rollups: &mut Client,
    settings: &EngineSettings,
    options: &RunOptions,
) -> Result<RunReport, Error> {
    ensure_schema(rollups).await?;
    if let RunMode::Recompute { from, to } = options.mode
        && from >= to
    {
        return Err(Error::InvalidOption {
            option: "recompute range",
            message: format!("{from} is not before {to}"),
        });
    }
    let sees_all_transactions = sees_all_transactions(source, settings).await?;
    let started = Instant::now();
    let abandoned_runs = mark_abandoned_runs(rollups).await?;
    // The session's pid and start tell a later run whether this one is
    // still going (see `mark_abandoned_runs`).
    let run_id: i64 = rollups
        .query_one(
            "INSERT INTO analytics.rollup_runs (target, backend_pid, backend_started_at) \
             SELECT $1, pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid() \
             RETURNING id",
            &[&options.target],
        )
        .await
        .map_err(Error::db("recording the start of the run"))?
        .get(0);
    let span = tracing::info_span!(
        "rollup_run",
        target = %options.target,
        run_id,
        full_rebuild = tracing::field::Empty,
        hours_covered = tracing::field::Empty,
        buckets_covered = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let outcome = execute(source, rollups, settings, options, run_id)
        .instrument(span.clone())
        .await;
    let duration = started.elapsed();
    let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    span.record("duration_ms", duration_ms);
    match outcome {
        Ok(mut report) => {
            report.duration = duration;
            report.abandoned_runs = abandoned_runs;
            report.sees_all_transactions = sees_all_transactions;
            report.slow = is_slow(duration, report.hours_covered, settings);
            record_success(rollups, &report, duration_ms).await?;
            span.record("full_rebuild", report.full_rebuild);
            span.record("hours_covered", report.hours_covered);
            span.record("buckets_covered", report.buckets_covered);
            let seconds = duration.as_secs_f64();
            let per_hour = if report.hours_covered == 0 {
                0.0
            } else {
                seconds / report.hours_covered as f64
            };
            span.in_scope(|| {
                tracing::info!(
                    monotonic_counter.dbops_rollup_runs = 1_u64,
                    histogram.dbops_rollup_run_duration_seconds = seconds,
                    histogram.dbops_rollup_run_seconds_per_hour = per_hour,
                    monotonic_counter.dbops_rollup_hours_covered = report.hours_covered,
                    buckets_queued = report.buckets_queued,
                    hourly_rows_written = report.hourly_rows_written,
                    daily_rows_written = report.daily_rows_written,
                    slow = report.slow,
                    "rollup run finished"
                );
                if report.slow {
                    tracing::warn!(
                        seconds,
                        hours_covered = report.hours_covered,
                        limit_per_hour_seconds = settings.slow_run_per_hour.as_secs_f64(),
                        "rollup run slower than the limit per hour of data"
                    );
                }
            });
            Ok(report)
        }
        Err(error) => {
            span.in_scope(|| {
                tracing::error!(
                    monotonic_counter.dbops_rollup_failed_runs = 1_u64,
                    error = %error_chain(&error),
                    "rollup run failed"
                )
            });
            // Best effort: the rollups connection may be the thing that failed.
            let message: String = error_chain(&error).chars().take(4000).collect();
            let _ = rollups
                .execute(
                    "UPDATE analytics.rollup_runs SET status = 'failed', finished_at = clock_timestamp(), \
                     duration_ms = $2, error_message = $3 WHERE id = $1",
                    &[&run_id, &duration_ms, &message],
                )
                .await;
            Err(error)
        }
    }
}

/// Whether the role on `source` sees other roles' transactions in
/// `pg_stat_activity` (`pg_read_all_stats`, or superuser). When it does
/// not, warns naming the grant or, if the settings say so, refuses.
async fn sees_all_transactions(source: &Client, settings: &EngineSettings) -> Result<bool, Error> {
    let row = source
        .query_one(
            "SELECT pg_has_role('pg_read_all_stats', 'USAGE'), current_user::text",
            &[],
        )
        .await
        .map_err(Error::db("checking the source role's grants"))?;
    if row.get(0) {
        return Ok(true);
    }
    let role: String = row.get(1);
    match settings.missing_read_all_stats {
        MissingGrant::Refuse => Err(Error::MissingReadAllStats { role }),
        MissingGrant::Warn => {
            tracing::warn!(
                role = %role,
                grant = "pg_read_all_stats",
                safety_lag_seconds = settings.safety_lag.as_secs_f64(),
                "role {role} lacks pg_read_all_stats: the rollup watermark cannot see other roles' open \
                 transactions and covers them only by the safety lag; GRANT pg_read_all_stats TO {role} \
                 (or set missing_read_all_stats = \"refuse\" in [engine] to stop such runs)"
            );
            Ok(false)
        }
    }
}

/// Marks `abandoned` the runs still `running` whose session has ended: no
/// backend with their pid and start time exists any more (the process was
/// killed, or its host or connection lost). A session the role cannot see
/// the start of counts as alive. Returns their ids.
async fn mark_abandoned_runs(rollups: &Client) -> Result<Vec<i64>, Error> {
    let rows = rollups
        .query(
            "UPDATE analytics.rollup_runs AS r SET status = 'abandoned', \
                 finished_at = greatest(clock_timestamp(), r.started_at), \
                 error_message = format('abandoned: its session (pid %s) ended while it was running', r.backend_pid) \
             WHERE r.status = 'running' AND r.backend_pid IS NOT NULL AND NOT EXISTS ( \
                 SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = r.backend_pid \
                   AND (a.backend_start IS NULL OR a.backend_start = r.backend_started_at)) \
             RETURNING r.id, r.backend_pid",
            &[],
        )
        .await
        .map_err(Error::db("marking abandoned runs"))?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, pid): (i64, i32) = (row.get(0), row.get(1));
        tracing::warn!(
            run_id = id,
            pid,
            "rollup run {id} was left running by a session (pid {pid}) that has ended: marked abandoned; its queued buckets are recomputed by this run"
        );
        ids.push(id);
    }
    Ok(ids)
}

/// Whether a run of `duration` covering `hours` is slower than the limit.
pub fn is_slow(duration: Duration, hours: u64, settings: &EngineSettings) -> bool {
    hours > 0 && duration.as_secs_f64() > settings.slow_run_per_hour.as_secs_f64() * hours as f64
}

fn error_chain(error: &Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

async fn record_success(
    rollups: &Client,
    report: &RunReport,
    duration_ms: i64,
) -> Result<(), Error> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let small = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
    rollups
        .execute(
            "UPDATE analytics.rollup_runs SET status = 'succeeded', finished_at = clock_timestamp(), \
             duration_ms = $2, watermark_from_at = $3, watermark_to_at = $4, buckets_queued = $5, \
             buckets_covered = $6, hours_covered = $7, days_covered = $8, hourly_rows_written = $9, \
             daily_rows_written = $10 WHERE id = $1",
            &[
                &report.run_id,
                &duration_ms,
                &report.watermark_from,
                &report.watermark_to,
                &small(report.buckets_queued),
                &small(report.buckets_covered),
                &small(report.hours_covered),
                &small(report.days_covered),
                &count(report.hourly_rows_written),
                &count(report.daily_rows_written),
            ],
        )
        .await
        .map_err(Error::db("recording the end of the run"))?;
    Ok(())
}

/// A bucket: (hours since the Unix epoch, organization id).
type Bucket = (i64, i64);

async fn execute(
    source: &Client,
    rollups: &mut Client,
    settings: &EngineSettings,
    options: &RunOptions,
    run_id: i64,
) -> Result<RunReport, Error> {
    let mut report = RunReport {
        run_id,
        full_rebuild: false,
        watermark_from: None,
        watermark_to: None,
        buckets_queued: 0,
        buckets_covered: 0,
        hours_covered: 0,
        days_covered: 0,
        hourly_rows_written: 0,
        daily_rows_written: 0,
        events_quarantined: 0,
        abandoned_runs: Vec::new(),
        sees_all_transactions: true,
        held_by_prepared: false,
        duration: Duration::ZERO,
        slow: false,
    };

    // Phase 1: move the watermark and queue the buckets it passes, or rebuild.
    let tx = rollups
        .transaction()
        .await
        .map_err(Error::db("starting the queueing transaction"))?;
    tx.execute(
        "INSERT INTO analytics.rollup_watermarks (source_table, watermark_at) VALUES ($1, '-infinity') \
         ON CONFLICT (source_table) DO NOTHING",
        &[&SOURCE_TABLE],
    )
    .await
    .map_err(Error::db("creating the watermark"))?;
    // The row lock serializes this phase between concurrent runs.
    let watermark: Option<OffsetDateTime> = tx
        .query_one(
            "SELECT nullif(watermark_at, '-infinity') FROM analytics.rollup_watermarks \
             WHERE source_table = $1 FOR UPDATE",
            &[&SOURCE_TABLE],
        )
        .await
        .map_err(Error::db("reading the watermark"))?
        .get(0);
    report.watermark_from = watermark;
    let bound = safe_upper_bound(source, settings).await?;
    report.held_by_prepared = bound.held_by_prepared;
    // A prepared transaction's events carry the start of the transaction,
    // which no view shows once it is prepared: the watermark stays where it
    // was (where that start was still visible) until it is resolved.
    let upper = if bound.held_by_prepared {
        watermark.map(|at| at.min(bound.at))
    } else {
        Some(bound.at)
    };

    let Some(from) = watermark.filter(|_| options.mode != RunMode::Full) else {
        report.full_rebuild = true;
        rebuild(source, &tx, settings, &mut report).await?;
        tx.execute("DELETE FROM analytics.rollup_dirty_buckets", &[])
            .await
            .map_err(Error::db("emptying the queue after a full rebuild"))?;
        if let Some(upper) = upper {
            set_watermark(&tx, upper).await?;
        }
        report.watermark_to = upper;
        tx.commit()
            .await
            .map_err(Error::db("committing the full rebuild"))?;
        return Ok(report);
    };

    // Incremental statements read a few thousand events through indexes:
    // parallel workers would cost more to start than they save.
    source
        .batch_execute("SET max_parallel_workers_per_gather = 0")
        .await
        .map_err(Error::db("configuring the source session"))?;
    let upper = upper.unwrap_or(from);
    let queued = queue_new_buckets(source, tx, options, from, upper, &mut report).await;
    let recomputed = match queued {
        Ok(()) => recompute_queued(source, rollups, settings, &mut report).await,
        Err(error) => Err(error),
    };
    let reset = source
        .batch_execute("RESET max_parallel_workers_per_gather")
        .await
        .map_err(Error::db("configuring the source session"));
    recomputed.and(reset)?;
    Ok(report)
}

/// Phase 1 of an incremental run, in `tx` which holds the watermark's row
/// lock: queues the buckets of the events ingested in `[from, upper)` (and
/// of a recompute range), moves the watermark to `upper`, and commits.
async fn queue_new_buckets(
    source: &Client,
    tx: Transaction<'_>,
    options: &RunOptions,
    from: OffsetDateTime,
    upper: OffsetDateTime,
    report: &mut RunReport,
) -> Result<(), Error> {
    let run_id = report.run_id;
    let mut buckets: BTreeSet<Bucket> = BTreeSet::new();
    if upper > from {
        let sql = DIRTY_BUCKETS.render(&[
            ("ingested_from", Value::Timestamp(Bound::At(from))),
            ("ingested_to", Value::Timestamp(Bound::At(upper))),
        ]);
        let rows = source
            .query(&sql, &[])
            .await
            .map_err(Error::db("finding the buckets of newly ingested events"))?;
        buckets.extend(rows.iter().map(|row| (epoch_hour(row.get(0)), row.get(1))));
        set_watermark(&tx, upper).await?;
        report.watermark_to = Some(upper);
    } else {
        report.watermark_to = Some(from);
    }
    if let RunMode::Recompute { from, to } = options.mode {
        buckets.extend(buckets_between(source, &tx, from, to).await?);
    }
    if !buckets.is_empty() {
        let hours: Vec<OffsetDateTime> =
            buckets.iter().map(|&(hour, _)| hour_start(hour)).collect();
        let organizations: Vec<i64> = buckets.iter().map(|&(_, org)| org).collect();
        tx.execute(
            "INSERT INTO analytics.rollup_dirty_buckets (hour_at, organization_id, rollup_run_id) \
             SELECT h, o, $3 FROM unnest($1::timestamptz[], $2::int8[]) AS b(h, o)",
            &[&hours, &organizations, &run_id],
        )
        .await
        .map_err(Error::db("queueing buckets"))?;
    }
    report.buckets_queued = buckets.len() as u64;
    tx.commit()
        .await
        .map_err(Error::db("committing the queued buckets"))?;
    tracing::debug!(
        buckets_queued = report.buckets_queued,
        "queued buckets touched by new events"
    );

    Ok(())
}

/// Phase 2: recomputes queued buckets, one batch per transaction, until the
/// queue holds nothing this run can claim.
async fn recompute_queued(
    source: &Client,
    rollups: &mut Client,
    settings: &EngineSettings,
    report: &mut RunReport,
) -> Result<(), Error> {
    let batch_size = i64::from(settings.max_batch_buckets);
    let mut hours_seen = BTreeSet::new();
    let mut days_seen = BTreeSet::new();
    loop {
        let tx = rollups
            .transaction()
            .await
            .map_err(Error::db("starting a batch"))?;
        let claimed = tx
            .query(
                "DELETE FROM analytics.rollup_dirty_buckets WHERE id IN \
                 (SELECT id FROM analytics.rollup_dirty_buckets ORDER BY hour_at, organization_id \
                  LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING hour_at, organization_id",
                &[&batch_size],
            )
            .await
            .map_err(Error::db("claiming queued buckets"))?;
        if claimed.is_empty() {
            tx.commit()
                .await
                .map_err(Error::db("ending the last batch"))?;
            break;
        }
        let buckets: BTreeSet<Bucket> = claimed
            .iter()
            .map(|row| (epoch_hour(row.get(0)), row.get(1)))
            .collect();
        let day_buckets: BTreeSet<Bucket> = buckets
            .iter()
            .map(|&(hour, org)| (hour.div_euclid(24), org))
            .collect();
        let day_buckets: Vec<Bucket> = day_buckets.into_iter().collect();
        locks::lock_days(&tx, &day_buckets).await?;

        // One statement deletes the batch's hourly rows; the source reads
        // one hour at a time (its index serves an hour of some organizations)
        // while one COPY writes everything.
        let (hours, organizations): (Vec<OffsetDateTime>, Vec<i64>) = buckets
            .iter()
            .map(|&(hour, org)| (hour_start(hour), org))
            .unzip();
        // The buckets' quarantined events are found again as they are now.
        for table in ["usage_hourly_rollups", "quarantined_events"] {
            tx.execute(
                &format!(
                    "DELETE FROM analytics.{table} AS t \
                     USING unnest($1::timestamptz[], $2::int8[]) AS b(hour_at, organization_id) \
                     WHERE t.organization_id = b.organization_id AND t.hour_at = b.hour_at"
                ),
                &[&hours, &organizations],
            )
            .await
            .map_err(Error::db(format!(
                "deleting the {table} rows of the buckets to recompute"
            )))?;
        }
        let chunks: Vec<Chunk> = group(buckets.iter().copied())
            .into_iter()
            .map(|(hour, organizations)| Chunk::of(hour_start(hour), organizations))
            .collect();
        let copied = copy_hourly(
            source,
            &tx,
            chunks,
            &mut HashSet::new(),
            None,
            report.run_id,
        )
        .await
        .map_err(in_buckets(&buckets))?;
        report.hourly_rows_written += copied.rows;
        report.events_quarantined += copied.quarantined;
        hours_seen.extend(buckets.iter().map(|&(hour, _)| hour));
        report.daily_rows_written += rewrite_day_buckets(&tx, &day_buckets)
            .await
            .map_err(in_buckets(&buckets))?;
        days_seen.extend(day_buckets.iter().map(|&(day, _)| day));
        tx.commit()
            .await
            .map_err(Error::db("committing a batch of recomputed buckets"))
            .map_err(in_buckets(&buckets))?;
        report.buckets_covered += buckets.len() as u64;
        tracing::debug!(buckets = buckets.len(), "recomputed a batch");
    }
    report.hours_covered = hours_seen.len() as u64;
    report.days_covered = days_seen.len() as u64;
    Ok(())
}

/// Names the buckets of a failed batch in the error's context (up to
/// five, then how many more), so that a failure says where it happened.
fn in_buckets(buckets: &BTreeSet<Bucket>) -> impl FnOnce(Error) -> Error + '_ {
    move |error| match error {
        Error::Database { context, source } => {
            let mut named: Vec<String> = buckets
                .iter()
                .take(5)
                .map(|&(hour, org)| {
                    format!(
                        "(organization {org}, hour {})",
                        timestamp_text(hour_start(hour))
                    )
                })
                .collect();
            if buckets.len() > 5 {
                named.push(format!("and {} more", buckets.len() - 5));
            }
            Error::Database {
                context: format!("{context}, in the batch of bucket(s) {}", named.join(", ")),
                source,
            }
        }
        other => other,
    }
}

/// Groups sorted `(key, organization)` pairs by key.
fn group(pairs: impl Iterator<Item = Bucket>) -> BTreeMap<i64, Vec<i64>> {
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (key, org) in pairs {
        groups.entry(key).or_default().push(org);
    }
    groups
}

/// Every bucket of the hours overlapping `[from, to)` that has events or
/// rollup rows.
async fn buckets_between(
    source: &Client,
    tx: &Transaction<'_>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Bucket>, Error> {
    let from = hour_start(epoch_hour(from));
    let mut buckets = Vec::new();
    let events = source
        .query(
            "SELECT DISTINCT date_trunc('hour', occurred_at, 'UTC'), organization_id FROM public.usage_events \
             WHERE occurred_at >= $1 AND occurred_at < $2",
            &[&from, &to],
        )
        .await
        .map_err(Error::db("finding the buckets to recompute"))?;
    let rolled = tx
        .query(
            "SELECT DISTINCT hour_at, organization_id FROM analytics.usage_hourly_rollups \
             WHERE hour_at >= $1 AND hour_at < $2",
            &[&from, &to],
        )
        .await
        .map_err(Error::db("finding the buckets to recompute"))?;
    for row in events.iter().chain(&rolled) {
        buckets.push((epoch_hour(row.get(0)), row.get(1)));
    }
    Ok(buckets)
}

/// Rebuilds both tables from every event, inside `tx`.
async fn rebuild(
    source: &Client,
    tx: &Transaction<'_>,
    settings: &EngineSettings,
    report: &mut RunReport,
) -> Result<(), Error> {
    locks::lock_everything(tx).await?;
    tx.batch_execute(
        "DELETE FROM analytics.usage_hourly_rollups; DELETE FROM analytics.usage_daily_rollups; \
         DELETE FROM analytics.quarantined_events",
    )
    .await
    .map_err(Error::db("deleting the rollups for a full rebuild"))?;
    let mut buckets = HashSet::new();
    let chunks = partition_chunks(source).await?;
    let budget = usize::try_from(settings.rebuild_memory_mib).unwrap_or(usize::MAX) << 20;
    let mut days_in_memory = DailySums::with_budget(budget);
    let copied = copy_hourly(
        source,
        tx,
        chunks,
        &mut buckets,
        Some(&mut days_in_memory),
        report.run_id,
    )
    .await?;
    report.hourly_rows_written = copied.rows;
    report.events_quarantined = copied.quarantined;
    let hours: BTreeSet<i64> = buckets.iter().map(|&(hour, _)| hour).collect();
    let days: BTreeSet<i64> = hours.iter().map(|hour| hour.div_euclid(24)).collect();
    let days: Vec<i64> = days.into_iter().collect();
    if let Some(sums) = days_in_memory.into_rows() {
        // The daily rows were summed from the hourly rows as they passed.
        report.daily_rows_written = write_daily_sums(tx, sums).await?;
    } else {
        // Too many to hold: derive them from the written hourly rows.
        for (first, end) in contiguous(&days) {
            let mut start = first;
            while start < end {
                let stop = end.min(start + DAYS_PER_DAILY_STATEMENT);
                report.daily_rows_written += rewrite_days(tx, start, stop).await?;
                start = stop;
            }
        }
    }
    report.buckets_covered = buckets.len() as u64;
    report.hours_covered = hours.len() as u64;
    report.days_covered = days.len() as u64;
    Ok(())
}

/// The newest watermark no uncommitted event can fall behind, and whether
/// a prepared transaction must hold the watermark back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperBound {
    /// The source's clock minus the safety lag, or the start of the oldest
    /// open transaction on the source database if that is earlier.
    pub at: OffsetDateTime,
    /// A prepared (two-phase) transaction waits in the source database: the
    /// watermark must stay where it was until it is resolved.
    pub held_by_prepared: bool,
}

/// Reads the [`UpperBound`] on the source. Public for the other targets'
/// engines (crates/rollup-clickhouse).
pub async fn safe_upper_bound(
    source: &Client,
    settings: &EngineSettings,
) -> Result<UpperBound, Error> {
    let lag = settings.safety_lag.as_secs_f64();
    let row = source
        .query_one(
            "SELECT now() - make_interval(secs => $1), oldest.xact_start, oldest.pid, \
                    prepared.gid, prepared.prepared \
             FROM (SELECT 1) AS one LEFT JOIN LATERAL ( \
                 SELECT xact_start, pid FROM pg_stat_activity \
                 WHERE datname = current_database() AND backend_type = 'client backend' \
                   AND pid <> pg_backend_pid() AND xact_start IS NOT NULL \
                 ORDER BY xact_start LIMIT 1) AS oldest ON true \
             LEFT JOIN LATERAL ( \
                 SELECT gid, prepared FROM pg_prepared_xacts WHERE database = current_database() \
                 ORDER BY prepared LIMIT 1) AS prepared ON true",
            &[&lag],
        )
        .await
        .map_err(Error::db(
            "reading the source's clock and open transactions",
        ))?;
    let lagged: OffsetDateTime = row.get(0);
    let oldest: Option<OffsetDateTime> = row.get(1);
    let prepared_at: Option<OffsetDateTime> = row.get(4);
    if let Some(prepared_at) = prepared_at {
        let gid: String = row.get(3);
        tracing::warn!(
            gid = %gid,
            prepared_at = %timestamp_text(prepared_at),
            "a prepared transaction on the operational database holds the rollup watermark until it is committed or rolled back (COMMIT PREPARED / ROLLBACK PREPARED)"
        );
    }
    let at = match oldest {
        Some(start) if start < lagged => {
            let held_back = lagged - start;
            if held_back > time::Duration::minutes(10) {
                let pid: i32 = row.get(2);
                tracing::warn!(
                    pid,
                    held_back_seconds = held_back.as_seconds_f64(),
                    "a long-open transaction on the operational database holds the rollup watermark back"
                );
            }
            start
        }
        _ => lagged,
    };
    Ok(UpperBound {
        at,
        held_by_prepared: prepared_at.is_some(),
    })
}

async fn set_watermark(tx: &Transaction<'_>, to: OffsetDateTime) -> Result<(), Error> {
    tx.execute(
        "UPDATE analytics.rollup_watermarks SET watermark_at = $2, updated_at = now() WHERE source_table = $1",
        &[&SOURCE_TABLE, &to],
    )
    .await
    .map_err(Error::db("moving the watermark"))?;
    Ok(())
}

const HOURLY_COLUMNS: &str = "hour_at, organization_id, api_key_id, model_id, request_count, error_count, \
     input_tokens, output_tokens, cost_micros, latency_ms_sum, latency_ms_max, latency_bins, latency_bin_counts";

/// One hourly row on its way from the source to the rollups database.
struct HourlyRow {
    hour_at: OffsetDateTime,
    organization_id: i64,
    api_key_id: i64,
    model_id: i64,
    sums: Sums,
    /// Some of its events cannot be rolled up: see `hourly_rollup.sql`.
    poisoned: bool,
}

/// The key of an hourly row: its hour, organization, API key (0 for none)
/// and model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowKey {
    hour_at: OffsetDateTime,
    organization_id: i64,
    api_key_id: i64,
    model_id: i64,
}

/// What a rollup row (hourly or daily) sums over its events.
#[derive(Default)]
struct Sums {
    /// request_count, error_count, input_tokens, output_tokens, cost_micros, latency_ms_sum.
    measures: [i64; 6],
    latency_ms_max: i32,
    histogram: Histogram,
}

impl Sums {
    /// Adds `other` in, as `daily_rollup.sql` adds hours into a day.
    fn add(&mut self, other: &Sums) {
        for (total, value) in self.measures.iter_mut().zip(other.measures) {
            *total += value;
        }
        self.latency_ms_max = self.latency_ms_max.max(other.latency_ms_max);
        self.histogram.merge(&other.histogram);
    }
}

/// The column types of a binary `COPY` into a rollup table whose first
/// column, the hour or the day, is of type `time`.
fn rollup_types(time: Type) -> [Type; 13] {
    // The time, the three key columns and the six measures, the maximum
    // latency, the histogram's bins and counts.
    let mut types: [Type; 13] = std::array::from_fn(|_| Type::INT8);
    types[0] = time;
    types[10] = Type::INT4;
    types[11] = Type::INT2_ARRAY;
    types[12] = Type::INT8_ARRAY;
    types
}

/// Writes one rollup row to a binary `COPY` of [`rollup_types`]: its hour or
/// day, its key (organization, API key, model) and its sums.
async fn write_rollup_row(
    writer: std::pin::Pin<&mut BinaryCopyInWriter>,
    time: &(dyn tokio_postgres::types::ToSql + Sync),
    [organization, api_key, model]: [i64; 3],
    sums: &Sums,
) -> Result<(), tokio_postgres::Error> {
    let [requests, errors, input, output, cost, latency_sum] = sums.measures;
    writer
        .write(&[
            time,
            &organization,
            &api_key,
            &model,
            &requests,
            &errors,
            &input,
            &output,
            &cost,
            &latency_sum,
            &sums.latency_ms_max,
            &sums.histogram.bins(),
            &sums.histogram.counts(),
        ])
        .await
}

/// A daily row's key: (organization, epoch day, key, model), the primary
/// key's order.
type DailyKey = (i64, i64, i64, i64);

/// Daily rows summed from hourly rows in memory: the same sums, maximum and
/// bin-wise histogram addition as `daily_rollup.sql`.
struct DailySums {
    rows: HashMap<DailyKey, Sums>,
    bytes: usize,
    budget: usize,
    over_budget: bool,
}

impl DailySums {
    fn with_budget(budget: usize) -> DailySums {
        DailySums {
            rows: HashMap::new(),
            bytes: 0,
            budget,
            over_budget: false,
        }
    }

    fn add(&mut self, hourly: &HourlyRow) {
        if self.over_budget {
            return;
        }
        let day = epoch_hour(hourly.hour_at).div_euclid(24);
        let key = (
            hourly.organization_id,
            day,
            hourly.api_key_id,
            hourly.model_id,
        );
        let before = self
            .rows
            .get(&key)
            .map_or(0, |sum| sum.histogram.bins().len());
        let sum = self.rows.entry(key).or_default();
        sum.add(&hourly.sums);
        // A rough account: the entry, and ten bytes per histogram bin.
        let grown = sum.histogram.bins().len() - before;
        self.bytes += grown * 10 + if before == 0 { 128 } else { 0 };
        if self.bytes > self.budget {
            self.over_budget = true;
            self.rows = HashMap::new();
        }
    }

    /// The rows in primary-key order, or `None` when they outgrew the budget.
    fn into_rows(self) -> Option<Vec<(DailyKey, Sums)>> {
        if self.over_budget {
            return None;
        }
        let mut rows: Vec<_> = self.rows.into_iter().collect();
        rows.sort_unstable_by_key(|&(key, _)| key);
        Some(rows)
    }
}

/// How many hourly rows may wait between the source and the rollups
/// database: about a day of a 1,000-organization platform, so the source
/// can aggregate the next chunk while the previous one is written.
const PIPELINE_ROWS: usize = 50_000;

/// A part of the events the source aggregates in one statement.
struct Chunk {
    from: Bound<OffsetDateTime>,
    to: Bound<OffsetDateTime>,
    /// The organizations; empty for all of them.
    organizations: Vec<i64>,
    /// Events left out: the quarantined ones of `only`.
    excluded_events: Vec<i64>,
    /// When set, the one row of the chunk to write.
    only: Option<RowKey>,
}

impl Chunk {
    /// Every event of the hour starting at `hour` of `organizations` (all
    /// of them when empty).
    fn of(hour: OffsetDateTime, organizations: Vec<i64>) -> Chunk {
        Chunk::between(
            Bound::At(hour),
            Bound::At(hour + time::Duration::HOUR),
            organizations,
        )
    }

    fn between(
        from: Bound<OffsetDateTime>,
        to: Bound<OffsetDateTime>,
        organizations: Vec<i64>,
    ) -> Chunk {
        Chunk {
            from,
            to,
            organizations,
            excluded_events: Vec::new(),
            only: None,
        }
    }
}

/// What [`copy_hourly`] did.
#[derive(Debug, Default)]
struct Copied {
    /// Hourly rows written.
    rows: u64,
    /// Events newly quarantined.
    quarantined: u64,
}

/// Streams the hourly rows of every chunk from the source into the hourly
/// table (whose rows for those buckets `tx` has deleted), folding latencies
/// into histograms; adds the buckets seen to `buckets`.
///
/// A poisoned row (see `hourly_rollup.sql`) is not written: its events at
/// fault are quarantined ([`quarantine_group`]) and the row is read again
/// without them, until every row is clean. Every other row is written as
/// it comes, so one bad event never holds up the rest of the run.
async fn copy_hourly(
    source: &Client,
    tx: &Transaction<'_>,
    mut chunks: Vec<Chunk>,
    buckets: &mut HashSet<Bucket>,
    mut daily: Option<&mut DailySums>,
    run_id: i64,
) -> Result<Copied, Error> {
    let mut copied = Copied::default();
    loop {
        let (rows, poisoned) =
            copy_clean_rows(source, tx, &chunks, buckets, daily.as_deref_mut()).await?;
        copied.rows += rows;
        if poisoned.is_empty() {
            return Ok(copied);
        }
        chunks = Vec::with_capacity(poisoned.len());
        for key in poisoned {
            let (excluded, added) = quarantine_group(source, tx, key, run_id).await?;
            copied.quarantined += added;
            chunks.push(Chunk {
                excluded_events: excluded,
                only: Some(key),
                ..Chunk::of(key.hour_at, vec![key.organization_id])
            });
        }
    }
}

/// One pass of [`copy_hourly`]: writes the clean rows of `chunks` with one
/// `COPY` and returns how many, with the keys of the poisoned rows.
///
/// Reading and writing overlap: the source aggregates chunk `i + 1` (one
/// `COPY (...) TO STDOUT` each) while the rows of chunk `i` are written
/// through the single `COPY ... FROM STDIN` of the rollups side.
async fn copy_clean_rows(
    source: &Client,
    tx: &Transaction<'_>,
    chunks: &[Chunk],
    buckets: &mut HashSet<Bucket>,
    mut daily: Option<&mut DailySums>,
) -> Result<(u64, Vec<RowKey>), Error> {
    let sink = tx
        .copy_in(&format!(
            "COPY analytics.usage_hourly_rollups ({HOURLY_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(Error::db("writing hourly rows"))?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<HourlyRow>(PIPELINE_ROWS);
    let read = async move {
        for chunk in chunks {
            read_hourly(source, chunk, &sender).await?;
        }
        Ok::<(), Error>(())
    };
    let mut poisoned = Vec::new();
    let write = async {
        let writer = BinaryCopyInWriter::new(sink, &rollup_types(Type::TIMESTAMPTZ));
        pin_mut!(writer);
        let mut last_bucket = None;
        while let Some(row) = receiver.recv().await {
            if row.poisoned {
                poisoned.push(RowKey {
                    hour_at: row.hour_at,
                    organization_id: row.organization_id,
                    api_key_id: row.api_key_id,
                    model_id: row.model_id,
                });
                continue;
            }
            let bucket = (epoch_hour(row.hour_at), row.organization_id);
            if last_bucket != Some(bucket) {
                buckets.insert(bucket);
                last_bucket = Some(bucket);
            }
            if let Some(daily) = daily.as_deref_mut() {
                daily.add(&row);
            }
            let key = [row.organization_id, row.api_key_id, row.model_id];
            write_rollup_row(writer.as_mut(), &row.hour_at, key, &row.sums)
                .await
                .map_err(Error::db("writing hourly rows"))?;
        }
        writer
            .finish()
            .await
            .map_err(Error::db("writing hourly rows"))
    };
    // When the reader fails it drops the sender, the writer ends its COPY,
    // and the reader's error is the one reported.
    let (read, written) = futures_util::join!(read, write);
    read?;
    Ok((written?, poisoned))
}

/// Moves the events of the poisoned row `key` that cannot be rolled up
/// (`quarantine_events.sql`) into `analytics.quarantined_events`, each with
/// its reason, and logs them naming the bucket and the event. Returns the
/// ids of all of them (to leave out when the row is read again) and how
/// many were not already quarantined in this transaction.
async fn quarantine_group(
    source: &Client,
    tx: &Transaction<'_>,
    key: RowKey,
    run_id: i64,
) -> Result<(Vec<i64>, u64), Error> {
    let bucket = format!(
        "bucket (organization {}, hour {}), api key {}, model {}",
        key.organization_id,
        timestamp_text(key.hour_at),
        key.api_key_id,
        key.model_id
    );
    let sql = QUARANTINE_EVENTS.render(&[
        ("hour_at", Value::Timestamp(Bound::At(key.hour_at))),
        ("organization_id", Value::Int(key.organization_id)),
        ("api_key_id", Value::Int(key.api_key_id)),
        ("model_id", Value::Int(key.model_id)),
        ("sum_limit", Value::Int(HOURLY_SUM_LIMIT)),
    ]);
    let rows = source.query(&sql, &[]).await.map_err(Error::db(format!(
        "finding the events to quarantine in {bucket}"
    )))?;
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    let occurred: Vec<OffsetDateTime> = rows.iter().map(|row| row.get(1)).collect();
    let keys: Vec<Option<i64>> = rows.iter().map(|row| row.get(3)).collect();
    let reasons: Vec<String> = rows.iter().map(|row| row.get(5)).collect();
    let added = tx
        .execute(
            "INSERT INTO analytics.quarantined_events \
                 (event_id, occurred_at, organization_id, hour_at, api_key_id, model_id, reason, rollup_run_id) \
             SELECT e, o, $3, $4, k, $5, r, $6 \
             FROM unnest($1::int8[], $2::timestamptz[], $7::int8[], $8::text[]) AS q(e, o, k, r) \
             ON CONFLICT (event_id, occurred_at) DO NOTHING",
            &[
                &ids,
                &occurred,
                &key.organization_id,
                &key.hour_at,
                &key.model_id,
                &run_id,
                &keys,
                &reasons,
            ],
        )
        .await
        .map_err(Error::db(format!("quarantining the events of {bucket}")))?;
    for ((id, at), reason) in ids.iter().zip(&occurred).zip(&reasons) {
        tracing::warn!(
            monotonic_counter.dbops_rollup_events_quarantined = 1_u64,
            event_id = id,
            occurred_at = %timestamp_text(*at),
            organization_id = key.organization_id,
            hour_at = %timestamp_text(key.hour_at),
            api_key_id = key.api_key_id,
            model_id = key.model_id,
            reason = %reason,
            "usage event {id} of {bucket} quarantined: {reason}"
        );
    }
    Ok((ids, added))
}

fn timestamp_text(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Sends the hourly rows of a chunk, read from the source, to `rows`.
async fn read_hourly(
    source: &Client,
    chunk: &Chunk,
    rows: &tokio::sync::mpsc::Sender<HourlyRow>,
) -> Result<(), Error> {
    let select = HOURLY_ROLLUP.render(&[
        ("hour_from", Value::Timestamp(chunk.from)),
        ("hour_to", Value::Timestamp(chunk.to)),
        ("organization_ids", Value::Ids(&chunk.organizations)),
        ("excluded_events", Value::Ids(&chunk.excluded_events)),
        ("sum_limit", Value::Int(HOURLY_SUM_LIMIT)),
    ]);
    let out = source
        .copy_out(&format!("COPY ({select}) TO STDOUT (FORMAT binary)"))
        .await
        .map_err(Error::db(
            "reading hourly aggregates from the operational database",
        ))?;
    // An hourly row's columns up to the maximum latency, then the events'
    // latencies, from which the histogram is built, and whether it is poisoned.
    let mut types = rollup_types(Type::TIMESTAMPTZ)[..11].to_vec();
    types.push(Type::INT4_ARRAY);
    types.push(Type::BOOL);
    let stream = BinaryCopyOutStream::new(out, &types);
    pin_mut!(stream);
    while let Some(row) = stream.try_next().await.map_err(Error::db(
        "reading hourly aggregates from the operational database",
    ))? {
        let hourly = HourlyRow {
            hour_at: row.get(0),
            organization_id: row.get(1),
            api_key_id: row.get(2),
            model_id: row.get(3),
            poisoned: row.get(12),
            sums: Sums {
                // Columns 4 to 9, in `Sums::measures` order.
                measures: std::array::from_fn(|i| row.get(4 + i)),
                latency_ms_max: row.get(10),
                histogram: Histogram::from_latencies(&row.get::<Vec<i32>>(11)),
            },
        };
        if let Some(only) = chunk.only
            && (hourly.api_key_id, hourly.model_id) != (only.api_key_id, only.model_id)
        {
            // Written by the pass that found `only` poisoned.
            continue;
        }
        if rows.send(hourly).await.is_err() {
            // The writer stopped: its error is reported.
            break;
        }
    }
    Ok(())
}

/// Time ranges that together cover every possible `occurred_at`, cut at the
/// hour-aligned bounds of `usage_events`'s partitions, so that each range
/// reads one partition (plus the default partition at both ends). A table
/// without partitions is one range.
async fn partition_chunks(source: &Client) -> Result<Vec<Chunk>, Error> {
    let bounds = partition_bounds(source).await?;
    let mut chunks = Vec::with_capacity(bounds.len() + 1);
    let mut from = Bound::Lowest;
    for bound in bounds {
        chunks.push(Chunk::between(from, Bound::At(bound), Vec::new()));
        from = Bound::At(bound);
    }
    chunks.push(Chunk::between(from, Bound::Highest, Vec::new()));
    Ok(chunks)
}

/// The hour-aligned bounds of `usage_events`'s range partitions, ascending
/// and distinct: a full rebuild reads the events between consecutive bounds
/// (and before the first and after the last) one range at a time, each
/// within one partition. Empty for a table without partitions. Public for
/// the other targets' engines (crates/rollup-clickhouse).
pub async fn partition_bounds(source: &Client) -> Result<Vec<OffsetDateTime>, Error> {
    let rows = source
        .query(
            "SELECT DISTINCT bound FROM ( \
                 SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid), \
                                     'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS m \
                 FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = to_regclass('public.usage_events') \
             ) AS p, LATERAL unnest(ARRAY[m[1]::timestamptz, m[2]::timestamptz]) AS bound \
             WHERE m IS NOT NULL ORDER BY bound",
            &[],
        )
        .await
        .map_err(Error::db("reading the partitions of usage_events"))?;
    Ok(rows
        .iter()
        .map(|row| row.get::<_, OffsetDateTime>(0))
        .filter(|bound| bound.unix_timestamp().rem_euclid(3600) == 0 && bound.nanosecond() == 0)
        .collect())
}

const DAILY_COLUMNS: &str = "day, organization_id, api_key_id, model_id, request_count, error_count, \
     input_tokens, output_tokens, cost_micros, latency_ms_sum, latency_ms_max, latency_bins, latency_bin_counts";

/// Deletes and rewrites the daily rows of all organizations on the epoch
/// days `[from, to)` from the hourly rows visible to `tx`. Returns the rows
/// written.
async fn rewrite_days(tx: &Transaction<'_>, from: i64, to: i64) -> Result<u64, Error> {
    let (from, to) = (day_date(from), day_date(to));
    tx.execute(
        "DELETE FROM analytics.usage_daily_rollups WHERE day >= $1 AND day < $2",
        &[&from, &to],
    )
    .await
    .map_err(Error::db("deleting the daily rows to recompute"))?;
    let select = DAILY_ROLLUP.render(&[
        ("day_from", Value::Date(Bound::At(from))),
        ("day_to", Value::Date(Bound::At(to))),
        ("organization_ids", Value::Ids(&[])),
    ]);
    let rows = tx
        .query(&select, &[])
        .await
        .map_err(Error::db("summing hourly rows into days"))?;
    write_daily_rows(tx, &rows).await
}

/// Deletes and rewrites the daily rows of the sorted `(epoch day,
/// organization)` pairs from the hourly rows visible to `tx`. Returns the
/// rows written.
async fn rewrite_day_buckets(tx: &Transaction<'_>, day_buckets: &[Bucket]) -> Result<u64, Error> {
    let (days, organizations): (Vec<Date>, Vec<i64>) = day_buckets
        .iter()
        .map(|&(day, org)| (day_date(day), org))
        .unzip();
    tx.execute(
        "DELETE FROM analytics.usage_daily_rollups AS d \
         USING unnest($1::date[], $2::int8[]) AS b(day, organization_id) \
         WHERE d.organization_id = b.organization_id AND d.day = b.day",
        &[&days, &organizations],
    )
    .await
    .map_err(Error::db("deleting the daily rows to recompute"))?;
    let selects: Vec<String> = group(day_buckets.iter().copied())
        .into_iter()
        .map(|(day, organizations)| {
            DAILY_ROLLUP.render(&[
                ("day_from", Value::Date(Bound::At(day_date(day)))),
                ("day_to", Value::Date(Bound::At(day_date(day + 1)))),
                ("organization_ids", Value::Ids(&organizations)),
            ])
        })
        .collect();
    // Issued together, the day statements are pipelined on the connection.
    let results = futures_util::future::try_join_all(
        selects.iter().map(|select| tx.query(select.as_str(), &[])),
    )
    .await
    .map_err(Error::db("summing hourly rows into days"))?;
    let rows: Vec<tokio_postgres::Row> = results.into_iter().flatten().collect();
    write_daily_rows(tx, &rows).await
}

/// Writes daily rows summed in memory during a full rebuild.
async fn write_daily_sums(tx: &Transaction<'_>, rows: Vec<(DailyKey, Sums)>) -> Result<u64, Error> {
    let sink = tx
        .copy_in(&format!(
            "COPY analytics.usage_daily_rollups ({DAILY_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(Error::db("writing daily rows"))?;
    let writer = BinaryCopyInWriter::new(sink, &rollup_types(Type::DATE));
    pin_mut!(writer);
    for ((org, day, key, model), sum) in rows {
        write_rollup_row(writer.as_mut(), &day_date(day), [org, key, model], &sum)
            .await
            .map_err(Error::db("writing daily rows"))?;
    }
    writer
        .finish()
        .await
        .map_err(Error::db("writing daily rows"))
}

/// Writes rows of `daily_rollup.sql` into the daily table, merging each
/// row's concatenated hourly histograms. The rows are read in full before:
/// one connection cannot read and COPY at the same time, and the reads must
/// see this transaction's hourly rows.
async fn write_daily_rows(
    tx: &Transaction<'_>,
    rows: &[tokio_postgres::Row],
) -> Result<u64, Error> {
    let sink = tx
        .copy_in(&format!(
            "COPY analytics.usage_daily_rollups ({DAILY_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(Error::db("writing daily rows"))?;
    let writer = BinaryCopyInWriter::new(sink, &rollup_types(Type::DATE));
    pin_mut!(writer);
    for row in rows {
        let day: Date = row.get(0);
        let key = [row.get(1), row.get(2), row.get(3)];
        let bins: Vec<i16> = row.get(11);
        let counts: Vec<i64> = row.get(12);
        let sums = Sums {
            // Columns 4 to 9, in `Sums::measures` order.
            measures: std::array::from_fn(|i| row.get(4 + i)),
            latency_ms_max: row.get(10),
            histogram: Histogram::from_unsorted(&bins, &counts),
        };
        write_rollup_row(writer.as_mut(), &day, key, &sums)
            .await
            .map_err(Error::db("writing daily rows"))?;
    }
    writer
        .finish()
        .await
        .map_err(Error::db("writing daily rows"))
}

/// The half-open ranges `[first, end)` of consecutive values in `sorted`.
fn contiguous(sorted: &[i64]) -> Vec<(i64, i64)> {
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for &value in sorted {
        match ranges.last_mut() {
            Some((_, end)) if *end == value => *end += 1,
            _ => ranges.push((value, value + 1)),
        }
    }
    ranges
}

/// Hours since the Unix epoch of the hour containing `t`.
fn epoch_hour(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(3600)
}

fn hour_start(hour: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(hour * 3600).expect("hours of valid timestamps are valid")
}

fn day_date(day: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(day * 86_400)
        .expect("days of valid timestamps are valid")
        .date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn contiguous_ranges() {
        assert_eq!(contiguous(&[]), vec![]);
        assert_eq!(
            contiguous(&[3, 4, 5, 9, 11, 12]),
            vec![(3, 6), (9, 10), (11, 13)]
        );
    }

    #[test]
    fn hours_and_days_are_utc() {
        let t = datetime!(2025-11-16 23:59:59 -01:00);
        assert_eq!(hour_start(epoch_hour(t)), datetime!(2025-11-17 00:00 UTC));
        assert_eq!(
            day_date(epoch_hour(t).div_euclid(24)),
            date!(2025 - 11 - 17)
        );
        assert_eq!(
            hour_start(epoch_hour(datetime!(1969-12-31 23:30 UTC))),
            datetime!(1969-12-31 23:00 UTC)
        );
    }

    #[test]
    fn slowness_is_per_hour_covered() {
        let settings = EngineSettings::default();
        assert!(!is_slow(Duration::from_secs(599), 2, &settings));
        assert!(is_slow(Duration::from_secs(601), 2, &settings));
        assert!(!is_slow(Duration::from_secs(10_000), 0, &settings));
    }
}
