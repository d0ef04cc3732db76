//! `naming-timestamp-column`: `timestamptz` columns are named `*_at`, and `*_at` columns are `timestamptz`.

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct NamingTimestampColumn;

static INFO: RuleInfo = RuleInfo {
    id: "naming-timestamp-column",
    family: Family::Naming,
    severity: Severity::Error,
    summary: "Instants are `timestamptz` columns named `*_at`.",
};

const TIMESTAMPTZ: &str = "timestamp with time zone";

impl Rule for NamingTimestampColumn {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for column in &table.columns {
                let is_instant = column.data_type == TIMESTAMPTZ;
                let named_instant = column.name.ends_with("_at");
                let message = match (is_instant, named_instant) {
                    (true, false) => format!(
                        "timestamptz column `{}.{}` is not named `*_at`",
                        table.name, column.name
                    ),
                    (false, true) => format!(
                        "column `{}.{}` is named like an instant but is `{}`",
                        table.name, column.name, column.data_type
                    ),
                    _ => continue,
                };
                out.report(&INFO, view.column_at(table, &column.name), message)
                    .help("instants are `timestamptz` named `*_at` (`created_at`); calendar days are `date` named `*_on`");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn instants() {
        check(
            "naming-timestamp-column",
            "CREATE TABLE users (created_at timestamptz, updated timestamptz, deleted_at date, seen_at timestamp with time zone);",
            expect_test::expect![[r#"
                error[naming-timestamp-column]: timestamptz column `users.updated` is not named `*_at`
                  --> 202601010000_a.up.sql:1:45
                   |
                 1 | CREATE TABLE users (created_at timestamptz, updated timestamptz, deleted_at date, seen_at timestamp with time zone);
                   |                                             ^^^^^^^^^^^^^^^^^^^
                   = help: instants are `timestamptz` named `*_at` (`created_at`); calendar days are `date` named `*_on`
                error[naming-timestamp-column]: column `users.deleted_at` is named like an instant but is `date`
                  --> 202601010000_a.up.sql:1:66
                   |
                 1 | CREATE TABLE users (created_at timestamptz, updated timestamptz, deleted_at date, seen_at timestamp with time zone);
                   |                                                                  ^^^^^^^^^^^^^^^
                   = help: instants are `timestamptz` named `*_at` (`created_at`); calendar days are `date` named `*_on`
            "#]],
        );
    }
}
