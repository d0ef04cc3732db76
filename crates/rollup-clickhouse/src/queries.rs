//! The three analytics queries of `analytics/queries/` on the ClickHouse rollups.
//!
//! Each [`Query`] is the ClickHouse form (`analytics/queries/clickhouse/`)
//! of the PostgreSQL query of the same name: the same columns, rows and
//! order from the same events. Each reads one version per row the way that
//! was faster on the benchmark: `argMax(..., version)` for the one
//! organization's days, `FINAL` for the two scans of every organization
//! (docs/analytics.md says why). ClickHouse
//! 18.16 has no query parameters, so [`Query::sql`] writes the values into
//! the text; every value is a number or a date the engine formats itself.

use time::{Date, OffsetDateTime};

use crate::{ClickHouse, Error};

/// An analytics query and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// An organization's daily usage over the 30 days ending on `until_day`,
    /// with each day's P95 latency.
    OrganizationDailyUsage {
        /// The organization.
        organization_id: i64,
        /// The last day shown (UTC).
        until_day: Date,
    },
    /// The ten models that served the most tokens over the 7 days ending on
    /// `until_day`.
    TopModelsByTokens {
        /// The last day counted (UTC).
        until_day: Date,
    },
    /// Error ratio by API key over the 24 hours before `until_at`, worst first.
    KeyErrorRatio {
        /// The end of the 24 hours (exclusive); whole seconds are used.
        until_at: OffsetDateTime,
    },
}

impl Query {
    /// The file name shared by both forms of the query, without `.sql`.
    pub fn name(&self) -> &'static str {
        match self {
            Query::OrganizationDailyUsage { .. } => "organization_daily_usage",
            Query::TopModelsByTokens { .. } => "top_models_by_tokens",
            Query::KeyErrorRatio { .. } => "key_error_ratio",
        }
    }

    /// The query's ClickHouse SQL with its parameters written in.
    pub fn sql(&self) -> String {
        match *self {
            Query::OrganizationDailyUsage {
                organization_id,
                until_day,
            } => include_str!("../../../analytics/queries/clickhouse/organization_daily_usage.sql")
                .replace("{organization_id}", &organization_id.to_string())
                .replace("{until_day}", &until_day.to_string()),
            Query::TopModelsByTokens { until_day } => {
                include_str!("../../../analytics/queries/clickhouse/top_models_by_tokens.sql")
                    .replace("{until_day}", &until_day.to_string())
            }
            Query::KeyErrorRatio { until_at } => {
                include_str!("../../../analytics/queries/clickhouse/key_error_ratio.sql")
                    .replace("{until_at}", &crate::buckets::utc_text(until_at))
            }
        }
    }

    /// Runs the query over the `Distributed` tables and returns its rows,
    /// tab-separated, one per line.
    pub async fn run(&self, ch: &ClickHouse) -> Result<String, Error> {
        let sql = format!("{}\nFORMAT TabSeparated", self.sql());
        ch.query(0, &sql, &format!("running analytics query {}", self.name()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn parameters_are_written_as_clickhouse_reads_them() {
        let sql = Query::OrganizationDailyUsage {
            organization_id: 42,
            until_day: date!(2025 - 11 - 16),
        }
        .sql();
        assert!(sql.contains("organization_id = 42\n"), "{sql}");
        assert!(sql.contains("toDate('2025-11-16') - 30"), "{sql}");
        let sql = Query::KeyErrorRatio {
            until_at: datetime!(2025-11-16 13:00 +01:00),
        }
        .sql();
        assert!(
            sql.contains("toDateTime('2025-11-16 12:00:00', 'UTC')"),
            "{sql}"
        );
        for query in [
            Query::TopModelsByTokens {
                until_day: date!(2025 - 11 - 16),
            }
            .sql(),
            sql,
        ] {
            assert!(!query.contains('{'), "{query}");
        }
    }
}
