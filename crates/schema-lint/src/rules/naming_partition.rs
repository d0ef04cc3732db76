//! `naming-partition`: partitions are `<table>_pYYYYMMDD` (a real day) or the default partition `<table>_default`.

use time::{Date, Month};

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct NamingPartition;

static INFO: RuleInfo = RuleInfo {
    id: "naming-partition",
    family: Family::Naming,
    severity: Severity::Error,
    summary: "Partitions are named `<table>_pYYYYMMDD` after the UTC day they hold, or `<table>_default`.",
};

/// The day a daily partition's name stands for (`usage_events_p20251115` of `usage_events`).
pub(crate) fn partition_day(table: &str, partition: &str) -> Option<Date> {
    let digits = partition.strip_prefix(table)?.strip_prefix("_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = digits[..4].parse().ok()?;
    let month = Month::try_from(digits[4..6].parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year, month, digits[6..].parse().ok()?).ok()
}

impl Rule for NamingPartition {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            let Some(partitioning) = &table.partitioning else {
                continue;
            };
            let default_name = format!("{}_default", table.name);
            for partition in partitioning
                .partitions
                .iter()
                .filter(|p| p.parent.is_none())
            {
                let is_default = partition.bound == "DEFAULT";
                let ok = if is_default {
                    partition.name == default_name
                } else {
                    partition_day(&table.name, &partition.name).is_some()
                };
                if !ok {
                    let expected = if is_default {
                        default_name.clone()
                    } else {
                        format!("{}_pYYYYMMDD", table.name)
                    };
                    out.report(
                        &INFO,
                        view.partition_at(table, partition),
                        format!("partition `{}` of `{}` is not named `{expected}`", partition.name, table.name),
                    )
                    .help("daily partitions are named after the UTC day they hold; `dbops partitions ensure` creates them");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn partition_names() {
        check(
            "naming-partition",
            "CREATE TABLE events (id bigint, at timestamptz) PARTITION BY RANGE (at);
             CREATE TABLE events_default PARTITION OF events DEFAULT;
             CREATE TABLE events_p20260101 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
             CREATE TABLE events_p20261301 PARTITION OF events FOR VALUES FROM ('2026-01-02') TO ('2026-01-03');
             CREATE TABLE events_jan PARTITION OF events FOR VALUES FROM ('2026-01-03') TO ('2026-01-04');
             CREATE TABLE events_other PARTITION OF events DEFAULT;",
            expect_test::expect![[r#"
                error[naming-partition]: partition `events_p20261301` of `events` is not named `events_pYYYYMMDD`
                  --> 202601010000_a.up.sql:4:14
                   |
                 4 |              CREATE TABLE events_p20261301 PARTITION OF events FOR VALUES FROM ('2026-01-02') TO ('2026-01-03');
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: daily partitions are named after the UTC day they hold; `dbops partitions ensure` creates them
                error[naming-partition]: partition `events_jan` of `events` is not named `events_pYYYYMMDD`
                  --> 202601010000_a.up.sql:5:14
                   |
                 5 |              CREATE TABLE events_jan PARTITION OF events FOR VALUES FROM ('2026-01-03') TO ('2026-01-04');
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: daily partitions are named after the UTC day they hold; `dbops partitions ensure` creates them
                error[naming-partition]: partition `events_other` of `events` is not named `events_default`
                  --> 202601010000_a.up.sql:6:14
                   |
                 6 |              CREATE TABLE events_other PARTITION OF events DEFAULT;
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: daily partitions are named after the UTC day they hold; `dbops partitions ensure` creates them
            "#]],
        );
    }
}
