//! `pii-retention`: every column classified pii has a finite retention.

use catalog::classification::{DataClass, Retention};

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct PiiRetention;

static INFO: RuleInfo = RuleInfo {
    id: "pii-retention",
    family: Family::SensitiveFields,
    severity: Severity::Error,
    summary: "Every pii column has a finite retention in configs/data-classification.toml.",
};

impl Rule for PiiRetention {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for column in &table.columns {
                let Some(class) = &column.classification else {
                    continue;
                };
                if class.class == DataClass::Pii && class.retention == Retention::Forever {
                    out.report(
                        &INFO,
                        view.column_at(table, &column.name),
                        format!("pii column `{}.{}` is kept forever", table.name, column.name),
                    )
                    .help(format!(
                        "give it a retention: `{} = {{ class = \"pii\", protection = \"...\", retention = \"730d\" }}`",
                        column.name
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::{check_files_with, config_with_classification};

    #[test]
    fn retention() {
        let config = config_with_classification(
            r#"
[tables.users]
retention = "forever"
[tables.users.columns]
email = { class = "pii", protection = "none", retention = "730d" }
phone = { class = "pii", protection = "none" }
role = { class = "internal", protection = "none" }
"#,
        );
        let sql = "CREATE TABLE users (email text, phone text, role text);";
        check_files_with(
            &config,
            "pii-retention",
            &[("202601010000_a.up.sql", sql)],
            expect_test::expect![[r#"
            error[pii-retention]: pii column `users.phone` is kept forever
              --> 202601010000_a.up.sql:1:33
               |
             1 | CREATE TABLE users (email text, phone text, role text);
               |                                 ^^^^^^^^^^
               = help: give it a retention: `phone = { class = "pii", protection = "...", retention = "730d" }`
        "#]],
        );
    }
}
