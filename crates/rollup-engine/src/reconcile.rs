//! `dbops rollup reconcile`: every (organization, hour) bucket of the rollups against the raw events.
//!
//! Both sides are aggregated per (hour, organization), streamed in the same
//! order and merge-joined, so the comparison needs memory for one bucket at a
//! time. A bucket that the rollups cannot reflect yet is counted as pending,
//! not as a mismatch: it is queued, or some of its events were
//! ingested at or after the watermark. A bucket with quarantined events is
//! counted apart too: its rollups leave those events out on purpose
//! (`analytics.quarantined_events`, reported by `check`). Run it while no `rollup run` is
//! writing, or a bucket rewritten in between may show as a mismatch.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use futures_util::{TryStreamExt, pin_mut};
use time::OffsetDateTime;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use crate::run::SOURCE_TABLE;
use crate::{Error, ensure_schema};

/// The measures compared, in the order of the queries' columns.
const FIELDS: [&str; 6] = [
    "request_count",
    "error_count",
    "input_tokens",
    "output_tokens",
    "cost_micros",
    "latency_ms_sum",
];

// Sums are capped at bigint's maximum rather than overflow: a bucket that
// reaches it has quarantined events, and is not compared.
const EVENTS_SQL: &str = "SELECT date_trunc('hour', occurred_at, 'UTC') AS hour_at, organization_id, \
     count(*), count(*) FILTER (WHERE status <> 'ok'), sum(input_tokens)::bigint, sum(output_tokens)::bigint, \
     least(sum(cost_micros), 9223372036854775807)::bigint, sum(latency_ms)::bigint, bool_or(ingested_at >= coalesce($1::timestamptz, '-infinity')) \
     FROM public.usage_events GROUP BY 1, 2 ORDER BY 1, 2";

const ROLLUPS_SQL: &str = "SELECT hour_at, organization_id, \
     sum(request_count)::bigint, sum(error_count)::bigint, sum(input_tokens)::bigint, sum(output_tokens)::bigint, \
     sum(cost_micros)::bigint, sum(latency_ms_sum)::bigint \
     FROM analytics.usage_hourly_rollups GROUP BY 1, 2 ORDER BY 1, 2";

/// The outcome of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcileReport {
    /// Buckets compared (present on either side and not pending).
    pub buckets_compared: u64,
    /// Buckets skipped because the rollups cannot reflect them yet.
    pub buckets_pending: u64,
    /// Buckets skipped because some of their events are quarantined.
    pub buckets_quarantined: u64,
    /// Every bucket where the rollups and the events disagree.
    pub mismatches: Vec<Mismatch>,
}

/// One (organization, hour) bucket that disagrees with the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The hour.
    pub hour_at: OffsetDateTime,
    /// The organization.
    pub organization_id: i64,
    /// How it disagrees.
    pub kind: MismatchKind,
}

/// How a bucket disagrees with the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MismatchKind {
    /// The events have the bucket; the rollups do not.
    MissingFromRollups,
    /// The rollups have the bucket; the events do not.
    NotInEvents,
    /// Both have it with different measures.
    Differs(Vec<FieldDifference>),
}

/// One measure that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDifference {
    /// The measure's column name.
    pub field: &'static str,
    /// Its value from the events.
    pub events: i64,
    /// Its value in the rollups.
    pub rollups: i64,
}

struct Bucket {
    key: (OffsetDateTime, i64),
    measures: [i64; 6],
    ingested_after_watermark: bool,
}

/// The (hour, organization) buckets that have rows in `analytics.<table>`.
async fn buckets_in(
    rollups: &Client,
    table: &str,
) -> Result<BTreeSet<(OffsetDateTime, i64)>, Error> {
    Ok(rollups
        .query(
            &format!("SELECT DISTINCT hour_at, organization_id FROM analytics.{table}"),
            &[],
        )
        .await
        .map_err(Error::db(format!("reading analytics.{table}")))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Compares every (organization, hour) bucket of the hourly rollups with the
/// events of the operational database.
pub async fn reconcile(source: &Client, rollups: &Client) -> Result<ReconcileReport, Error> {
    ensure_schema(rollups).await?;
    let watermark: Option<OffsetDateTime> = rollups
        .query_opt(
            "SELECT nullif(watermark_at, '-infinity') FROM analytics.rollup_watermarks WHERE source_table = $1",
            &[&SOURCE_TABLE],
        )
        .await
        .map_err(Error::db("reading the watermark"))?
        .and_then(|row| row.get(0));
    let queued = buckets_in(rollups, "rollup_dirty_buckets").await?;
    let quarantined = buckets_in(rollups, "quarantined_events").await?;

    // Before the first run (no watermark) every event is pending.
    let params: [&(dyn ToSql + Sync); 1] = [&watermark];
    let events = source
        .query_raw(EVENTS_SQL, params)
        .await
        .map_err(Error::db(
            "aggregating the events per organization and hour",
        ))?
        .map_ok(|row| Bucket {
            key: (row.get(0), row.get(1)),
            measures: std::array::from_fn(|i| row.get(i + 2)),
            ingested_after_watermark: row.get(8),
        });
    let no_params: [&(dyn ToSql + Sync); 0] = [];
    let rolled = rollups
        .query_raw(ROLLUPS_SQL, no_params)
        .await
        .map_err(Error::db(
            "aggregating the hourly rollups per organization and hour",
        ))?
        .map_ok(|row| Bucket {
            key: (row.get(0), row.get(1)),
            measures: std::array::from_fn(|i| row.get(i + 2)),
            ingested_after_watermark: false,
        });
    pin_mut!(events, rolled);

    let mut report = ReconcileReport::default();
    let mut event = events
        .try_next()
        .await
        .map_err(Error::db("reading event aggregates"))?;
    let mut rollup = rolled
        .try_next()
        .await
        .map_err(Error::db("reading rollup aggregates"))?;
    loop {
        let order = match (&event, &rollup) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(e), Some(r)) => e.key.cmp(&r.key),
        };
        let (e, r) = match order {
            Ordering::Less => (event.take(), None),
            Ordering::Greater => (None, rollup.take()),
            Ordering::Equal => (event.take(), rollup.take()),
        };
        let key = e.as_ref().or(r.as_ref()).expect("one side is present").key;
        let pending =
            queued.contains(&key) || e.as_ref().is_some_and(|e| e.ingested_after_watermark);
        if pending {
            report.buckets_pending += 1;
        } else if quarantined.contains(&key) {
            report.buckets_quarantined += 1;
        } else {
            report.buckets_compared += 1;
            let kind = match (&e, &r) {
                (Some(_), None) => Some(MismatchKind::MissingFromRollups),
                (None, Some(_)) => Some(MismatchKind::NotInEvents),
                (Some(e), Some(r)) => {
                    let differences: Vec<FieldDifference> = FIELDS
                        .iter()
                        .zip(e.measures.iter().zip(&r.measures))
                        .filter(|(_, (a, b))| a != b)
                        .map(|(field, (&events, &rollups))| FieldDifference {
                            field,
                            events,
                            rollups,
                        })
                        .collect();
                    (!differences.is_empty()).then_some(MismatchKind::Differs(differences))
                }
                (None, None) => unreachable!("one side is present"),
            };
            if let Some(kind) = kind {
                report.mismatches.push(Mismatch {
                    hour_at: key.0,
                    organization_id: key.1,
                    kind,
                });
            }
        }
        if event.is_none() && e.is_some() {
            event = events
                .try_next()
                .await
                .map_err(Error::db("reading event aggregates"))?;
        }
        if rollup.is_none() && r.is_some() {
            rollup = rolled
                .try_next()
                .await
                .map_err(Error::db("reading rollup aggregates"))?;
        }
    }
    tracing::info!(
        buckets_compared = report.buckets_compared,
        buckets_pending = report.buckets_pending,
        buckets_quarantined = report.buckets_quarantined,
        mismatches = report.mismatches.len(),
        "reconciled rollups with events"
    );
    Ok(report)
}
