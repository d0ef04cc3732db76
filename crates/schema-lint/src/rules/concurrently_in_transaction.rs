//! `concurrently-in-transaction`: `CONCURRENTLY` (index builds and drops, reindex, partition detach)
//! only in a migration that runs outside a transaction (`-- dbops:no-transaction` on its first line).
//!
//! squawk has this rule for `CREATE INDEX` in files of more than one
//! statement, since a lone statement run by psql is not in a transaction
//! block. Our migration engine runs every other migration in a transaction,
//! together with its history row, so a single statement fails as well; and
//! `DROP INDEX`, `REINDEX` and `DETACH PARTITION ... CONCURRENTLY` fail the same way.

use migrate_core::source::NO_TRANSACTION_DIRECTIVE;
use squawk_syntax::SyntaxKind;
use squawk_syntax::ast::AstNode;

use crate::model::FileSpan;
use crate::rules::{At, Family, Findings, MigrationSet, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct ConcurrentlyInTransaction;

static INFO: RuleInfo = RuleInfo {
    id: "concurrently-in-transaction",
    family: Family::LockSafety,
    severity: Severity::Error,
    summary: "CONCURRENTLY runs in a `-- dbops:no-transaction` migration.",
};

impl Rule for ConcurrentlyInTransaction {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        for (file, source) in set.forward().filter(|(_, s)| s.runs_in_transaction()) {
            for stmt in source.parse.tree().stmts() {
                let concurrently = stmt
                    .syntax()
                    .descendants_with_tokens()
                    .filter_map(|e| e.into_token())
                    .find(|t| t.kind() == SyntaxKind::CONCURRENTLY_KW);
                let Some(token) = concurrently else { continue };
                let range = token.text_range();
                let span = FileSpan {
                    file,
                    start: range.start().into(),
                    end: range.end().into(),
                };
                out.report(
                    &INFO,
                    At::Span(span),
                    "CONCURRENTLY cannot run inside a transaction, and this migration runs in one",
                )
                .help(format!(
                    "put the statement in a migration of its own whose first line is `{NO_TRANSACTION_DIRECTIVE}`"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn concurrently_needs_no_transaction() {
        check(
            "concurrently-in-transaction",
            "CREATE INDEX CONCURRENTLY t_x_idx ON t (x);\nALTER TABLE events DETACH PARTITION events_p20250101 CONCURRENTLY;",
            expect_test::expect![[r#"
                error[concurrently-in-transaction]: CONCURRENTLY cannot run inside a transaction, and this migration runs in one
                  --> 202601010000_a.up.sql:1:14
                   |
                 1 | CREATE INDEX CONCURRENTLY t_x_idx ON t (x);
                   |              ^^^^^^^^^^^^
                   = help: put the statement in a migration of its own whose first line is `-- dbops:no-transaction`
                error[concurrently-in-transaction]: CONCURRENTLY cannot run inside a transaction, and this migration runs in one
                  --> 202601010000_a.up.sql:2:54
                   |
                 2 | ALTER TABLE events DETACH PARTITION events_p20250101 CONCURRENTLY;
                   |                                                      ^^^^^^^^^^^^
                   = help: put the statement in a migration of its own whose first line is `-- dbops:no-transaction`
            "#]],
        );
        check(
            "concurrently-in-transaction",
            "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY t_x_idx ON t (x);\nDROP INDEX CONCURRENTLY t_y_idx;",
            expect_test::expect![""],
        );
    }
}
