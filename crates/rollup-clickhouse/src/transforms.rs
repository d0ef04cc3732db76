//! The engine's transforms (`analytics/transforms/`) as the ClickHouse target runs them on PostgreSQL.
//!
//! The files are the PostgreSQL targets' own, compiled in; their psql
//! variables (`:'name'`) become bind parameters (`$1`, `$2`, ...), so the
//! buckets and rows this target computes cannot drift from theirs.

/// `dirty_buckets.sql`: `$1` ingested from (inclusive), `$2` ingested to.
pub(crate) fn dirty_buckets() -> String {
    bind(
        include_str!("../../../analytics/transforms/dirty_buckets.sql"),
        &["ingested_from", "ingested_to"],
    )
}

/// `hourly_rollup.sql`: `$1` first hour, `$2` end of the last hour, `$3`
/// the organizations, `$4` events to leave out, `$5` the largest sum a row
/// may hold.
pub(crate) fn hourly_rollup() -> String {
    bind(
        include_str!("../../../analytics/transforms/hourly_rollup.sql"),
        &[
            "hour_from",
            "hour_to",
            "organization_ids",
            "excluded_events",
            "sum_limit",
        ],
    )
}

fn bind(sql: &str, names: &[&str]) -> String {
    let mut sql = sql.to_owned();
    for (i, name) in names.iter().enumerate() {
        sql = sql.replace(&format!(":'{name}'"), &format!("${}", i + 1));
    }
    sql
}

/// The error of a failed statement on PostgreSQL, saying what it was for.
pub(crate) fn postgres(
    context: &'static str,
) -> impl FnOnce(tokio_postgres::Error) -> crate::Error {
    move |source| crate::Error::Postgres {
        context: context.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_transforms_keep_no_psql_variable() {
        for (sql, last) in [
            (super::dirty_buckets(), "$2::timestamptz"),
            (super::hourly_rollup(), "$5::bigint"),
        ] {
            assert!(!sql.contains(":'"), "{sql}");
            assert!(
                sql.contains("$1::timestamptz") && sql.contains(last),
                "{sql}"
            );
        }
    }
}
