//! `naming-constraint`: unique constraints are `<table>_<cols>_key`, check constraints `<table>_<cols>_check`,
//! and no constraint is left for PostgreSQL to name.

use catalog::model::{Constraint, ConstraintKind, Table};

use crate::model::ObjectKey;
use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::syntax::{parse_expression, referenced_names};
use crate::violation::Severity;

pub(crate) struct NamingConstraint;

static INFO: RuleInfo = RuleInfo {
    id: "naming-constraint",
    family: Family::Naming,
    severity: Severity::Error,
    summary: "Constraints are named explicitly: `<table>_<cols>_key` (unique), `<table>_<cols>_check` (check).",
};

/// PostgreSQL's limit on identifiers, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// Checks `name` against `<table>_<cols>_<suffix>`; returns the expected name when it does not match.
/// Names that would exceed 63 bytes may shorten the column part. For checks, any
/// leading run of the referenced columns is accepted (PostgreSQL's own default uses the first).
pub(crate) fn expected_name(
    table: &str,
    name: &str,
    columns: &[String],
    suffix: &str,
    prefixes_ok: bool,
) -> Option<String> {
    let full = format!("{table}_{}_{suffix}", columns.join("_"));
    if name == full {
        return None;
    }
    if full.len() > MAX_IDENTIFIER
        && name.starts_with(&format!("{table}_"))
        && name.ends_with(&format!("_{suffix}"))
    {
        return None;
    }
    if prefixes_ok
        && (1..columns.len())
            .any(|n| name == format!("{table}_{}_{suffix}", columns[..n].join("_")))
    {
        return None;
    }
    if columns.is_empty()
        && name.starts_with(&format!("{table}_"))
        && name.ends_with(&format!("_{suffix}"))
    {
        return None;
    }
    Some(full)
}

/// Reports a constraint (`what`: "unique constraint", "foreign key", ...) whose
/// name is missing or does not follow `<table>_<cols>_<suffix>`.
#[allow(clippy::too_many_arguments)] // One call per constraint kind; a struct would only rename them.
pub(crate) fn check_constraint_name(
    view: &SchemaView<'_>,
    out: &mut Findings,
    rule: &'static RuleInfo,
    table: &Table,
    constraint: &Constraint,
    columns: &[String],
    suffix: &str,
    what: &str,
) {
    let unnamed = view.is_unnamed(&ObjectKey::Constraint(
        table.display_name(),
        constraint.name.clone(),
    ));
    let mismatch = expected_name(
        &table.name,
        &constraint.name,
        columns,
        suffix,
        suffix == "check",
    );
    let message = match (&mismatch, unnamed) {
        (_, true) => format!(
            "{what} on `{}` ({}) has no name (PostgreSQL calls it `{}`)",
            table.name,
            constraint.columns.join(", "),
            constraint.name
        ),
        (Some(expected), false) => {
            format!("{what} `{}` is not named `{expected}`", constraint.name)
        }
        (None, false) => return,
    };
    let expected = mismatch.unwrap_or_else(|| constraint.name.clone());
    out.report(rule, view.constraint_at(table, constraint), message)
        .help(format!(
            "write `CONSTRAINT {expected} ...`: names are part of the schema's interface"
        ));
}

/// The table columns a check constraint refers to, in order of first appearance.
pub(crate) fn check_columns(table: &Table, constraint: &Constraint) -> Vec<String> {
    referenced_names(&parse_expression(&constraint.definition))
        .into_iter()
        .filter(|name| table.column(name).is_some())
        .collect()
}

impl Rule for NamingConstraint {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for constraint in &table.constraints {
                let (columns, suffix, what) = match constraint.kind {
                    ConstraintKind::Unique => {
                        (constraint.columns.clone(), "key", "unique constraint")
                    }
                    ConstraintKind::Check => (
                        check_columns(table, constraint),
                        "check",
                        "check constraint",
                    ),
                    ConstraintKind::Exclusion => {
                        (constraint.columns.clone(), "excl", "exclusion constraint")
                    }
                    ConstraintKind::PrimaryKey | ConstraintKind::ForeignKey(_) => continue,
                };
                check_constraint_name(view, out, &INFO, table, constraint, &columns, suffix, what);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn constraint_names() {
        check(
            "naming-constraint",
            "CREATE TABLE budgets (
                 user_id bigint, api_key_id bigint, period text UNIQUE, created_at timestamptz, updated_at timestamptz,
                 CONSTRAINT budgets_user_id_api_key_id_check CHECK (num_nonnulls(user_id, api_key_id) <= 1),
                 CONSTRAINT budgets_updated_at_check CHECK (updated_at >= created_at),
                 CONSTRAINT budgets_period_ck CHECK (period IN ('daily')),
                 CONSTRAINT budgets_user_id_period_key UNIQUE (user_id, period),
                 CONSTRAINT budgets_uniq UNIQUE (api_key_id, period),
                 CHECK (api_key_id > 0));",
            expect_test::expect![[r#"
                error[naming-constraint]: unique constraint on `budgets` (period) has no name (PostgreSQL calls it `budgets_period_key`)
                  --> 202601010000_a.up.sql:2:65
                   |
                 1 | CREATE TABLE budgets (
                 2 |                  user_id bigint, api_key_id bigint, period text UNIQUE, created_at timestamptz, updated_at timestamptz,
                   |                                                                 ^^^^^^
                   = help: write `CONSTRAINT budgets_period_key ...`: names are part of the schema's interface
                error[naming-constraint]: check constraint `budgets_period_ck` is not named `budgets_period_check`
                  --> 202601010000_a.up.sql:5:18
                   |
                 1 | CREATE TABLE budgets (
                   | ...
                 5 |                  CONSTRAINT budgets_period_ck CHECK (period IN ('daily')),
                   |                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: write `CONSTRAINT budgets_period_check ...`: names are part of the schema's interface
                error[naming-constraint]: unique constraint `budgets_uniq` is not named `budgets_api_key_id_period_key`
                  --> 202601010000_a.up.sql:7:18
                   |
                 1 | CREATE TABLE budgets (
                   | ...
                 7 |                  CONSTRAINT budgets_uniq UNIQUE (api_key_id, period),
                   |                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: write `CONSTRAINT budgets_api_key_id_period_key ...`: names are part of the schema's interface
                error[naming-constraint]: check constraint on `budgets` (api_key_id) has no name (PostgreSQL calls it `budgets_api_key_id_check`)
                  --> 202601010000_a.up.sql:8:18
                   |
                 1 | CREATE TABLE budgets (
                   | ...
                 8 |                  CHECK (api_key_id > 0));
                   |                  ^^^^^^^^^^^^^^^^^^^^^^
                   = help: write `CONSTRAINT budgets_api_key_id_check ...`: names are part of the schema's interface
            "#]],
        );
    }
}
