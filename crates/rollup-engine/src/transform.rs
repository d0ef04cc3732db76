//! The SQL of `analytics/transforms/`, compiled in, and the substitution of its psql-style parameters.
//!
//! Each transform file is runnable on its own with `psql -v name=value -f`,
//! so its parameters are written as psql variables, `:'name'`. The engine
//! substitutes each with a quoted literal it formats itself (timestamps and
//! dates, never user text), which also lets the statements run inside
//! `COPY (...) TO STDOUT`, where bind parameters are not allowed.

use std::fmt::Write as _;

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

/// One transform file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transform {
    pub(crate) file: &'static str,
    sql: &'static str,
}

/// (organization, hour) buckets touched by the events ingested in a window.
pub(crate) const DIRTY_BUCKETS: Transform = Transform {
    file: "analytics/transforms/dirty_buckets.sql",
    sql: include_str!("../../../analytics/transforms/dirty_buckets.sql"),
};

/// Hourly rows of a range of hours, from the events.
pub(crate) const HOURLY_ROLLUP: Transform = Transform {
    file: "analytics/transforms/hourly_rollup.sql",
    sql: include_str!("../../../analytics/transforms/hourly_rollup.sql"),
};

/// Daily rows of a range of days, from the hourly rows.
pub(crate) const DAILY_ROLLUP: Transform = Transform {
    file: "analytics/transforms/daily_rollup.sql",
    sql: include_str!("../../../analytics/transforms/daily_rollup.sql"),
};

/// The events of a poisoned hourly row to quarantine, with their reasons.
pub(crate) const QUARANTINE_EVENTS: Transform = Transform {
    file: "analytics/transforms/quarantine_events.sql",
    sql: include_str!("../../../analytics/transforms/quarantine_events.sql"),
};

/// A parameter value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    /// A timestamp, or an infinity.
    Timestamp(Bound<OffsetDateTime>),
    /// A date, or an infinity.
    Date(Bound<Date>),
    /// A `bigint[]`.
    Ids(&'a [i64]),
    /// A `bigint`.
    Int(i64),
}

/// A range end that may be unbounded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bound<T> {
    /// Minus infinity.
    Lowest,
    /// A finite value.
    At(T),
    /// Plus infinity.
    Highest,
}

impl Value<'_> {
    fn literal(self) -> String {
        fn bound<T>(b: Bound<T>, finite: impl FnOnce(T) -> String) -> String {
            match b {
                Bound::Lowest => "-infinity".to_owned(),
                Bound::At(value) => finite(value),
                Bound::Highest => "infinity".to_owned(),
            }
        }
        match self {
            Value::Timestamp(b) => bound(b, |t| {
                t.to_offset(time::UtcOffset::UTC)
                    .format(&Rfc3339)
                    .expect("RFC 3339 formats every timestamp of a valid year")
            }),
            Value::Date(b) => bound(b, |d| d.to_string()),
            Value::Ids(ids) => {
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("{{{}}}", list.join(","))
            }
            Value::Int(value) => value.to_string(),
        }
    }
}

impl Transform {
    /// The statement with every `:'name'` replaced by the quoted literal of
    /// the parameter of that name, without the trailing semicolon (so that
    /// it can be wrapped in `COPY (...)`).
    ///
    /// # Panics
    /// When the file uses a parameter that `params` lacks or the other way
    /// round: the files are compiled in, so that is a bug the tests catch.
    pub(crate) fn render(&self, params: &[(&str, Value<'_>)]) -> String {
        let mut out = String::with_capacity(self.sql.len());
        let mut used = vec![false; params.len()];
        let mut rest = self.sql;
        while let Some(start) = rest.find(":'") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('\'')
                .unwrap_or_else(|| panic!("{}: unterminated parameter", self.file));
            let name = &after[..end];
            let index = params
                .iter()
                .position(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{}: no value for parameter {name}", self.file));
            used[index] = true;
            write!(out, "'{}'", params[index].1.literal()).expect("writing to a String");
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        if let Some(unused) = used.iter().position(|u| !u) {
            panic!("{}: parameter {} is not used", self.file, params[unused].0);
        }
        let trimmed = out.trim_end();
        trimmed.strip_suffix(';').unwrap_or(trimmed).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn renders_timestamps_in_utc_and_infinities() {
        let sql = HOURLY_ROLLUP.render(&[
            (
                "hour_from",
                Value::Timestamp(Bound::At(datetime!(2025-11-16 03:00 +02:00))),
            ),
            ("hour_to", Value::Timestamp(Bound::Highest)),
            ("organization_ids", Value::Ids(&[7, 42])),
            ("excluded_events", Value::Ids(&[])),
            ("sum_limit", Value::Int(1000)),
        ]);
        assert!(sql.contains("> '1000'::bigint AS poisoned"), "{sql}");
        assert!(
            sql.contains("organization_id = ANY ('{7,42}'::bigint[])"),
            "{sql}"
        );
        assert!(
            sql.contains("occurred_at >= '2025-11-16T01:00:00Z'::timestamptz"),
            "{sql}"
        );
        assert!(
            sql.contains("occurred_at < 'infinity'::timestamptz"),
            "{sql}"
        );
        assert!(!sql.ends_with(';'));
    }

    #[test]
    fn renders_dates() {
        let sql = DAILY_ROLLUP.render(&[
            ("day_from", Value::Date(Bound::Lowest)),
            ("day_to", Value::Date(Bound::At(date!(2025 - 11 - 17)))),
            ("organization_ids", Value::Ids(&[])),
        ]);
        assert!(sql.contains("cardinality('{}'::bigint[]) = 0"), "{sql}");
        assert!(sql.contains("('-infinity'::date)"), "{sql}");
        assert!(sql.contains("('2025-11-17'::date)"), "{sql}");
    }

    #[test]
    fn quarantine_events_renders_with_its_documented_parameters() {
        let sql = QUARANTINE_EVENTS.render(&[
            (
                "hour_at",
                Value::Timestamp(Bound::At(datetime!(2025-11-16 03:00 UTC))),
            ),
            ("organization_id", Value::Int(7)),
            ("api_key_id", Value::Int(0)),
            ("model_id", Value::Int(-2)),
            ("sum_limit", Value::Int(1000)),
        ]);
        assert!(sql.contains("model_id = '-2'::bigint"), "{sql}");
        assert!(!sql.contains(":'"), "{sql}");
    }

    #[test]
    fn dirty_buckets_renders_with_its_documented_parameters() {
        let t = Value::Timestamp(Bound::Lowest);
        let sql = DIRTY_BUCKETS.render(&[
            ("ingested_from", t),
            ("ingested_to", Value::Timestamp(Bound::Highest)),
        ]);
        assert!(
            sql.contains("ingested_at >= '-infinity'::timestamptz"),
            "{sql}"
        );
        assert!(!sql.contains(":'"), "{sql}");
    }
}
