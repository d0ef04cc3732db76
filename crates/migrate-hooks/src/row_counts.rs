//! After a migration: how many rows each existing touched table gained or lost.
//!
//! Tables estimated at no more than `exact_max_rows` rows are counted with
//! `count(*)` before and after; larger ones are estimated from the
//! statistics (`pg_stat_all_tables.n_live_tup` with the writes of the
//! migration's session not yet in it, else `pg_class.reltuples`), and the
//! finding says so. So is a table that another session holds or waits for
//! an `ACCESS EXCLUSIVE` lock on when the check looks (counting it would
//! queue behind that session), and one the migration's role may not read.
//! The method chosen before is used after too, so the two figures compare.
//! Writes of other sessions in between are counted as well: the figure is
//! what changed, not only what the migration did.
//!
//! Only scripts that can add or remove rows are counted ([`may_change_rows`]):
//! a script of schema changes alone (`ALTER TABLE` without partition
//! attachment, indexes, views, function definitions, comments, grants,
//! types) leaves every table's row count as it found it, and counting its
//! tables twice would only cost time.

use migrate_core::hooks::{Finding, Severity};
use squawk_syntax::ast::AstNode;
use squawk_syntax::{SourceFile, SyntaxKind};

use crate::catalog::{Counted, Recounted};

const NAME: &str = "row-counts";

/// One finding per table counted before: its rows now, or that it was dropped.
pub(crate) fn findings(before: &[Counted], after: &[Recounted]) -> Vec<Finding> {
    before
        .iter()
        .map(|before| {
            let now = after.iter().find(|after| after.oid == before.oid);
            match now {
                Some(Recounted {
                    table: Some(table),
                    rows: Some(rows),
                    ..
                }) => difference(before, table, *rows),
                _ => dropped(before),
            }
        })
        .collect()
}

/// Whether a parsed statement (or script) can change the number of rows of
/// a table it touches.
///
/// The answer is "no" only for statements known to change schema and not
/// rows; anything else (`INSERT`, `UPDATE` whose triggers may insert or
/// delete, `DELETE`, `TRUNCATE`, `MERGE`, `COPY`, `DROP`, a `SELECT`, `CALL`
/// or `DO` that runs functions, partitions attached, detached, merged or
/// split, a statement the parser did not recognise) may.
pub(crate) fn may_change_rows(tree: &SourceFile) -> bool {
    tree.syntax().children().any(|statement| {
        let schema_only = matches!(
            statement.kind(),
            SyntaxKind::ALTER_TABLE
                | SyntaxKind::CREATE_TABLE
                | SyntaxKind::CREATE_INDEX
                | SyntaxKind::DROP_INDEX
                | SyntaxKind::ALTER_INDEX
                | SyntaxKind::REINDEX
                | SyntaxKind::CREATE_VIEW
                | SyntaxKind::ALTER_VIEW
                | SyntaxKind::DROP_VIEW
                | SyntaxKind::CREATE_FUNCTION
                | SyntaxKind::CREATE_PROCEDURE
                | SyntaxKind::ALTER_FUNCTION
                | SyntaxKind::DROP_FUNCTION
                | SyntaxKind::CREATE_TRIGGER
                | SyntaxKind::ALTER_TRIGGER
                | SyntaxKind::DROP_TRIGGER
                | SyntaxKind::COMMENT_ON
                | SyntaxKind::GRANT
                | SyntaxKind::REVOKE
                | SyntaxKind::CREATE_TYPE
                | SyntaxKind::ALTER_TYPE
                | SyntaxKind::DROP_TYPE
                | SyntaxKind::CREATE_DOMAIN
                | SyntaxKind::ALTER_DOMAIN
                | SyntaxKind::CREATE_SEQUENCE
                | SyntaxKind::ALTER_SEQUENCE
                | SyntaxKind::CREATE_SCHEMA
                | SyntaxKind::CREATE_POLICY
                | SyntaxKind::ALTER_POLICY
                | SyntaxKind::DROP_POLICY
                | SyntaxKind::CREATE_STATISTICS
                | SyntaxKind::ANALYZE
                | SyntaxKind::SET
                | SyntaxKind::RESET
                | SyntaxKind::LOCK
        ) && !statement.descendants().any(|node| {
            matches!(
                node.kind(),
                SyntaxKind::ATTACH_PARTITION
                    | SyntaxKind::DETACH_PARTITION
                    | SyntaxKind::MERGE_PARTITIONS
                    | SyntaxKind::ERROR
            )
        });
        !schema_only && !statement.kind().is_trivia()
    })
}

fn method(exact: bool) -> &'static str {
    if exact {
        "exact count"
    } else {
        "estimated from statistics"
    }
}

fn difference(before: &Counted, table: &str, after: i64) -> Finding {
    let change = after - before.rows;
    let severity = if change < 0 {
        Severity::Warning
    } else {
        Severity::Info
    };
    let change_text = match change {
        0 => "unchanged".to_string(),
        c if c > 0 => format!("+{c}"),
        c => c.to_string(),
    };
    Finding {
        hook: NAME.to_string(),
        severity,
        message: format!(
            "{table}: {} → {after} rows ({change_text}, {})",
            before.rows,
            method(before.exact)
        ),
        data: serde_json::json!({
            "table": table,
            "before": before.rows,
            "after": after,
            "difference": change,
            "exact": before.exact,
        }),
    }
}

fn dropped(before: &Counted) -> Finding {
    Finding {
        hook: NAME.to_string(),
        severity: if before.rows > 0 {
            Severity::Warning
        } else {
            Severity::Info
        },
        message: format!(
            "{}: dropped with {} rows ({})",
            before.table,
            before.rows,
            method(before.exact)
        ),
        data: serde_json::json!({
            "table": before.table,
            "before": before.rows,
            "after": null,
            "difference": -before.rows,
            "exact": before.exact,
            "dropped": true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::may_change_rows;

    fn changes(sql: &str) -> bool {
        may_change_rows(&squawk_syntax::SourceFile::parse(sql).tree())
    }

    #[test]
    fn schema_changes_alone_leave_row_counts_alone() {
        for sql in [
            "ALTER TABLE users ADD COLUMN note text;",
            "ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 0, DROP COLUMN old;",
            "ALTER TABLE users ADD CONSTRAINT users_n_check CHECK (n > 0) NOT VALID;",
            "ALTER TABLE users VALIDATE CONSTRAINT users_n_check;",
            "ALTER TABLE users RENAME COLUMN a TO b; COMMENT ON TABLE users IS 'x';",
            "CREATE INDEX CONCURRENTLY users_n ON users (n);",
            "CREATE OR REPLACE VIEW active AS SELECT * FROM users WHERE n > 0;",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ DELETE FROM users RETURNING 1 $$;",
            "CREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION f();",
            "ALTER TYPE mood ADD VALUE 'ok'; GRANT SELECT ON users TO app;",
            "-- only a comment\n",
        ] {
            assert!(!changes(sql), "{sql}");
        }
    }

    #[test]
    fn statements_that_may_add_or_remove_rows_are_counted() {
        for sql in [
            "INSERT INTO users VALUES (1);",
            "ALTER TABLE users ADD COLUMN note text; DELETE FROM users WHERE id < 0;",
            "UPDATE users SET n = 1;",
            "TRUNCATE users;",
            "DROP TABLE users;",
            "COPY users FROM STDIN;",
            "SELECT purge_users();",
            "DO $$ BEGIN DELETE FROM users; END $$;",
            "CALL purge();",
            "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM (1) TO (2);",
            "ALTER TABLE events DETACH PARTITION events_2025;",
            "MERGE INTO users u USING src s ON u.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id);",
            "FROBNICATE users;",
        ] {
            assert!(changes(sql), "{sql}");
        }
    }
}
