//! `secret-hash-column`: a column classified secret with protection hash is `bytea`, named `*_hash`, with a length check.

use catalog::classification::{DataClass, Protection};
use catalog::model::ConstraintKind;

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::syntax::{columns_passed_to, parse_expression};
use crate::violation::Severity;

pub(crate) struct SecretHashColumn;

static INFO: RuleInfo = RuleInfo {
    id: "secret-hash-column",
    family: Family::SensitiveFields,
    severity: Severity::Error,
    summary: "A secret stored as a hash is a `bytea` column named `*_hash` with an `octet_length` check.",
};

impl Rule for SecretHashColumn {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for column in &table.columns {
                let Some(class) = &column.classification else {
                    continue;
                };
                if class.class != DataClass::Secret || class.protection != Protection::Hash {
                    continue;
                }
                let mut problems = Vec::new();
                if column.data_type != "bytea" {
                    problems.push(format!("is `{}`, not `bytea`", column.data_type));
                }
                if !column.name.ends_with("_hash") {
                    problems.push("is not named `*_hash`".to_owned());
                }
                let length_checked = table
                    .constraints
                    .iter()
                    .filter(|c| c.kind == ConstraintKind::Check)
                    .any(|c| {
                        columns_passed_to(
                            &parse_expression(&c.definition),
                            &["octet_length", "length"],
                        )
                        .contains(&column.name)
                    });
                if !length_checked {
                    problems.push("has no length check".to_owned());
                }
                if !problems.is_empty() {
                    out.report(
                        &INFO,
                        view.column_at(table, &column.name),
                        format!("secret digest `{}.{}` {}", table.name, column.name, problems.join(", ")),
                    )
                    .help(format!(
                        "store the keyed digest as `{0} bytea` with `CHECK (octet_length({0}) = 32)`",
                        if column.name.ends_with("_hash") { column.name.clone() } else { format!("{}_hash", column.name) }
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
    fn digests() {
        let config = config_with_classification(
            r#"
[tables.api_keys]
retention = "forever"
[tables.api_keys.columns]
key_hash = { class = "secret", protection = "hash" }
refresh_digest = { class = "secret", protection = "hash" }
pin_hash = { class = "secret", protection = "hash" }
"#,
        );
        let sql = "CREATE TABLE api_keys (
    key_hash bytea NOT NULL CONSTRAINT api_keys_key_hash_check CHECK (octet_length(key_hash) = 32),
    refresh_digest text,
    pin_hash bytea
);";
        check_files_with(
            &config,
            "secret-hash-column",
            &[("202601010000_a.up.sql", sql)],
            expect_test::expect![[r#"
            error[secret-hash-column]: secret digest `api_keys.refresh_digest` is `text`, not `bytea`, is not named `*_hash`, has no length check
              --> 202601010000_a.up.sql:3:5
               |
             1 | CREATE TABLE api_keys (
               | ...
             3 |     refresh_digest text,
               |     ^^^^^^^^^^^^^^^^^^^
               = help: store the keyed digest as `refresh_digest_hash bytea` with `CHECK (octet_length(refresh_digest_hash) = 32)`
            error[secret-hash-column]: secret digest `api_keys.pin_hash` has no length check
              --> 202601010000_a.up.sql:4:5
               |
             1 | CREATE TABLE api_keys (
               | ...
             4 |     pin_hash bytea
               |     ^^^^^^^^^^^^^^
               = help: store the keyed digest as `pin_hash bytea` with `CHECK (octet_length(pin_hash) = 32)`
        "#]],
        );
    }
}
