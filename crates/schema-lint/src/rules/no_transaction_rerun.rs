//! `no-transaction-rerun`: in a `-- dbops:no-transaction` migration, statements that create or
//! drop something say `IF NOT EXISTS` / `IF EXISTS`, so that running one again is safe.
//!
//! Such a migration runs statement by statement with nothing to roll back. When it stops part
//! way (a lost connection, a lock wait that gave up, a process that died), the statement it was
//! running may have finished on the server anyway, and resuming it (`repair --action rerun`, or
//! the engine after a reconnect) runs that statement again. An index or table that already exists
//! then fails the migration a second time.

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

use crate::model::FileSpan;
use crate::rules::{At, Family, Findings, MigrationSet, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct NoTransactionRerun;

static INFO: RuleInfo = RuleInfo {
    id: "no-transaction-rerun",
    family: Family::MigrationHygiene,
    severity: Severity::Warning,
    summary: "In a `-- dbops:no-transaction` migration, CREATE and DROP say IF NOT EXISTS / IF EXISTS, so a resumed run can repeat them.",
};

impl Rule for NoTransactionRerun {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        for (file, source) in set.sources.iter().enumerate() {
            if source.runs_in_transaction() {
                continue;
            }
            for stmt in source.parse.tree().stmts() {
                let Some(what) = not_repeatable(&stmt) else {
                    continue;
                };
                let range = stmt.syntax().text_range();
                out.report(
                    &INFO,
                    At::Span(FileSpan {
                        file,
                        start: range.start().into(),
                        end: range.end().into(),
                    }),
                    format!("{what} fails when run again, and a resumed no-transaction migration may run it again"),
                )
                .help(match what {
                    "DROP INDEX" | "DROP TABLE" | "DROP COLUMN" => "add IF EXISTS",
                    _ => "add IF NOT EXISTS",
                });
            }
        }
    }
}

/// What a statement creates or drops without the clause that makes repeating it safe.
fn not_repeatable(stmt: &ast::Stmt) -> Option<&'static str> {
    let guarded = |node: &SyntaxNode| {
        node.children().any(|child| {
            matches!(
                child.kind(),
                SyntaxKind::IF_EXISTS | SyntaxKind::IF_NOT_EXISTS
            )
        })
    };
    let syntax = stmt.syntax();
    match stmt {
        ast::Stmt::CreateIndex(_) if !guarded(syntax) => Some("CREATE INDEX"),
        ast::Stmt::DropIndex(_) if !guarded(syntax) => Some("DROP INDEX"),
        ast::Stmt::CreateTable(_) if !guarded(syntax) => Some("CREATE TABLE"),
        ast::Stmt::DropTable(_) if !guarded(syntax) => Some("DROP TABLE"),
        ast::Stmt::AlterTable(_) => syntax.descendants().find_map(|node| match node.kind() {
            SyntaxKind::ADD_COLUMN if !guarded(&node) => Some("ADD COLUMN"),
            SyntaxKind::DROP_COLUMN if !guarded(&node) => Some("DROP COLUMN"),
            _ => None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn statements_a_resumed_run_may_repeat_are_guarded() {
        check(
            "no-transaction-rerun",
            "-- dbops:no-transaction
CREATE INDEX CONCURRENTLY usage_events_org_idx ON usage_events (organization_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS usage_events_key_idx ON usage_events (api_key_id);
DROP INDEX CONCURRENTLY usage_events_old_idx;
DROP INDEX CONCURRENTLY IF EXISTS usage_events_older_idx;
ALTER TABLE usage_events ADD COLUMN region text;
ALTER TABLE usage_events ADD COLUMN IF NOT EXISTS zone text;",
            expect_test::expect![[r#"
                warning[no-transaction-rerun]: CREATE INDEX fails when run again, and a resumed no-transaction migration may run it again
                  --> 202601010000_a.up.sql:2:1
                   |
                 2 | CREATE INDEX CONCURRENTLY usage_events_org_idx ON usage_events (organization_id);
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add IF NOT EXISTS
                warning[no-transaction-rerun]: DROP INDEX fails when run again, and a resumed no-transaction migration may run it again
                  --> 202601010000_a.up.sql:4:1
                   |
                 4 | DROP INDEX CONCURRENTLY usage_events_old_idx;
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add IF EXISTS
                warning[no-transaction-rerun]: ADD COLUMN fails when run again, and a resumed no-transaction migration may run it again
                  --> 202601010000_a.up.sql:6:1
                   |
                 6 | ALTER TABLE usage_events ADD COLUMN region text;
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add IF NOT EXISTS
            "#]],
        );
        // A large table's move in a no-transaction migration, as real
        // histories write it: the guarded statements pass, the others do not.
        check(
            "no-transaction-rerun",
            "-- dbops:no-transaction
CREATE TABLE IF NOT EXISTS usage_events_archive (LIKE usage_events INCLUDING ALL);
CREATE TABLE usage_events_staging (LIKE usage_events INCLUDING ALL);
DROP TABLE IF EXISTS usage_events_old;
DROP TABLE usage_events_tmp;
ALTER TABLE usage_events DROP COLUMN IF EXISTS legacy_region;
ALTER TABLE usage_events DROP COLUMN legacy_zone;",
            expect_test::expect![[r#"
                warning[no-transaction-rerun]: CREATE TABLE fails when run again, and a resumed no-transaction migration may run it again
                  --> 202601010000_a.up.sql:3:1
                   |
                 3 | CREATE TABLE usage_events_staging (LIKE usage_events INCLUDING ALL);
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add IF NOT EXISTS
                warning[no-transaction-rerun]: DROP TABLE fails when run again, and a resumed no-transaction migration may run it again
                  --> 202601010000_a.up.sql:5:1
                   |
                 5 | DROP TABLE usage_events_tmp;
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add IF EXISTS
                warning[no-transaction-rerun]: DROP COLUMN fails when run again, and a resumed no-transaction migration may run it again
                  --> 202601010000_a.up.sql:7:1
                   |
                 7 | ALTER TABLE usage_events DROP COLUMN legacy_zone;
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add IF EXISTS
            "#]],
        );
        // In a transaction, everything is rolled back together: no finding.
        check(
            "no-transaction-rerun",
            "CREATE INDEX usage_events_org_idx ON usage_events (organization_id);",
            expect_test::expect![[""]],
        );
    }
}
