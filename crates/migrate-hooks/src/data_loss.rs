//! What a script destroys: dropped tables, schemas and columns, truncated and
//! deleted rows. Used to warn before a rollback runs, naming each table.

use std::fmt;

use squawk_syntax::ast::AstNode;
use squawk_syntax::{SyntaxKind, SyntaxNode};

/// One statement that loses data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataLoss {
    /// `DROP TABLE`: the table and its rows.
    DropTable(String),
    /// `DROP SCHEMA`: everything in it.
    DropSchema(String),
    /// `ALTER TABLE ... DROP COLUMN`: the column's values.
    DropColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// `TRUNCATE`: every row.
    Truncate(String),
    /// `DELETE`: some or all rows.
    Delete(String),
}

impl fmt::Display for DataLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataLoss::DropTable(table) => write!(f, "drops table {table} and its rows"),
            DataLoss::DropSchema(schema) => write!(f, "drops schema {schema} and everything in it"),
            DataLoss::DropColumn { table, column } => {
                write!(f, "drops column {table}.{column} and its values")
            }
            DataLoss::Truncate(table) => write!(f, "truncates table {table}"),
            DataLoss::Delete(table) => write!(f, "deletes rows from table {table}"),
        }
    }
}

/// Every data-losing statement of a script, in order, read with squawk's parser.
pub fn destructive_statements(sql: &str) -> Vec<DataLoss> {
    let parse = squawk_syntax::SourceFile::parse(sql);
    let mut losses = Vec::new();
    for node in parse.tree().syntax().descendants() {
        match node.kind() {
            SyntaxKind::DROP_TABLE => {
                losses.extend(names(&node, SyntaxKind::TABLE_NAME_REF).map(DataLoss::DropTable));
            }
            SyntaxKind::DROP_SCHEMA => {
                losses.extend(names(&node, SyntaxKind::SCHEMA_REF).map(DataLoss::DropSchema));
            }
            SyntaxKind::TRUNCATE => {
                losses.extend(
                    node.descendants()
                        .filter(|n| n.kind() == SyntaxKind::TABLE_NAME_REF)
                        .map(|n| DataLoss::Truncate(n.text().to_string().trim().to_string())),
                );
            }
            SyntaxKind::DELETE => {
                if let Some(table) = names(&node, SyntaxKind::RELATION_NAME).next() {
                    losses.push(DataLoss::Delete(table));
                }
            }
            SyntaxKind::DROP_COLUMN => {
                let table = node
                    .ancestors()
                    .find(|a| a.kind() == SyntaxKind::ALTER_TABLE)
                    .and_then(|alter| names(&alter, SyntaxKind::TABLE_RELATION_NAME).next());
                let column = names(&node, SyntaxKind::COLUMN_NAME_REF).next();
                if let (Some(table), Some(column)) = (table, column) {
                    losses.push(DataLoss::DropColumn { table, column });
                }
            }
            _ => {}
        }
    }
    losses
}

/// The text of the direct children of `kind` under `node`, trimmed.
fn names(node: &SyntaxNode, kind: SyntaxKind) -> impl Iterator<Item = String> + '_ {
    node.children()
        .filter(move |child| child.kind() == kind)
        .map(|child| child.text().to_string().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, expected: &[&str]) {
        let got: Vec<String> = destructive_statements(sql)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, expected, "{sql}");
    }

    #[test]
    fn names_what_is_lost() {
        check(
            "DROP TABLE IF EXISTS usage_events, budgets CASCADE;",
            &[
                "drops table usage_events and its rows",
                "drops table budgets and its rows",
            ],
        );
        check(
            "ALTER TABLE public.users DROP COLUMN nickname;",
            &["drops column public.users.nickname and its values"],
        );
        check(
            "TRUNCATE audit_staging;",
            &["truncates table audit_staging"],
        );
        check(
            "DELETE FROM models WHERE provider = 'x';",
            &["deletes rows from table models"],
        );
        check(
            "DROP SCHEMA reporting CASCADE;",
            &["drops schema reporting and everything in it"],
        );
        check(
            "DROP INDEX CONCURRENTLY users_email_idx; ALTER TABLE users ADD COLUMN x text;",
            &[],
        );
    }
}
