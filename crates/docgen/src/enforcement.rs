//! Whether every foreign key is really enforced: validated, its triggers enabled, and no existing row violating it.
//!
//! A key added `NOT VALID` and never validated, or one whose triggers were
//! disabled (`ALTER TABLE ... DISABLE TRIGGER ALL`, common in bulk loads),
//! still shows in `\d` but does not protect the data. The last check is an
//! anti-join per key: rows whose referencing columns are set (all of them,
//! for `MATCH SIMPLE`) but match no referenced row. The queries are
//! pipelined on the one connection.

use catalog::model::{Constraint, ForeignKey, Schema, Table};
use futures_util::future::try_join_all;
use tokio_postgres::Client;
use tracing::instrument;

use crate::Error;
use crate::finding::{Finding, FindingKind};

/// Checks every foreign key of `schema` against the database.
#[instrument(skip_all)]
pub async fn check_foreign_keys(client: &Client, schema: &Schema) -> Result<Vec<Finding>, Error> {
    let mut findings = Vec::new();
    let keys: Vec<_> = schema.foreign_keys().collect();
    for (table, constraint, fk) in &keys {
        let subject = subject(table, constraint);
        if !constraint.validated {
            findings.push(Finding::new(
                FindingKind::ForeignKeyNotValidated,
                &subject,
                format!(
                    "NOT VALID: rows that existed when it was added were never checked \
                     (ALTER TABLE {} VALIDATE CONSTRAINT {})",
                    qualified(&table.schema, &table.name),
                    quote(&constraint.name)
                ),
            ));
        }
        if !fk.triggers_enabled {
            findings.push(Finding::new(
                FindingKind::ForeignKeyTriggersDisabled,
                &subject,
                format!(
                    "a trigger enforcing it is disabled, so new rows are not checked \
                     (ALTER TABLE ... ENABLE TRIGGER ALL on `{}` or `{}`, or a partition of them)",
                    table.display_name(),
                    fk.referenced_display_name()
                ),
            ));
        }
    }
    let counts = try_join_all(keys.iter().map(|(table, constraint, fk)| async move {
        let sql = violations_query(table, constraint, fk);
        let row = client
            .query_one(&sql, &[])
            .await
            .map_err(|source| Error::ForeignKeyCheck {
                constraint: format!("{}.{}", table.display_name(), constraint.name),
                source,
            })?;
        Ok::<i64, Error>(row.get(0))
    }))
    .await?;
    for ((table, constraint, fk), count) in keys.iter().zip(counts) {
        if count > 0 {
            findings.push(Finding::new(
                FindingKind::ForeignKeyViolated,
                subject(table, constraint),
                format!(
                    "{count} row(s) of `{}` reference no row of `{}`",
                    table.display_name(),
                    fk.referenced_display_name()
                ),
            ));
        }
    }
    Ok(findings)
}

fn subject(table: &Table, constraint: &Constraint) -> String {
    format!("foreign key `{}.{}`", table.display_name(), constraint.name)
}

/// Counts the rows of the referencing table that violate the key.
fn violations_query(table: &Table, constraint: &Constraint, fk: &ForeignKey) -> String {
    let column = |alias: &str, name: &str| format!("{alias}.{}", quote(name));
    let all_set = constraint
        .columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", column("c", c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let matches = constraint
        .columns
        .iter()
        .zip(&fk.referenced_columns)
        .map(|(c, p)| format!("{} = {}", column("p", p), column("c", c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut condition = format!(
        "({all_set} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {matches}))",
        qualified(&fk.referenced_schema, &fk.referenced_table)
    );
    if fk.match_full && constraint.columns.len() > 1 {
        // MATCH FULL also forbids a key that is only partly NULL.
        let any_set = constraint
            .columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", column("c", c)))
            .collect::<Vec<_>>()
            .join(" OR ");
        condition = format!("{condition} OR (NOT ({all_set}) AND ({any_set}))");
    }
    format!(
        "SELECT count(*) FROM {} AS c WHERE {condition}",
        qualified(&table.schema, &table.name)
    )
}

fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote(schema), quote(name))
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}
