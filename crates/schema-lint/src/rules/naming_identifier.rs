//! `naming-identifier`: table, column, constraint and index names are lowercase snake_case (`^[a-z][a-z0-9_]*$`).

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct NamingIdentifier;

static INFO: RuleInfo = RuleInfo {
    id: "naming-identifier",
    family: Family::Naming,
    severity: Severity::Error,
    summary: "Identifiers are lowercase snake_case and never need quoting.",
};

pub(crate) fn is_snake_case(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Rule for NamingIdentifier {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        let help = "use lowercase letters, digits and underscores, starting with a letter";
        for table in view.tables() {
            if !is_snake_case(&table.name) {
                out.report(
                    &INFO,
                    view.table_at(table),
                    format!("table name `{}` is not snake_case", table.name),
                )
                .help(help);
            }
            for column in table.columns.iter().filter(|c| !is_snake_case(&c.name)) {
                out.report(
                    &INFO,
                    view.column_at(table, &column.name),
                    format!(
                        "column name `{}.{}` is not snake_case",
                        table.name, column.name
                    ),
                )
                .help(help);
            }
            for constraint in table.constraints.iter().filter(|c| !is_snake_case(&c.name)) {
                out.report(
                    &INFO,
                    view.constraint_at(table, constraint),
                    format!("constraint name `{}` is not snake_case", constraint.name),
                )
                .help(help);
            }
            for index in table
                .indexes
                .iter()
                .filter(|i| i.constraint.is_none() && !is_snake_case(&i.name))
            {
                out.report(
                    &INFO,
                    view.index_at(table, index),
                    format!("index name `{}` is not snake_case", index.name),
                )
                .help(help);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn identifiers() {
        check(
            "naming-identifier",
            r#"CREATE TABLE "Accounts" (id bigint, "displayName" text, CONSTRAINT "Accounts_pkey" PRIMARY KEY (id));
               CREATE TABLE users (id bigint, display_name text);"#,
            expect_test::expect![[r#"
                error[naming-identifier]: table name `Accounts` is not snake_case
                  --> 202601010000_a.up.sql:1:1
                   |
                 1 | CREATE TABLE "Accounts" (id bigint, "displayName" text, CONSTRAINT "Accounts_pkey" PRIMARY KEY (id));
                   | ^^^^^^^^^^^^^^^^^^^^^^^
                   = help: use lowercase letters, digits and underscores, starting with a letter
                error[naming-identifier]: column name `Accounts.displayName` is not snake_case
                  --> 202601010000_a.up.sql:1:37
                   |
                 1 | CREATE TABLE "Accounts" (id bigint, "displayName" text, CONSTRAINT "Accounts_pkey" PRIMARY KEY (id));
                   |                                     ^^^^^^^^^^^^^^^^^^
                   = help: use lowercase letters, digits and underscores, starting with a letter
                error[naming-identifier]: constraint name `Accounts_pkey` is not snake_case
                  --> 202601010000_a.up.sql:1:57
                   |
                 1 | CREATE TABLE "Accounts" (id bigint, "displayName" text, CONSTRAINT "Accounts_pkey" PRIMARY KEY (id));
                   |                                                         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: use lowercase letters, digits and underscores, starting with a letter
            "#]],
        );
    }
}
