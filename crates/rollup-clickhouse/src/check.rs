//! The data-quality assertions on the ClickHouse rollups.
//!
//! The assertions file has the format of the PostgreSQL targets' one
//! ([`rollup_engine::check::Assertions`]), with its conditions and queries in
//! ClickHouse's SQL (`analytics/tests/clickhouse/hourly_rollup.toml`). A
//! table is named `analytics.<table>` as on PostgreSQL: the `analytics`
//! schema stands for the target's database, and `<table>` is the
//! `Distributed` table read across the shards.
//!
//! The kinds read one version per key (`FINAL`), as readers do: older
//! versions waiting for a merge are not violations, but a key whose rows
//! live on two shards (each keeping its own newest version) is one, which
//! `unique` catches.

use rollup_engine::check::{Assertion, Assertions, Finding, Rule};

use crate::{ClickHouse, Error};

/// How many violating rows a finding shows.
const SAMPLE_ROWS: usize = 5;

/// Runs every assertion on the cluster, in file order. A failed assertion
/// is a [`Finding`]; one that cannot run is an error naming it.
pub async fn check(ch: &ClickHouse, assertions: &Assertions) -> Result<Vec<Finding>, Error> {
    let mut findings = Vec::with_capacity(assertions.assertions.len());
    for assertion in &assertions.assertions {
        let context = format!(
            "running assertion {} of {}",
            assertion.name,
            assertions.path.display()
        );
        let violations_sql =
            violations_sql(assertion).map_err(|message| Error::InvalidSetting {
                setting: "clickhouse_assertions",
                message: format!(
                    "{}: assertion {}: {message}",
                    assertions.path.display(),
                    assertion.name
                ),
            })?;
        let count = ch
            .query(
                0,
                &format!("SELECT count() FROM ({violations_sql}) FORMAT TabSeparated"),
                &context,
            )
            .await?;
        let violations: i64 = count.trim().parse().map_err(|_| Error::Server {
            node: ch.node_name(0),
            context: context.clone(),
            message: format!("unexpected count {:?}", count.trim()),
        })?;
        let sample = if violations > 0 {
            tracing::warn!(assertion = %assertion.name, severity = ?assertion.severity, violations, "data-quality assertion violated");
            ch.query(
                0,
                &format!("SELECT * FROM ({violations_sql}) LIMIT {SAMPLE_ROWS} FORMAT JSONEachRow"),
                &context,
            )
            .await?
            .lines()
            .map(str::to_owned)
            .collect()
        } else {
            Vec::new()
        };
        findings.push(Finding {
            assertion: assertion.name.clone(),
            severity: assertion.severity,
            description: assertion.description.clone(),
            violations,
            sample,
        });
    }
    Ok(findings)
}

/// The ClickHouse query returning the rows that violate `assertion`, or why
/// it cannot run here.
fn violations_sql(assertion: &Assertion) -> Result<String, String> {
    let table = match assertion.table.split_once('.') {
        Some(("analytics", table)) => table,
        _ => {
            return Err(format!(
                "table {:?} must be analytics.<table> (the target's database)",
                assertion.table
            ));
        }
    };
    Ok(match &assertion.rule {
        Rule::NotNull(columns) => {
            let any_null = columns
                .iter()
                .map(|c| format!("isNull({c})"))
                .collect::<Vec<_>>()
                .join(" OR ");
            format!("SELECT * FROM {table} FINAL WHERE {any_null}")
        }
        Rule::Unique(columns) => {
            let list = columns.join(", ");
            format!(
                "SELECT {list}, count() AS copies FROM {table} FINAL GROUP BY {list} HAVING count() > 1"
            )
        }
        Rule::Row(condition) => {
            format!("SELECT * FROM {table} FINAL WHERE NOT ({condition})")
        }
        Rule::Query(sql) => sql.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_shipped_assertions_read_one_version_in_the_targets_database() {
        let path = Path::new("analytics/tests/clickhouse/hourly_rollup.toml");
        let assertions = Assertions::parse(
            include_str!("../../../analytics/tests/clickhouse/hourly_rollup.toml"),
            path,
        )
        .unwrap();
        let sql: Vec<String> = assertions
            .assertions
            .iter()
            .map(|a| violations_sql(a).unwrap())
            .collect();
        assert_eq!(
            sql[1],
            "SELECT hour_at, organization_id, api_key_id, model_id, count() AS copies \
             FROM usage_hourly_rollups FINAL GROUP BY hour_at, organization_id, api_key_id, model_id \
             HAVING count() > 1"
        );
        assert!(sql.iter().all(|s| !s.contains("analytics.")), "{sql:?}");
        let other = Assertions::parse(
            "table = \"public.t\"\n[[assertion]]\nname = \"a\"\nkind = \"row\"\nseverity = \"error\"\n\
             description = \"d\"\ncondition = \"x > 0\"\n",
            path,
        )
        .unwrap();
        assert_eq!(
            violations_sql(&other.assertions[0]).unwrap_err(),
            "table \"public.t\" must be analytics.<table> (the target's database)"
        );
    }
}
