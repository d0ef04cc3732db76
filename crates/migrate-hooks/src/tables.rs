//! Which tables a migration touches, read from its SQL with squawk's parser.
//!
//! A table is *touched* when a statement changes it or locks it for writing:
//! the target of `ALTER TABLE`, `DROP TABLE`, `CREATE INDEX`, `INSERT`,
//! `UPDATE`, `DELETE`, `TRUNCATE`, `LOCK`, `CREATE TRIGGER` and the like, and
//! a table named by a `REFERENCES` clause (adding a foreign key locks the
//! referenced table too). Tables only read, in a `SELECT`, `FROM`, `USING`,
//! `WITH` or `LIKE` clause, are not touched. Tables the migration creates are
//! touched but not *existing*: nothing can be blocking them beforehand, and
//! they have no rows to compare.
//!
//! SQL hidden in strings (function bodies, `EXECUTE` in a `DO` block) is not
//! seen.

use std::collections::BTreeSet;
use std::fmt;

use squawk_syntax::ast::AstNode;
use squawk_syntax::{SyntaxKind, SyntaxNode, SyntaxToken};

/// A table name as written in the migration, folded as PostgreSQL folds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    /// The schema, when the name is qualified; otherwise `search_path` decides.
    pub schema: Option<String>,
    /// The table's name.
    pub name: String,
}

impl TableName {
    /// The name as SQL writes it, every part quoted: `"public"."users"`.
    pub(crate) fn quoted(&self) -> String {
        let quote = |part: &str| format!("\"{}\"", part.replace('"', "\"\""));
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.name)),
            None => quote(&self.name),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The tables one migration script touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Every touched table, created ones included.
    pub tables: BTreeSet<TableName>,
    /// The tables the script creates.
    pub created: BTreeSet<TableName>,
    /// The tables the script drops (`DROP TABLE`).
    pub dropped: BTreeSet<TableName>,
}

impl Touched {
    /// Reads the touched tables from a migration script.
    ///
    /// The parser recovers from syntax it does not know, so this never fails:
    /// a statement it cannot make sense of contributes what it could read.
    pub fn of_sql(sql: &str) -> Touched {
        Touched::of_tree(&squawk_syntax::SourceFile::parse(sql).tree())
    }

    /// Reads the touched tables from a parsed script.
    pub(crate) fn of_tree(tree: &squawk_syntax::SourceFile) -> Touched {
        let mut touched = Touched::default();
        for node in tree.syntax().descendants() {
            match node.kind() {
                SyntaxKind::CREATE_TABLE | SyntaxKind::CREATE_TABLE_AS => {
                    if let Some(name) = node
                        .children()
                        .find(|child| child.kind() == SyntaxKind::TABLE_NAME)
                        .and_then(|name| table_name(&name))
                    {
                        touched.created.insert(name.clone());
                        touched.tables.insert(name);
                    }
                }
                SyntaxKind::DROP_TABLE => {
                    for name in node
                        .children()
                        .filter(|child| child.kind() == SyntaxKind::TABLE_NAME_REF)
                        .filter_map(|name| table_name(&name))
                    {
                        touched.dropped.insert(name);
                    }
                }
                SyntaxKind::TABLE_NAME_REF | SyntaxKind::RELATION_NAME_REF if !only_read(&node) => {
                    if let Some(name) = table_name(&node) {
                        touched.tables.insert(name);
                    }
                }
                _ => {}
            }
        }
        touched
    }

    /// The touched tables the script does not create: those that may exist before it runs.
    pub fn existing(&self) -> impl Iterator<Item = &TableName> {
        self.tables.difference(&self.created)
    }

    /// Whether the script touches no table that may exist before it runs.
    pub fn no_existing(&self) -> bool {
        self.existing().next().is_none()
    }

    /// Whether every table the script touches is one it drops (and does not
    /// create): once it succeeded, none of them is left to look at.
    pub fn only_dropped(&self) -> bool {
        !self.tables.is_empty()
            && self.created.is_empty()
            && self.tables.iter().all(|table| self.dropped.contains(table))
    }
}

/// Which half-done states a script can leave behind, read from its statements.
///
/// Only a few statements leave an invalid index (`CREATE INDEX` or `REINDEX`
/// with `CONCURRENTLY` when they fail, `CREATE INDEX ... ON ONLY` a
/// partitioned table until every partition's index is attached, `ALTER INDEX
/// ... ATTACH PARTITION`) or an unvalidated constraint (`NOT VALID`). The
/// checks for those states skip every other script, which keeps them free for
/// the common migration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// The script can leave an index invalid.
    pub invalid_indexes: bool,
    /// The script can leave a constraint `NOT VALID`.
    pub not_valid_constraints: bool,
}

impl Leftovers {
    /// Reads a script.
    pub fn of_sql(sql: &str) -> Leftovers {
        Leftovers::of_tree(&squawk_syntax::SourceFile::parse(sql).tree())
    }

    /// Reads a parsed script.
    pub(crate) fn of_tree(tree: &squawk_syntax::SourceFile) -> Leftovers {
        let mut leftovers = Leftovers::default();
        for node in tree.syntax().descendants() {
            match node.kind() {
                SyntaxKind::CREATE_INDEX | SyntaxKind::REINDEX => {
                    let concurrently = node
                        .descendants_with_tokens()
                        .any(|element| element.kind() == SyntaxKind::CONCURRENTLY_KW);
                    let on_only = node
                        .children()
                        .filter(|child| child.kind() == SyntaxKind::TABLE_RELATION_NAME)
                        .any(|name| {
                            name.children_with_tokens()
                                .any(|element| element.kind() == SyntaxKind::ONLY_KW)
                        });
                    leftovers.invalid_indexes |= concurrently || on_only;
                }
                SyntaxKind::ATTACH_INDEX_PARTITION => leftovers.invalid_indexes = true,
                SyntaxKind::NOT_VALID => leftovers.not_valid_constraints = true,
                _ => {}
            }
        }
        leftovers
    }
}

/// Whether a table reference sits in a clause that only reads the table, or
/// in a statement that takes no lock on it (`GRANT`, `REVOKE`). A
/// data-modifying `WITH` query writes its table, so `WITH` itself is not
/// such a clause: the `SELECT`s inside it are.
fn only_read(node: &SyntaxNode) -> bool {
    node.ancestors().any(|ancestor| {
        matches!(
            ancestor.kind(),
            SyntaxKind::SELECT
                | SyntaxKind::SELECT_INTO
                | SyntaxKind::COMPOUND_SELECT
                | SyntaxKind::PAREN_SELECT
                | SyntaxKind::FROM_CLAUSE
                | SyntaxKind::USING_CLAUSE
                | SyntaxKind::USING_ON_CLAUSE
                | SyntaxKind::LIKE_CLAUSE
                | SyntaxKind::TABLE
                | SyntaxKind::GRANT
                | SyntaxKind::REVOKE
        )
    })
}

/// The (possibly qualified) name under a name node.
fn table_name(node: &SyntaxNode) -> Option<TableName> {
    let mut parts: Vec<String> = node
        .descendants()
        .filter(|n| {
            matches!(
                n.kind(),
                SyntaxKind::PATH_SEGMENT | SyntaxKind::PATH_SEGMENT_REF
            )
        })
        .filter_map(|segment| {
            segment
                .descendants_with_tokens()
                .filter_map(|element| element.into_token())
                .find(|token| !token.kind().is_trivia())
        })
        .map(|token| ident(&token))
        .collect();
    let name = parts.pop()?;
    Some(TableName {
        schema: parts.pop(),
        name,
    })
}

/// An identifier as PostgreSQL folds it: unquoted names lowercased, quoted names verbatim.
fn ident(token: &SyntaxToken) -> String {
    let text = token.text();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

#[cfg(test)]
mod leftover_tests {
    use super::Leftovers;

    fn check(sql: &str, invalid_indexes: bool, not_valid_constraints: bool) {
        assert_eq!(
            Leftovers::of_sql(sql),
            Leftovers {
                invalid_indexes,
                not_valid_constraints
            },
            "{sql}"
        );
    }

    #[test]
    fn only_some_statements_leave_half_done_state() {
        check(
            "CREATE TABLE t (id bigint); CREATE INDEX t_id_idx ON t (id); INSERT INTO t VALUES (1);",
            false,
            false,
        );
        check("CREATE INDEX CONCURRENTLY t_id_idx ON t (id);", true, false);
        check("REINDEX INDEX CONCURRENTLY t_id_idx;", true, false);
        check("CREATE INDEX e_at_idx ON ONLY events (at);", true, false);
        check(
            "ALTER INDEX e_at_idx ATTACH PARTITION e_p1_at_idx;",
            true,
            false,
        );
        check(
            "ALTER TABLE t ADD CONSTRAINT t_x_check CHECK (x > 0) NOT VALID;",
            false,
            true,
        );
        check("ALTER TABLE t VALIDATE CONSTRAINT t_x_check;", false, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, existing: &[&str], created: &[&str]) {
        let touched = Touched::of_sql(sql);
        let found: Vec<String> = touched.existing().map(ToString::to_string).collect();
        assert_eq!(found, existing, "existing tables of {sql}");
        let found: Vec<String> = touched.created.iter().map(ToString::to_string).collect();
        assert_eq!(found, created, "created tables of {sql}");
    }

    #[test]
    fn ddl_targets_are_touched() {
        check(
            "ALTER TABLE users ADD COLUMN nickname text;",
            &["users"],
            &[],
        );
        check(
            "ALTER TABLE ONLY public.\"Users\" ALTER COLUMN id TYPE bigint;",
            &["public.Users"],
            &[],
        );
        check("DROP TABLE IF EXISTS a, b CASCADE;", &["a", "b"], &[]);
        check(
            "CREATE INDEX CONCURRENTLY users_email_idx ON users (lower(email));",
            &["users"],
            &[],
        );
        check("TRUNCATE TABLE audit_log;", &["audit_log"], &[]);
        check("LOCK TABLE budgets IN SHARE MODE;", &["budgets"], &[]);
    }

    #[test]
    fn a_script_that_only_drops_its_tables_is_told_apart() {
        let only_dropped = |sql: &str| Touched::of_sql(sql).only_dropped();
        assert!(only_dropped("DROP TABLE IF EXISTS a, b CASCADE;"));
        assert!(only_dropped("DROP TABLE a; DROP TABLE public.b;"));
        // Something is left to look at.
        assert!(!only_dropped(
            "DROP TABLE a; ALTER TABLE b ADD COLUMN c int;"
        ));
        assert!(!only_dropped("DROP TABLE a; CREATE TABLE a (id int);"));
        assert!(!only_dropped("DELETE FROM a; DROP TABLE public.a;"));
        assert!(!only_dropped("DROP VIEW a;"));
        assert!(!only_dropped("DROP INDEX a_idx;"));
    }

    #[test]
    fn dml_targets_are_touched_and_sources_are_not() {
        check(
            "INSERT INTO models (provider, name) SELECT provider, name FROM staging_models s JOIN providers p ON true;",
            &["models"],
            &[],
        );
        check(
            "UPDATE users SET role = 'admin' FROM admins WHERE admins.id = users.id AND EXISTS (SELECT 1 FROM orgs);",
            &["users"],
            &[],
        );
        check(
            "DELETE FROM api_keys USING users WHERE users.id = api_keys.user_id;",
            &["api_keys"],
            &[],
        );
        check(
            "WITH moved AS (DELETE FROM staging RETURNING *) INSERT INTO users SELECT * FROM moved;",
            &["staging", "users"],
            &[],
        );
        check(
            "MERGE INTO users u USING staging s ON u.id = s.id WHEN MATCHED THEN UPDATE SET email = s.email;",
            &["users"],
            &[],
        );
        check("COPY users FROM STDIN;", &["users"], &[]);
    }

    #[test]
    fn partition_triggers_and_maintenance_statements_touch_their_tables() {
        check(
            "ALTER TABLE usage_events ATTACH PARTITION usage_events_p1 FOR VALUES FROM ('2025-01-01') TO ('2025-01-02');",
            &["usage_events", "usage_events_p1"],
            &[],
        );
        check(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log FOR EACH ROW EXECUTE FUNCTION f();",
            &["audit_log"],
            &[],
        );
        check("REINDEX TABLE CONCURRENTLY users;", &["users"], &[]);
        check("ALTER TABLE users RENAME TO members;", &["users"], &[]);
        check("GRANT SELECT ON users TO reader;", &[], &[]);
    }

    #[test]
    fn created_tables_are_not_existing_but_referenced_tables_are() {
        check(
            "CREATE TABLE teams (id bigint PRIMARY KEY, organization_id bigint NOT NULL REFERENCES organizations (id));
             CREATE INDEX teams_organization_id_idx ON teams (organization_id);
             INSERT INTO teams VALUES (1, 1);",
            &["organizations"],
            &["teams"],
        );
        check(
            "CREATE TABLE usage_events_p20251115 PARTITION OF usage_events FOR VALUES FROM ('2025-11-15') TO ('2025-11-16');",
            &["usage_events"],
            &["usage_events_p20251115"],
        );
        check(
            "ALTER TABLE api_keys ADD CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
            &["api_keys", "users"],
            &[],
        );
        check(
            "CREATE TABLE copy (LIKE users INCLUDING ALL);",
            &[],
            &["copy"],
        );
        check(
            "CREATE TABLE big AS SELECT * FROM usage_events;",
            &[],
            &["big"],
        );
    }

    #[test]
    fn views_and_plain_queries_touch_nothing() {
        check(
            "CREATE VIEW active_users AS SELECT * FROM users WHERE role <> 'gone';",
            &[],
            &[],
        );
        check("SELECT count(*) FROM users;", &[], &[]);
    }
}
