//! `future-partitions` (`--db`): daily-partitioned tables have a partition for every day from today to the configured horizon.

use crate::rules::naming_partition::partition_day;
use crate::rules::{At, Family, Findings, LiveView, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct FuturePartitions;

static INFO: RuleInfo = RuleInfo {
    id: "future-partitions",
    family: Family::Partitions,
    severity: Severity::Error,
    summary: "Daily-partitioned tables have partitions from today to the configured horizon (`dbops partitions ensure`).",
};

impl Rule for FuturePartitions {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_live(&self, live: &LiveView<'_>, out: &mut Findings) {
        let today = live.now.date();
        let days = live.config.partition_horizon.as_secs().div_ceil(86_400) as i64;
        for table in live
            .schema
            .tables
            .iter()
            .filter(|t| !live.config.ignored_schemas.contains(&t.schema))
        {
            let Some(partitioning) = &table.partitioning else {
                continue;
            };
            let present: Vec<time::Date> = partitioning
                .partitions
                .iter()
                .filter_map(|p| partition_day(&table.name, &p.name))
                .collect();
            if present.is_empty() {
                continue; // Not partitioned by day.
            }
            let missing: Vec<time::Date> = (0..=days)
                .map(|d| today + time::Duration::days(d))
                .filter(|day| !present.contains(day))
                .collect();
            if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
                out.report(
                    &INFO,
                    At::Object(format!("table {}", table.display_name())),
                    format!(
                        "`{}` lacks {} daily partition(s) between today and {days} days ahead ({first} to {last})",
                        table.display_name(),
                        missing.len()
                    ),
                )
                .help("run `dbops partitions ensure`; events for a day without a partition land in the default partition");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use crate::rules::test_support::{LiveExtras, check_live_with};

    #[test]
    fn horizon() {
        // The tests' clock is 2026-06-01; the default horizon is 7 days.
        let mut sql = String::from(
            "CREATE TABLE events (id bigint, at timestamptz) PARTITION BY RANGE (at);\n",
        );
        for day in [1, 2, 3, 5, 6, 7, 8] {
            sql += &format!(
                "CREATE TABLE events_p202606{day:02} PARTITION OF events FOR VALUES FROM ('2026-06-{day:02}') TO ('2026-06-{:02}');\n",
                day + 1
            );
        }
        sql += "CREATE TABLE other (id bigint, at timestamptz) PARTITION BY RANGE (at);";
        check_live_with(
            &Config::default(),
            "future-partitions",
            &sql,
            LiveExtras::default(),
            expect_test::expect![[r#"
            error[future-partitions]: `events` lacks 1 daily partition(s) between today and 7 days ahead (2026-06-04 to 2026-06-04)
              --> live database: table events
               = help: run `dbops partitions ensure`; events for a day without a partition land in the default partition
        "#]],
        );
    }
}
