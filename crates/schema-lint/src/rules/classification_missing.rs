//! `classification-missing`: every column is in `configs/data-classification.toml` (and, live, the map names no missing column).

use catalog::classification::ClassificationGap;

use crate::rules::{At, Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct ClassificationMissing;

static INFO: RuleInfo = RuleInfo {
    id: "classification-missing",
    family: Family::SensitiveFields,
    severity: Severity::Error,
    summary: "Every column is classified in configs/data-classification.toml, and the map lists only columns that exist.",
};

impl Rule for ClassificationMissing {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        let live = view.origins.is_none();
        let map = view.config.classification.as_ref();
        let mut reported_tables: Vec<&str> = Vec::new();
        for gap in view.classification_gaps {
            match gap {
                ClassificationGap::UnclassifiedColumn { table, column } => {
                    let Some(t) = view.schema.table(table) else {
                        continue;
                    };
                    if view.config.ignored_schemas.contains(&t.schema) {
                        continue;
                    }
                    // A table missing from the map altogether is one finding, not one per column.
                    if map.is_some_and(|m| !m.tables.contains_key(table)) {
                        if !reported_tables.contains(&table.as_str()) {
                            reported_tables.push(table);
                            out.report(
                                &INFO,
                                view.table_at(t),
                                format!("table `{table}` ({} columns) is not in the data-classification map", t.columns.len()),
                            )
                            .help(format!("add [tables.\"{table}\"] with a retention and a [tables.\"{table}\".columns] entry per column"));
                        }
                        continue;
                    }
                    out.report(&INFO, view.column_at(t, column), gap.to_string()).help(format!(
                        "add `{column} = {{ class = \"...\", protection = \"...\" }}` under [tables.{table}.columns]"
                    ));
                }
                // Files may be a subset of the schema (one new migration); only the live schema is complete.
                ClassificationGap::UnknownTable { table } if live => {
                    out.report(&INFO, At::Object(format!("table {table}")), gap.to_string())
                        .help("remove the entry, or apply the migration that creates the table");
                }
                ClassificationGap::UnknownColumn { table, column } if live => {
                    out.report(
                        &INFO,
                        At::Object(format!("column {table}.{column}")),
                        gap.to_string(),
                    )
                    .help("remove the entry, or apply the migration that creates the column");
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::{
        LiveExtras, check_files_with, check_live_with, config_with_classification,
    };

    const MAP: &str = r#"
[tables.users]
retention = "forever"
[tables.users.columns]
id = { class = "internal", protection = "none" }
nickname = { class = "pii", protection = "none", retention = "30d" }
[tables.gone]
retention = "forever"
"#;

    #[test]
    fn unclassified_columns() {
        let config = config_with_classification(MAP);
        let sql = "CREATE TABLE users (id bigint, email text);\nCREATE TABLE teams (id bigint, name text);";
        check_files_with(
            &config,
            "classification-missing",
            &[("202601010000_a.up.sql", sql)],
            expect_test::expect![[r#"
                error[classification-missing]: column `users.email` is not in the data-classification map
                  --> 202601010000_a.up.sql:1:32
                   |
                 1 | CREATE TABLE users (id bigint, email text);
                   |                                ^^^^^^^^^^
                   = help: add `email = { class = "...", protection = "..." }` under [tables.users.columns]
                error[classification-missing]: table `teams` (2 columns) is not in the data-classification map
                  --> 202601010000_a.up.sql:2:1
                   |
                 2 | CREATE TABLE teams (id bigint, name text);
                   | ^^^^^^^^^^^^^^^^^^
                   = help: add [tables."teams"] with a retention and a [tables."teams".columns] entry per column
            "#]],
        );
        check_live_with(
            &config,
            "classification-missing",
            sql,
            LiveExtras::default(),
            expect_test::expect![[r#"
            error[classification-missing]: column `users.email` is not in the data-classification map
              --> live database: column users.email
               = help: add `email = { class = "...", protection = "..." }` under [tables.users.columns]
            error[classification-missing]: column `users.nickname` is in the data-classification map but not in the database
              --> live database: column users.nickname
               = help: remove the entry, or apply the migration that creates the column
            error[classification-missing]: table `gone` is in the data-classification map but not in the database
              --> live database: table gone
               = help: remove the entry, or apply the migration that creates the table
            error[classification-missing]: table `teams` (2 columns) is not in the data-classification map
              --> live database: table teams
               = help: add [tables."teams"] with a retention and a [tables."teams".columns] entry per column
        "#]],
        );
    }
}
