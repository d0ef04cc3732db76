//! `naming-index`: unique indexes are `<table>_<cols>_key`, other indexes `<table>_<cols>_idx`, named explicitly.

use crate::model::ObjectKey;
use crate::rules::naming_constraint::expected_name;
use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::syntax::{parse_expression, referenced_names};
use crate::violation::Severity;

pub(crate) struct NamingIndex;

static INFO: RuleInfo = RuleInfo {
    id: "naming-index",
    family: Family::Naming,
    severity: Severity::Error,
    summary: "Indexes are named explicitly: `<table>_<cols>_key` when unique, `<table>_<cols>_idx` otherwise.",
};

/// The columns of an index's keys, an expression key contributing the columns it uses (`lower(email)` gives `email`).
pub(crate) fn key_columns(table: &catalog::model::Table, keys: &[String]) -> Vec<String> {
    keys.iter()
        .flat_map(|key| match table.column(key) {
            Some(_) => vec![key.clone()],
            None => referenced_names(&parse_expression(key))
                .into_iter()
                .filter(|n| table.column(n).is_some())
                .collect(),
        })
        .collect()
}

impl Rule for NamingIndex {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for index in table.indexes.iter().filter(|i| i.constraint.is_none()) {
                let suffix = if index.unique { "key" } else { "idx" };
                let columns = key_columns(table, &index.columns);
                let unnamed =
                    view.is_unnamed(&ObjectKey::Index(table.display_name(), index.name.clone()));
                let expected = expected_name(&table.name, &index.name, &columns, suffix, false);
                let message = match (unnamed, &expected) {
                    (true, _) => format!(
                        "index on `{}` ({}) has no name",
                        table.name,
                        index.columns.join(", ")
                    ),
                    (false, Some(expected)) => {
                        format!("index `{}` is not named `{expected}`", index.name)
                    }
                    (false, None) => continue,
                };
                let expected = expected.unwrap_or_else(|| index.name.clone());
                out.report(&INFO, view.index_at(table, index), message)
                    .help(format!(
                        "write `CREATE {}INDEX {expected} ...`",
                        if index.unique { "UNIQUE " } else { "" }
                    ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn index_names() {
        check(
            "naming-index",
            "CREATE TABLE users (id bigint, organization_id bigint, email text, created_at timestamptz);
             CREATE UNIQUE INDEX users_organization_id_email_key ON users (organization_id, lower(email));
             CREATE INDEX users_created_at_idx ON users (created_at) WHERE email IS NOT NULL;
             CREATE INDEX users_by_email ON users (email);
             CREATE UNIQUE INDEX users_email_idx ON users (email);
             CREATE INDEX ON users (organization_id);",
            expect_test::expect![[r#"
                error[naming-index]: index `users_by_email` is not named `users_email_idx`
                  --> 202601010000_a.up.sql:4:14
                   |
                 4 |              CREATE INDEX users_by_email ON users (email);
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: write `CREATE INDEX users_email_idx ...`
                error[naming-index]: index `users_email_idx` is not named `users_email_key`
                  --> 202601010000_a.up.sql:5:14
                   |
                 5 |              CREATE UNIQUE INDEX users_email_idx ON users (email);
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: write `CREATE UNIQUE INDEX users_email_key ...`
                error[naming-index]: index on `users` (organization_id) has no name
                  --> 202601010000_a.up.sql:6:14
                   |
                 6 |              CREATE INDEX ON users (organization_id);
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: write `CREATE INDEX users_organization_id_idx ...`
            "#]],
        );
    }
}
