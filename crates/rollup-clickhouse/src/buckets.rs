//! Rewriting (organization, hour) buckets on ClickHouse from the events in PostgreSQL.
//!
//! [`rewrite`] is what a run of the `clickhouse` target does with the
//! buckets late events touched: for each hour it reads the bucket's events
//! on the operational database with the engine's own
//! `analytics/transforms/hourly_rollup.sql`, folds the latencies into the
//! same sparse histogram ([`rollup_engine::histogram`]), and inserts every
//! row of every bucket with the run's `version` into the `Distributed`
//! hourly table. Then it derives the (organization, day) pairs of those
//! buckets from the hourly rows (`analytics/transforms/clickhouse/daily_rollup.sql`)
//! with the same version. Nothing is deleted and nothing incremented: a
//! complete bucket with a higher version replaces the older one for readers
//! (`FINAL`), and a replay writes the same rows again, which changes nothing
//! they see.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use futures_util::{TryStreamExt, pin_mut};
use rollup_engine::histogram::Histogram;
use time::{Date, Duration, OffsetDateTime};
use tokio_postgres::Client;

use crate::transforms::{self, postgres};
use crate::{ClickHouse, Error};

const DAILY_SQL: &str = include_str!("../../../analytics/transforms/clickhouse/daily_rollup.sql");
const DAILY_MONTH_SQL: &str =
    include_str!("../../../analytics/transforms/clickhouse/daily_rollup_month.sql");

/// One (organization, hour) bucket: the organization and the start of a UTC hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bucket {
    /// The organization.
    pub organization_id: i64,
    /// The start of the UTC hour.
    pub hour_at: OffsetDateTime,
}

/// What a [`rewrite`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// Hourly rows inserted.
    pub hourly_rows: u64,
    /// (organization, day) pairs whose daily rows were derived again.
    pub days: u64,
}

/// Writes every row of `buckets` again from the events on `source`, and the
/// daily rows of their days, all with `version`, which must be higher than
/// the version of any earlier run (a run id) for the rows to replace the
/// older ones. Hours must be whole UTC hours.
pub async fn rewrite(
    ch: &ClickHouse,
    source: &Client,
    buckets: &[Bucket],
    version: u64,
) -> Result<Written, Error> {
    let (hourly_rows, days) = write_hours(ch, source, buckets, version).await?;
    derive_days(ch, &days, version).await?;
    Ok(Written {
        hourly_rows,
        days: days.len() as u64,
    })
}

/// The hourly half of [`rewrite`]: writes the rows of `buckets` and returns
/// how many, and the (organization, UTC day) pairs they fall in.
pub async fn write_hours(
    ch: &ClickHouse,
    source: &Client,
    buckets: &[Bucket],
    version: u64,
) -> Result<(u64, BTreeSet<(i64, Date)>), Error> {
    let mut by_hour: BTreeMap<OffsetDateTime, Vec<i64>> = BTreeMap::new();
    for bucket in buckets {
        if bucket.hour_at.unix_timestamp() % 3600 != 0 {
            return Err(Error::InvalidBucket {
                hour_at: bucket.hour_at,
            });
        }
        by_hour
            .entry(bucket.hour_at)
            .or_default()
            .push(bucket.organization_id);
    }
    let statement = prepare_hourly(source).await?;
    let mut insert = HourlyInsert::new(ch, version, true);
    for (hour, organizations) in &by_hour {
        let next = *hour + Duration::HOUR;
        let rows = source
            .query_raw(
                &statement,
                hourly_params(hour, &next, &organizations.as_slice()),
            )
            .await
            .map_err(postgres("reading the events of the buckets"))?;
        insert.push_all(rows).await?;
    }
    let written = insert.finish().await?;
    Ok((written.rows, written.days))
}

/// Writes the hourly rows of every event that occurred in `[from, to)`, of
/// every organization, with `version`, and returns how many: the hourly half
/// of a full rebuild, one range (a partition of the events) at a time. The
/// rows stream from PostgreSQL to ClickHouse in inserts of at most
/// [`FLUSH_ROWS`] rows, and nothing is kept per row, so memory does not grow
/// with the range.
pub async fn write_range(
    ch: &ClickHouse,
    source: &Client,
    from: OffsetDateTime,
    to: OffsetDateTime,
    version: u64,
) -> Result<u64, Error> {
    let statement = prepare_hourly(source).await?;
    let all: &[i64] = &[];
    let rows = source
        .query_raw(&statement, hourly_params(&from, &to, &all))
        .await
        .map_err(postgres("reading the events of a range"))?;
    let mut insert = HourlyInsert::new(ch, version, false);
    insert.push_all(rows).await?;
    Ok(insert.finish().await?.rows)
}

/// The most (organization, day) pairs one daily statement names: about
/// 36 KB of SQL, well inside ClickHouse's default `max_query_size` (256 KiB).
pub(crate) const DERIVE_PAIRS: usize = 1000;

/// The most hourly rows one insert carries.
pub const FLUSH_ROWS: usize = 100_000;

async fn prepare_hourly(source: &Client) -> Result<tokio_postgres::Statement, Error> {
    source
        .prepare(&transforms::hourly_rollup())
        .await
        .map_err(postgres("preparing analytics/transforms/hourly_rollup.sql"))
}

/// The parameters of `hourly_rollup.sql`: the hours `[from, to)`, the
/// organizations (all when empty), no events left out, the sum limit.
fn hourly_params<'a>(
    from: &'a OffsetDateTime,
    to: &'a OffsetDateTime,
    organizations: &'a &'a [i64],
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 5] {
    const NO_EVENTS: &[i64] = &[];
    [
        from,
        to,
        organizations,
        &NO_EVENTS,
        &rollup_engine::run::HOURLY_SUM_LIMIT,
    ]
}

/// Hourly rows on their way to ClickHouse, as `TabSeparated` text, sent in
/// inserts of at most [`FLUSH_ROWS`] rows.
struct HourlyInsert<'a> {
    ch: &'a ClickHouse,
    version: u64,
    text: String,
    pending: usize,
    rows: u64,
    /// Whether to note the (organization, day) pairs of the rows in `days`.
    note_days: bool,
    days: BTreeSet<(i64, Date)>,
}

/// What an [`HourlyInsert`] wrote.
struct Inserted {
    rows: u64,
    days: BTreeSet<(i64, Date)>,
}

impl<'a> HourlyInsert<'a> {
    fn new(ch: &'a ClickHouse, version: u64, note_days: bool) -> HourlyInsert<'a> {
        HourlyInsert {
            ch,
            version,
            text: String::new(),
            pending: 0,
            rows: 0,
            note_days,
            days: BTreeSet::new(),
        }
    }

    /// Adds every row of `hourly_rollup.sql`'s answer.
    async fn push_all(&mut self, rows: tokio_postgres::RowStream) -> Result<(), Error> {
        pin_mut!(rows);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(postgres("reading the events' hourly aggregates"))?
        {
            self.push(&row);
            if self.pending >= FLUSH_ROWS {
                self.flush().await?;
            }
        }
        Ok(())
    }

    fn push(&mut self, row: &tokio_postgres::Row) {
        let hour_at: OffsetDateTime = row.get("hour_at");
        let organization_id: i64 = row.get("organization_id");
        if row.get::<_, bool>("poisoned") {
            // The PostgreSQL targets quarantine such events
            // (analytics.quarantined_events); this target leaves the row
            // out, and the totals check reports the bucket.
            tracing::warn!(
                organization_id,
                hour_at = %utc_text(hour_at),
                "a row of this bucket holds events the rollups refuse (docs/analytics.md, \"Poisoned events\"); it is left out of ClickHouse"
            );
            return;
        }
        if self.pending == 0 {
            self.text
                .push_str("INSERT INTO usage_hourly_rollups FORMAT TabSeparated\n");
        }
        let latencies: Vec<i32> = row.get("latencies_ms");
        let histogram = Histogram::from_latencies(&latencies);
        let _ = writeln!(
            self.text,
            "{}\t{organization_id}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            utc_text(hour_at),
            row.get::<_, i64>("api_key_id"),
            row.get::<_, i64>("model_id"),
            row.get::<_, i64>("request_count"),
            row.get::<_, i64>("error_count"),
            row.get::<_, i64>("input_tokens"),
            row.get::<_, i64>("output_tokens"),
            row.get::<_, i64>("cost_micros"),
            row.get::<_, i64>("latency_ms_sum"),
            row.get::<_, i32>("latency_ms_max"),
            array(histogram.bins()),
            array(histogram.counts()),
            self.version,
        );
        self.pending += 1;
        self.rows += 1;
        if self.note_days {
            self.days.insert((
                organization_id,
                hour_at.to_offset(time::UtcOffset::UTC).date(),
            ));
        }
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if self.pending > 0 {
            self.ch
                .query(0, &self.text, "writing the hourly rows")
                .await?;
            self.text.clear();
            self.pending = 0;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Inserted, Error> {
        self.flush().await?;
        Ok(Inserted {
            rows: self.rows,
            days: self.days,
        })
    }
}

/// The daily half of [`rewrite`]: derives the daily rows of `days` from the
/// hourly rows on ClickHouse, with `version`. Run it once per run, after
/// every hour of the run is written, so each day is derived once per version.
pub async fn derive_days(
    ch: &ClickHouse,
    days: &BTreeSet<(i64, Date)>,
    version: u64,
) -> Result<(), Error> {
    if days.is_empty() {
        return Ok(());
    }
    let pairs: Vec<String> = days
        .iter()
        .map(|(organization, day)| format!("({organization}, toDate('{day}'))"))
        .collect();
    for chunk in pairs.chunks(DERIVE_PAIRS) {
        let filter = format!(
            "(organization_id, toDate(hour_at)) IN ({})",
            chunk.join(", ")
        );
        derive(ch, &filter, version).await?;
    }
    Ok(())
}

/// Derives the daily rows of every hourly row of a month partition
/// (`YYYYMM`), with `version`: the daily half of a full rebuild.
pub async fn derive_month(ch: &ClickHouse, month: u32, version: u64) -> Result<(), Error> {
    let daily = DAILY_MONTH_SQL
        .replace("{version}", &version.to_string())
        .replace("{month}", &month.to_string());
    on_every_shard(ch, &daily).await
}

async fn derive(ch: &ClickHouse, hourly_filter: &str, version: u64) -> Result<(), Error> {
    let daily = DAILY_SQL
        .replace("{version}", &version.to_string())
        .replace("{hourly_filter}", hourly_filter);
    on_every_shard(ch, &daily).await
}

/// Runs a daily derivation on every server over its own shard, all at once
/// (see the SQL files).
async fn on_every_shard(ch: &ClickHouse, sql: &str) -> Result<(), Error> {
    futures_util::future::try_join_all(
        (0..ch.nodes()).map(|node| ch.query(node, sql, "deriving the daily rows")),
    )
    .await?;
    Ok(())
}

/// `YYYY-MM-DD hh:mm:ss` in UTC, as a `DateTime('UTC')` column reads it.
pub(crate) fn utc_text(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{} {:02}:{:02}:{:02}",
        at.date(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn array<T: ToString>(values: &[T]) -> String {
    let items: Vec<String> = values.iter().map(T::to_string).collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_arrays_are_written_as_clickhouse_reads_them() {
        let at = time::macros::datetime!(2025-11-16 23:00 -02:00);
        assert_eq!(utc_text(at), "2025-11-17 01:00:00");
        assert_eq!(array(&[1i16, 17]), "[1,17]");
        assert_eq!(array::<i64>(&[]), "[]");
    }
}
