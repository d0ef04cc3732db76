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

use rollup_engine::histogram::Histogram;
use time::{Date, Duration, OffsetDateTime};
use tokio_postgres::Client;

use crate::transforms::{self, postgres};
use crate::{ClickHouse, Error};

const DAILY_SQL: &str = include_str!("../../../analytics/transforms/clickhouse/daily_rollup.sql");

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
    let sql = transforms::hourly_rollup();
    let statement = source
        .prepare(&sql)
        .await
        .map_err(postgres("preparing analytics/transforms/hourly_rollup.sql"))?;
    let mut rows = String::from("INSERT INTO usage_hourly_rollups FORMAT TabSeparated\n");
    let mut count = 0;
    let mut days = BTreeSet::new();
    let no_events: &[i64] = &[];
    for (hour, organizations) in &by_hour {
        let next = *hour + Duration::HOUR;
        for row in source
            .query(
                &statement,
                &[
                    hour,
                    &next,
                    organizations,
                    &no_events,
                    &rollup_engine::run::HOURLY_SUM_LIMIT,
                ],
            )
            .await
            .map_err(postgres("reading the events of the buckets"))?
        {
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
                continue;
            }
            let latencies: Vec<i32> = row.get("latencies_ms");
            let histogram = Histogram::from_latencies(&latencies);
            let _ = writeln!(
                rows,
                "{}\t{organization_id}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{version}",
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
            );
            count += 1;
            days.insert((
                organization_id,
                hour_at.to_offset(time::UtcOffset::UTC).date(),
            ));
        }
    }
    if count > 0 {
        ch.query(0, &rows, "writing the hourly rows").await?;
    }
    Ok((count, days))
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
    let daily = DAILY_SQL
        .replace("{version}", &version.to_string())
        .replace("{day_buckets}", &pairs.join(", "));
    ch.query(0, &daily, "deriving the daily rows").await?;
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
