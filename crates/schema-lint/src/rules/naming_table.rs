//! `naming-table`: table names are plural (`api_keys`), or end with an allowed singular suffix (`audit_log`).

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct NamingTable;

static INFO: RuleInfo = RuleInfo {
    id: "naming-table",
    family: Family::Naming,
    severity: Severity::Error,
    summary: "Table names are plural nouns (`api_keys`); append-only logs may be `<thing>_log`.",
};

impl Rule for NamingTable {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            let plural = table.name.ends_with('s');
            let allowed_singular = view
                .config
                .singular_table_suffixes
                .iter()
                .any(|s| table.name.ends_with(s.as_str()));
            if !plural && !allowed_singular {
                out.report(&INFO, view.table_at(table), format!("table name `{}` is not plural", table.name)).help(format!(
                    "name tables after what a row is, in the plural (`{}s`); only {} may be singular",
                    table.name,
                    view.config.singular_table_suffixes.iter().map(|s| format!("`*{s}`")).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn plural_tables() {
        check(
            "naming-table",
            "CREATE TABLE users (id bigint); CREATE TABLE audit_log (id bigint); CREATE TABLE invoice (id bigint);",
            expect_test::expect![[r#"
                error[naming-table]: table name `invoice` is not plural
                  --> 202601010000_a.up.sql:1:69
                   |
                 1 | CREATE TABLE users (id bigint); CREATE TABLE audit_log (id bigint); CREATE TABLE invoice (id bigint);
                   |                                                                     ^^^^^^^^^^^^^^^^^^^^
                   = help: name tables after what a row is, in the plural (`invoices`); only `*_log` may be singular
            "#]],
        );
    }
}
