//! Daily range partitions: create them ahead of time, move stray rows out of the default partition, retire old ones.
//!
//! A time-partitioned table (such as `usage_events`) has one partition per UTC
//! day, named `<table>_pYYYYMMDD`, and a default partition that catches rows
//! for days without one (see `docs/conventions.md`). [`ensure`] keeps such a
//! table in shape:
//!
//! 1. every day from today to `ahead_days` ahead gets its partition;
//! 2. rows waiting in the default partition are moved into their day's
//!    partition, which is created for them if need be (PostgreSQL refuses to
//!    create a partition whose range has rows in the default partition, so the
//!    rows are taken out, the partition created and the rows put back through
//!    the parent, all in one transaction: nothing is lost or seen twice);
//! 3. partitions whose whole day is older than the retention are detached
//!    (kept as plain tables) or dropped.
//!
//! Everything happens in one transaction under a transaction-level advisory
//! lock per table, so runs are safe to repeat and to start concurrently: a
//! second run waits for the first and then finds nothing to do.
//!
//! ```no_run
//! # async fn example(client: &mut tokio_postgres::Client) -> Result<(), partitions::Error> {
//! use std::time::Duration;
//! use partitions::{EnsureConfig, Retire};
//!
//! let report = partitions::ensure(client, &EnsureConfig {
//!     table: "usage_events".to_owned(),
//!     ahead_days: 7,
//!     retention: Some(Duration::from_secs(400 * 86_400)),
//!     retire: Retire::Detach,
//!     now: time::OffsetDateTime::now_utc(),
//! }).await?;
//! println!("created {:?}, retired {:?}", report.created, report.retired);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod error;

pub use error::Error;

use std::collections::BTreeSet;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Serialize;
use time::{Date, OffsetDateTime};
use tokio_postgres::{Client, Transaction};

/// The longest a maintenance run waits for a lock on the table before giving
/// up: creating or detaching a partition briefly blocks the table's readers
/// and writers, and a run stuck behind a long transaction would block them
/// for as long.
const LOCK_TIMEOUT: &str = "10s";

/// What [`ensure`] should do to one table.
#[derive(Debug, Clone)]
pub struct EnsureConfig {
    /// The partitioned table, `name` (found on the search path) or `schema.name`.
    pub table: String,
    /// How many days after today (UTC) must already have their partition.
    pub ahead_days: u32,
    /// Partitions whose day ended more than this long before `now` are
    /// retired; `None` keeps every partition (retention "forever").
    pub retention: Option<Duration>,
    /// How old partitions are retired.
    pub retire: Retire,
    /// The current time; a parameter so that runs are reproducible.
    pub now: OffsetDateTime,
}

/// How a partition older than the retention is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Retire {
    /// Detach it from the table and keep it as a plain table of the same
    /// name, for archiving before it is dropped by hand.
    Detach,
    /// Drop it with its rows.
    Drop,
}

/// What a run changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EnsureReport {
    /// The table, as `schema.name`.
    pub table: String,
    /// Partitions created, in day order.
    pub created: Vec<String>,
    /// Partitions detached or dropped (see [`EnsureConfig::retire`]), in day order.
    pub retired: Vec<String>,
    /// Rows moved from the default partition into their day's partition.
    pub moved_from_default: u64,
}

impl EnsureReport {
    /// True when the run found everything in place.
    pub fn is_noop(&self) -> bool {
        self.created.is_empty() && self.retired.is_empty() && self.moved_from_default == 0
    }
}

impl fmt::Display for EnsureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} partition(s) created, {} retired, {} row(s) moved from the default partition",
            self.table,
            self.created.len(),
            self.retired.len(),
            self.moved_from_default
        )
    }
}

/// Creates the partitions from today to `ahead_days` ahead, moves rows out of
/// the default partition and retires partitions older than the retention.
///
/// # Errors
/// [`Error::NotDailyPartitioned`] when the table does not exist or is not
/// range-partitioned on one `timestamptz` column; [`Error::OutOfCalendar`] when
/// `ahead_days` or the retention reaches past the calendar; [`Error::Database`]
/// when a statement fails (the transaction is rolled back and nothing changes).
#[tracing::instrument(skip_all, fields(table = %config.table, ahead_days = config.ahead_days))]
pub async fn ensure(client: &mut Client, config: &EnsureConfig) -> Result<EnsureReport, Error> {
    let today = config.now.to_offset(time::UtcOffset::UTC).date();
    let last = today
        .checked_add(time::Duration::days(i64::from(config.ahead_days)))
        .ok_or_else(|| {
            Error::OutOfCalendar(format!(
                "{} days ahead of {today} is past the end of the calendar",
                config.ahead_days
            ))
        })?;
    let cutoff = match config.retention {
        Some(retention) => Some(retention_cutoff(config.now, retention)?),
        None => None,
    };
    run(
        client,
        &config.table,
        today..=last,
        cutoff.map(|day| (day, config.retire)),
    )
    .await
}

/// Creates the partitions of every day in `days` that has none (moving rows
/// from the default partition as [`ensure`] does), and retires nothing. For
/// backfills and fixtures that need partitions for past days.
///
/// # Errors
/// As [`ensure`].
#[tracing::instrument(skip_all, fields(table = %table, first = %days.start(), last = %days.end()))]
pub async fn create_days(
    client: &mut Client,
    table: &str,
    days: RangeInclusive<Date>,
) -> Result<EnsureReport, Error> {
    run(client, table, days, None).await
}

/// The name of the partition of `table` (unqualified) holding `day`.
pub fn partition_name(table: &str, day: Date) -> String {
    format!(
        "{table}_p{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// The first day that is kept: a partition is retired when its day ends on or
/// before `now - retention`.
fn retention_cutoff(now: OffsetDateTime, retention: Duration) -> Result<Date, Error> {
    let too_long = || {
        Error::OutOfCalendar(format!(
            "a retention of {retention:?} before {now} is before the start of the calendar"
        ))
    };
    let oldest_kept_instant = time::Duration::try_from(retention)
        .ok()
        .and_then(|retention| now.checked_sub(retention))
        .ok_or_else(too_long)?;
    // The day containing the oldest kept instant is kept; every earlier day
    // ended at or before it.
    Ok(oldest_kept_instant.to_offset(time::UtcOffset::UTC).date())
}

/// The partitioned table as the catalog describes it.
struct Parent {
    /// Schema name.
    schema: String,
    /// Table name.
    name: String,
    /// The partition key column.
    key: String,
    /// Every column, in order, quoted.
    columns: Vec<String>,
}

impl Parent {
    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    fn qualified_child(&self, child: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(child))
    }
}

async fn run(
    client: &mut Client,
    table: &str,
    wanted: RangeInclusive<Date>,
    retire: Option<(Date, Retire)>,
) -> Result<EnsureReport, Error> {
    let tx = client
        .transaction()
        .await
        .map_err(Error::db("starting a partition maintenance transaction"))?;
    let parent = lock_and_describe(&tx, table).await?;
    let mut report = EnsureReport {
        table: format!("{}.{}", parent.schema, parent.name),
        ..EnsureReport::default()
    };

    let existing = existing_days(&tx, &parent).await?;
    let default_partition = default_partition(&tx, &parent).await?;
    let stray_days = match &default_partition {
        Some(default) => days_in_default(&tx, &parent, default).await?,
        None => BTreeSet::new(),
    };

    // A stray row for a day whose partition was already detached goes to
    // that detached table, where the rest of its day is archived.
    let archived = match retire {
        Some((_, Retire::Detach)) if !stray_days.is_empty() => archived_days(&tx, &parent).await?,
        _ => BTreeSet::new(),
    };
    let mut missing: BTreeSet<Date> = day_range(&wanted)
        .filter(|day| !existing.contains(day))
        .collect();
    missing.extend(
        stray_days
            .iter()
            .filter(|day| !existing.contains(day) && !archived.contains(day)),
    );

    let columns = parent.columns.join(", ");
    let key = quote_ident(&parent.key);
    if let Some(default) = &default_partition {
        let default = parent.qualified_child(default);
        for day in stray_days.iter().filter(|day| archived.contains(day)) {
            let archive = partition_name(&parent.name, *day);
            let moved = tx
                .execute(
                    &format!(
                        "WITH moved AS (DELETE FROM {default} WHERE {key} >= {lo} AND {key} < {hi} RETURNING {columns}) \
                         INSERT INTO {archive} ({columns}) SELECT {columns} FROM moved",
                        archive = parent.qualified_child(&archive),
                        lo = day_start(*day),
                        hi = day_start(next_day(*day)?),
                    ),
                    &[],
                )
                .await
                .map_err(Error::db(format!("moving the rows of {day} from {default} to the detached {archive}")))?;
            tracing::info!(rows = moved, archive = %archive, "moved rows to a detached partition");
            report.moved_from_default += moved;
        }
    }

    // Rows of the default partition whose day is about to get a partition are
    // parked in a temporary table, so that the new partition's range is free
    // in the default partition, and put back through the parent afterwards.
    let moving: Vec<Date> = missing
        .iter()
        .copied()
        .filter(|day| stray_days.contains(day))
        .collect();
    let mut parked = 0;
    if let Some(default) = default_partition.as_deref().filter(|_| !moving.is_empty()) {
        let default = parent.qualified_child(default);
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE dbops_partition_moving (LIKE {parent}) ON COMMIT DROP",
            parent = parent.qualified()
        ))
        .await
        .map_err(Error::db(
            "creating the temporary table for rows of the default partition",
        ))?;
        for day in &moving {
            let moved = tx
                .execute(
                    &format!(
                        "WITH moved AS (DELETE FROM {default} WHERE {key} >= {lo} AND {key} < {hi} RETURNING {columns}) \
                         INSERT INTO dbops_partition_moving ({columns}) SELECT {columns} FROM moved",
                        lo = day_start(*day),
                        hi = day_start(next_day(*day)?),
                    ),
                    &[],
                )
                .await
                .map_err(Error::db(format!("taking the rows of {day} out of the default partition {default}")))?;
            parked += moved;
        }
    }

    for day in &missing {
        let name = partition_name(&parent.name, *day);
        tx.batch_execute(&format!(
            "CREATE TABLE {child} PARTITION OF {parent} FOR VALUES FROM ({lo}) TO ({hi})",
            child = parent.qualified_child(&name),
            parent = parent.qualified(),
            lo = day_start(*day),
            hi = day_start(next_day(*day)?),
        ))
        .await
        .map_err(Error::db(format!("creating partition {name}")))?;
        tracing::info!(partition = %name, "created partition");
        report.created.push(name);
    }

    if parked > 0 {
        // Identity columns reject explicit values unless told otherwise; the
        // rows keep the ids they were given.
        tx.execute(
            &format!(
                "INSERT INTO {parent} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM dbops_partition_moving",
                parent = parent.qualified()
            ),
            &[],
        )
        .await
        .map_err(Error::db("putting the rows of the default partition back through the parent"))?;
        tracing::info!(rows = parked, "moved rows out of the default partition");
        report.moved_from_default += parked;
    }

    if let Some((first_kept, how)) = retire {
        let mut all_days = existing;
        all_days.extend(missing.iter().copied());
        for day in all_days.range(..first_kept) {
            let name = partition_name(&parent.name, *day);
            let sql = match how {
                Retire::Detach => format!(
                    "ALTER TABLE {parent} DETACH PARTITION {child}",
                    parent = parent.qualified(),
                    child = parent.qualified_child(&name)
                ),
                Retire::Drop => format!("DROP TABLE {}", parent.qualified_child(&name)),
            };
            tx.batch_execute(&sql)
                .await
                .map_err(Error::db(format!("retiring partition {name}")))?;
            tracing::info!(partition = %name, how = ?how, "retired partition");
            report.retired.push(name);
        }
    }

    tx.commit()
        .await
        .map_err(Error::db("committing partition maintenance"))?;
    Ok(report)
}

/// Takes the per-table advisory lock and reads the table's partitioning.
async fn lock_and_describe(tx: &Transaction<'_>, table: &str) -> Result<Parent, Error> {
    let not_maintainable = |reason: String| Error::NotDailyPartitioned {
        table: table.to_owned(),
        reason,
    };
    let row = tx
        .query_opt(
            "SELECT n.nspname, c.relname, p.partstrat::text, p.partnatts::int4, \
                    a.attname, format_type(a.atttypid, a.atttypmod) \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] \
             WHERE c.oid = to_regclass($1)",
            &[&table],
        )
        .await
        .map_err(Error::db(format!("looking up table {table}")))?
        .ok_or_else(|| not_maintainable("no such table".to_owned()))?;
    let schema: String = row.get(0);
    let name: String = row.get(1);
    let strategy: Option<String> = row.get(2);
    let key_count: Option<i32> = row.get(3);
    let key: Option<String> = row.get(4);
    let key_type: Option<String> = row.get(5);
    match (strategy.as_deref(), key_count, key, key_type.as_deref()) {
        (None, ..) => Err(not_maintainable("not a partitioned table".to_owned())),
        (Some("r"), Some(1), Some(key), Some("timestamp with time zone")) => {
            tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                .await
                .map_err(Error::db("setting the lock timeout"))?;
            // One lock per table: concurrent runs on the same table queue up,
            // runs on different tables do not wait for each other.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('dbops.partitions:' || $1::text::regclass::oid::text, 0))",
                &[&table],
            )
            .await
            .map_err(Error::db(format!("taking the partition maintenance lock of {table}")))?;
            let columns = tx
                .query(
                    "SELECT attname FROM pg_attribute \
                     WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    &[&table],
                )
                .await
                .map_err(Error::db(format!("reading the columns of {table}")))?
                .iter()
                .map(|row| quote_ident(row.get(0)))
                .collect();
            Ok(Parent {
                schema,
                name,
                key,
                columns,
            })
        }
        (strategy, key_count, _, key_type) => Err(not_maintainable(format!(
            "daily partitions need RANGE partitioning on one timestamptz column; found strategy {}, {} key column(s), key type {}",
            strategy.unwrap_or("?"),
            key_count.unwrap_or(0),
            key_type.unwrap_or("an expression")
        ))),
    }
}

/// The days that have a partition named after the convention.
async fn existing_days(tx: &Transaction<'_>, parent: &Parent) -> Result<BTreeSet<Date>, Error> {
    let rows = tx
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = $1::text::regclass",
            &[&parent.qualified()],
        )
        .await
        .map_err(Error::db(format!(
            "listing the partitions of {}",
            parent.name
        )))?;
    let prefix = format!("{}_p", parent.name);
    Ok(rows
        .iter()
        .filter_map(|row| parse_day(row.get::<_, &str>(0).strip_prefix(&prefix)?))
        .collect())
}

/// The days of detached partitions: plain tables beside the parent named after the convention.
async fn archived_days(tx: &Transaction<'_>, parent: &Parent) -> Result<BTreeSet<Date>, Error> {
    let rows = tx
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT c.relispartition AND starts_with(c.relname, $2)",
            &[&parent.schema, &format!("{}_p", parent.name)],
        )
        .await
        .map_err(Error::db(format!("listing the detached partitions of {}", parent.name)))?;
    let prefix = format!("{}_p", parent.name);
    Ok(rows
        .iter()
        .filter_map(|row| parse_day(row.get::<_, &str>(0).strip_prefix(&prefix)?))
        .collect())
}

/// The name of the default partition, if the table has one.
async fn default_partition(tx: &Transaction<'_>, parent: &Parent) -> Result<Option<String>, Error> {
    let row = tx
        .query_opt(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = $1::text::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
            &[&parent.qualified()],
        )
        .await
        .map_err(Error::db(format!("looking for the default partition of {}", parent.name)))?;
    Ok(row.map(|row| row.get(0)))
}

/// The UTC days of the rows waiting in the default partition.
async fn days_in_default(
    tx: &Transaction<'_>,
    parent: &Parent,
    default: &str,
) -> Result<BTreeSet<Date>, Error> {
    let rows = tx
        .query(
            &format!(
                "SELECT DISTINCT to_char({key} AT TIME ZONE 'UTC', 'YYYYMMDD') FROM {default}",
                key = quote_ident(&parent.key),
                default = parent.qualified_child(default)
            ),
            &[],
        )
        .await
        .map_err(Error::db(format!(
            "reading the days held by the default partition {default}"
        )))?;
    Ok(rows
        .iter()
        .filter_map(|row| parse_day(row.get(0)))
        .collect())
}

/// Parses `YYYYMMDD`.
fn parse_day(digits: &str) -> Option<Date> {
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = digits[0..4].parse().ok()?;
    let month = time::Month::try_from(digits[4..6].parse::<u8>().ok()?).ok()?;
    let day = digits[6..8].parse().ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

fn day_range(days: &RangeInclusive<Date>) -> impl Iterator<Item = Date> + '_ {
    std::iter::successors(Some(*days.start()), |day| day.next_day())
        .take_while(move |day| day <= days.end())
}

fn next_day(day: Date) -> Result<Date, Error> {
    day.next_day().ok_or_else(|| {
        Error::OutOfCalendar(format!(
            "the day after {day} is past the end of the calendar"
        ))
    })
}

/// The SQL literal of the UTC midnight starting `day`.
fn day_start(day: Date) -> String {
    format!("'{day} 00:00:00+00'")
}

fn quote_ident(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn partition_names_follow_the_convention() {
        assert_eq!(
            partition_name("usage_events", date!(2025 - 11 - 05)),
            "usage_events_p20251105"
        );
    }

    #[test]
    fn days_parse_back_from_partition_names() {
        assert_eq!(parse_day("20251105"), Some(date!(2025 - 11 - 05)));
        assert_eq!(parse_day("20251305"), None);
        assert_eq!(parse_day("2025110"), None);
        assert_eq!(parse_day("default"), None);
    }

    #[test]
    fn the_day_containing_the_oldest_kept_instant_is_kept() {
        let now = datetime!(2025-11-15 10:00 UTC);
        assert_eq!(
            retention_cutoff(now, Duration::from_secs(86_400)).unwrap(),
            date!(2025 - 11 - 14)
        );
        assert_eq!(
            retention_cutoff(now, Duration::from_secs(10 * 3600)).unwrap(),
            date!(2025 - 11 - 15)
        );
        assert_eq!(
            retention_cutoff(now, Duration::from_secs(10 * 3600 + 1)).unwrap(),
            date!(2025 - 11 - 14)
        );
    }
}
