//! Lock and rewrite safety: squawk's rules, run through `squawk-linter` and mapped to our IDs.
//!
//! squawk decides; this file chooses which of its rules run, gives them our
//! IDs, and drops two kinds of findings squawk gets wrong for our migrations:
//! - statements on a table the same migration created (squawk's #349): the
//!   table is new and empty, so building an index on it without
//!   `CONCURRENTLY`, or adding a constraint without `NOT VALID`, locks nobody.
//!   squawk 2.68 exempts such tables only inside an explicit or assumed
//!   transaction; a `-- dbops:no-transaction` migration needs this filter;
//! - `prefer-bigint-over-int` on columns that are not keys: counts such as
//!   `input_tokens integer` are fine, 32-bit *keys* run out.

use squawk_linter::{Linter, Rule as SquawkRule};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

use crate::model::FileSpan;
use crate::rules::{At, Family, Findings, RuleInfo};
use crate::source::Source;
use crate::syntax::{column_list, qualified_name, simple_name};
use crate::violation::Severity;

/// One of our rule IDs and the squawk rules behind it.
#[derive(Debug)]
pub(crate) struct Mapping {
    pub(crate) info: &'static RuleInfo,
    squawk: &'static [SquawkRule],
    /// Whether findings on a table created earlier in the same file are dropped.
    existing_tables_only: bool,
}

macro_rules! mapping {
    ($id:literal, $severity:ident, $summary:literal, [$($squawk:ident),+], $existing:literal) => {
        mapping!($id, LockSafety, $severity, $summary, [$($squawk),+], $existing)
    };
    ($id:literal, $family:ident, $severity:ident, $summary:literal, [$($squawk:ident),+], $existing:literal) => {
        Mapping {
            info: &RuleInfo { id: $id, family: Family::$family, severity: Severity::$severity, summary: $summary },
            squawk: &[$(SquawkRule::$squawk),+],
            existing_tables_only: $existing,
        }
    };
}

/// The mapped rules.
pub(crate) const RULES: &[Mapping] = &[
    mapping!(
        "index-without-concurrently",
        Error,
        "Indexes on existing tables are built CONCURRENTLY.",
        [RequireConcurrentIndexCreation],
        true
    ),
    mapping!(
        "drop-index-without-concurrently",
        Error,
        "Indexes are dropped CONCURRENTLY.",
        [RequireConcurrentIndexDeletion],
        false
    ),
    mapping!(
        "reindex-without-concurrently",
        Error,
        "Indexes are rebuilt with REINDEX ... CONCURRENTLY (a plain REINDEX blocks writes, and reads through the index, until it ends).",
        [RequireConcurrentReindex],
        false
    ),
    mapping!(
        "adding-required-column",
        Error,
        "A NOT NULL column added to an existing table has a default.",
        [AddingRequiredField],
        true
    ),
    mapping!(
        "set-not-null",
        Error,
        "NOT NULL is set on an existing column only after a validated `CHECK (col IS NOT NULL)` (no full scan under lock).",
        [AddingNotNullableField],
        true
    ),
    mapping!(
        "volatile-default",
        Error,
        "A column added to an existing table has no volatile default (it would rewrite the table).",
        [AddingFieldWithDefault],
        true
    ),
    mapping!(
        "constraint-without-not-valid",
        Error,
        "Constraints on existing tables are added NOT VALID, then validated.",
        [ConstraintMissingNotValid, AddingForeignKeyConstraint],
        true
    ),
    mapping!(
        "unique-constraint-without-index",
        Error,
        "Unique constraints on existing tables are added USING INDEX built concurrently.",
        [DisallowedUniqueConstraint],
        true
    ),
    mapping!(
        "adding-primary-key",
        Error,
        "Primary keys on existing tables are added USING INDEX built concurrently.",
        [AddingSerialPrimaryKeyField],
        true
    ),
    mapping!(
        "drop-column",
        Error,
        "Columns are not dropped while code may still read them.",
        [BanDropColumn],
        false
    ),
    mapping!(
        "drop-table",
        Error,
        "Tables are not dropped by a forward migration.",
        [BanDropTable],
        false
    ),
    mapping!(
        "drop-not-null",
        Warning,
        "Dropping NOT NULL breaks readers that rely on it.",
        [BanDropNotNull],
        false
    ),
    mapping!(
        "rename-column",
        Error,
        "Columns are not renamed while code may still use the old name.",
        [RenamingColumn],
        false
    ),
    mapping!(
        "rename-table",
        Error,
        "Tables are not renamed while code may still use the old name.",
        [RenamingTable],
        false
    ),
    mapping!(
        "timestamp-without-time-zone",
        Error,
        "Timestamps are timestamptz.",
        [PreferTimestampTz],
        false
    ),
    mapping!(
        "integer-key",
        Error,
        "Key columns are bigint, not 32- or 16-bit integers.",
        [PreferBigintOverInt, PreferBigintOverSmallint],
        false
    ),
    mapping!(
        "serial-column",
        Error,
        "Generated keys use GENERATED ALWAYS AS IDENTITY, not serial.",
        [PreferIdentity],
        false
    ),
    mapping!(
        "varchar-length",
        Error,
        "Text is `text` with a check, not varchar(n).",
        [PreferTextField],
        false
    ),
    mapping!(
        "char-column",
        Error,
        "Text is `text` with a check, not char(n).",
        [BanCharField],
        false
    ),
    mapping!(
        "transaction-nesting",
        Error,
        "Migrations do not BEGIN or COMMIT: the engine runs each in a transaction.",
        [TransactionNesting, BanUncommittedTransaction],
        false
    ),
    mapping!(
        "drop-database",
        Error,
        "Migrations do not drop databases.",
        [BanDropDatabase],
        false
    ),
    mapping!(
        "truncate-cascade",
        Error,
        "TRUNCATE does not CASCADE into other tables.",
        [BanTruncateCascade],
        false
    ),
    mapping!(
        "detach-without-concurrently",
        Partitions,
        Error,
        "Partitions are detached CONCURRENTLY.",
        [RequireConcurrentPartitionDetach],
        false
    ),
    mapping!(
        "identifier-too-long",
        Naming,
        Error,
        "Identifiers fit in 63 bytes (PostgreSQL truncates longer ones).",
        [IdentifierTooLong],
        false
    ),
];

fn mapping_of(rule: SquawkRule) -> Option<&'static Mapping> {
    RULES.iter().find(|m| m.squawk.contains(&rule))
}

/// Runs squawk on one forward migration file (number `file` of its set) and reports what it finds under our IDs.
pub(crate) fn check_file(
    file: usize,
    source: &Source,
    enabled: impl Fn(&RuleInfo) -> bool,
    out: &mut Findings,
) {
    let squawk_rules: Vec<SquawkRule> = RULES
        .iter()
        .filter(|m| enabled(m.info))
        .flat_map(|m| m.squawk.iter().copied())
        .collect();
    if squawk_rules.is_empty() {
        return;
    }
    let mut linter = Linter::from(squawk_rules);
    linter.settings.assume_in_transaction = source.runs_in_transaction();
    let violations = linter.lint(&source.parse, &source.text);
    if violations.is_empty() {
        return;
    }
    let tree = source.parse.tree();
    for violation in violations {
        let Some(mapping) = mapping_of(violation.code) else {
            continue;
        };
        let start: u32 = violation.text_range.start().into();
        let end: u32 = violation.text_range.end().into();
        let Some(stmt) = tree
            .stmts()
            .find(|s| s.syntax().text_range().contains_range(violation.text_range))
        else {
            continue;
        };
        if mapping.existing_tables_only && targets_table_created_before(&tree, &stmt) {
            continue;
        }
        if mapping.info.id == "integer-key"
            && !is_key_column(&stmt, |node| {
                node.text_range().contains_range(violation.text_range)
            })
        {
            continue;
        }
        let finding = out.report(
            mapping.info,
            At::Span(FileSpan { file, start, end }),
            violation.message,
        );
        if let Some(help) = violation.help {
            finding.help(help);
        }
    }
}

/// The live side of the type rules, under the same IDs: squawk checks the
/// statements of a migration, this checks the columns they left in the database.
pub(crate) fn check_live_types(view: &crate::rules::SchemaView<'_>, out: &mut Findings) {
    let info = |id: &str| {
        RULES
            .iter()
            .find(|m| m.info.id == id)
            .expect("a mapped rule")
            .info
    };
    for table in view.tables() {
        for column in &table.columns {
            let base = crate::syntax::base_type(&column.data_type);
            let at = || view.column_at(table, &column.name);
            let name = format!("{}.{}", table.name, column.name);
            let is_key = column.name == "id"
                || column.name.ends_with("_id")
                || table.is_primary_key_column(&column.name)
                || table.is_foreign_key_column(&column.name);
            let serial = column
                .default
                .as_deref()
                .is_some_and(|d| d.starts_with("nextval("));
            let finding = match base {
                "timestamp without time zone" => {
                    Some(("timestamp-without-time-zone", "use `timestamptz`"))
                }
                "integer" | "smallint" if is_key => {
                    Some(("integer-key", "use `bigint`: 32-bit keys run out"))
                }
                "character varying" if column.data_type.contains('(') => {
                    Some(("varchar-length", "use `text` with a length check"))
                }
                "character" => Some(("char-column", "use `text` with a length check")),
                _ if serial => Some(("serial-column", "use `GENERATED ALWAYS AS IDENTITY`")),
                _ => None,
            };
            if let Some((id, help)) = finding {
                let detail = if serial && id == "serial-column" {
                    "takes its default from a sequence (serial)".to_owned()
                } else {
                    format!("is `{}`", column.data_type)
                };
                out.report(info(id), at(), format!("column `{name}` {detail}"))
                    .help(help);
            }
        }
    }
}

/// The table a statement changes, for CREATE INDEX and ALTER TABLE.
fn target_table(stmt: &ast::Stmt) -> Option<(String, String)> {
    let name = match stmt {
        ast::Stmt::CreateIndex(create) => create.table_relation_name()?.table_name_ref()?,
        ast::Stmt::AlterTable(alter) => alter.table_relation_name()?.table_name_ref()?,
        _ => return None,
    };
    qualified_name(name.syntax())
}

/// Whether the statement's table was created earlier in the same file, by
/// `CREATE TABLE`, `CREATE TABLE ... AS`, `SELECT ... INTO` or `CREATE
/// MATERIALIZED VIEW`: nothing can be reading it yet, nor hold rows anyone
/// waits for.
fn targets_table_created_before(file: &ast::SourceFile, stmt: &ast::Stmt) -> bool {
    let Some(target) = target_table(stmt) else {
        return false;
    };
    let stmt_start = stmt.syntax().text_range().start();
    file.stmts()
        .take_while(|s| s.syntax().text_range().start() < stmt_start)
        .any(|s| created_table(&s) == Some(target.clone()))
}

/// The table (or materialized view) a statement creates.
pub(crate) fn created_table(stmt: &ast::Stmt) -> Option<(String, String)> {
    match stmt {
        ast::Stmt::CreateTable(create) => {
            create.table_name().and_then(|n| qualified_name(n.syntax()))
        }
        ast::Stmt::CreateTableAs(create) => {
            create.table_name().and_then(|n| qualified_name(n.syntax()))
        }
        ast::Stmt::SelectInto(select) => select
            .into_clause()
            .and_then(|into| into.table_name())
            .and_then(|n| qualified_name(n.syntax())),
        ast::Stmt::CreateMaterializedView(view) => {
            view.view().and_then(|v| qualified_name(v.syntax()))
        }
        _ => None,
    }
}

/// Whether the column whose type squawk flagged is a key: `id`, `*_id`, or part of a primary or foreign key.
fn is_key_column(stmt: &ast::Stmt, covers_flagged_type: impl Fn(&SyntaxNode) -> bool) -> bool {
    let Some(column) = stmt
        .syntax()
        .descendants()
        .filter(|n| matches!(n.kind(), SyntaxKind::COLUMN | SyntaxKind::ADD_COLUMN))
        .find(|n| covers_flagged_type(n))
    else {
        return true;
    };
    let name = column
        .children()
        .find(|n| n.kind() == SyntaxKind::COLUMN_NAME)
        .and_then(ast::ColumnName::cast)
        .and_then(|n| simple_name(&n))
        .unwrap_or_default();
    if name == "id" || name.ends_with("_id") {
        return true;
    }
    let inline_key = column.children().any(|c| {
        matches!(
            c.kind(),
            SyntaxKind::PRIMARY_KEY_CONSTRAINT | SyntaxKind::REFERENCES_CONSTRAINT
        )
    });
    inline_key || table_key_columns(stmt.syntax()).contains(&name)
}

/// Columns named in the table-level primary and foreign keys of a statement.
fn table_key_columns(stmt: &SyntaxNode) -> Vec<String> {
    stmt.descendants()
        .filter(|n| {
            matches!(
                n.kind(),
                SyntaxKind::PRIMARY_KEY_CONSTRAINT | SyntaxKind::FOREIGN_KEY_CONSTRAINT
            )
        })
        .filter_map(|c| {
            c.descendants().find(|n| {
                matches!(
                    n.kind(),
                    SyntaxKind::CONSTRAINT_COLUMN_REF_LIST | SyntaxKind::FOREIGN_KEY_COLUMN_LIST
                )
            })
        })
        .flat_map(|list| column_list(&list))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn mapped_rules() {
        check(
            "index-without-concurrently",
            "CREATE INDEX users_email_idx ON users (email);",
            expect_test::expect![[r#"
            error[index-without-concurrently]: During normal index creation, table updates are blocked, but reads are still allowed.
              --> 202601010000_a.up.sql:1:1
               |
             1 | CREATE INDEX users_email_idx ON users (email);
               | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = help: Use `concurrently` to avoid blocking writes.
        "#]],
        );
        check(
            "integer-key",
            "CREATE TABLE t (id integer PRIMARY KEY, n integer, org_id int4);",
            expect_test::expect![[r#"
            error[integer-key]: Using 32-bit integer fields can result in hitting the max `int` limit.
              --> 202601010000_a.up.sql:1:20
               |
             1 | CREATE TABLE t (id integer PRIMARY KEY, n integer, org_id int4);
               |                    ^^^^^^^
               = help: Use 64-bit integer values instead to prevent hitting this limit.
            error[integer-key]: Using 32-bit integer fields can result in hitting the max `int` limit.
              --> 202601010000_a.up.sql:1:59
               |
             1 | CREATE TABLE t (id integer PRIMARY KEY, n integer, org_id int4);
               |                                                           ^^^^
               = help: Use 64-bit integer values instead to prevent hitting this limit.
        "#]],
        );
    }

    #[test]
    fn reindex_without_concurrently() {
        check(
            "reindex-without-concurrently",
            "REINDEX INDEX usage_events_org_idx;",
            expect_test::expect![[r#"
                error[reindex-without-concurrently]: Reindexing a table or index without `concurrently` blocks reads and writes.
                  --> 202601010000_a.up.sql:1:1
                   |
                 1 | REINDEX INDEX usage_events_org_idx;
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: Use `concurrently` to avoid blocking reads and writes.
            "#]],
        );
        check(
            "reindex-without-concurrently",
            "-- dbops:no-transaction\nREINDEX INDEX CONCURRENTLY usage_events_org_idx;",
            expect_test::expect![[""]],
        );
        // What real histories run after a bloated or corrupted index: a whole
        // table, schema-qualified, and the concurrent form of the same.
        check(
            "reindex-without-concurrently",
            "-- dbops:no-transaction\nREINDEX TABLE public.ci_builds;\nREINDEX TABLE CONCURRENTLY public.ci_job_artifacts;",
            expect_test::expect![[r#"
                error[reindex-without-concurrently]: Reindexing a table or index without `concurrently` blocks reads and writes.
                  --> 202601010000_a.up.sql:2:1
                   |
                 2 | REINDEX TABLE public.ci_builds;
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: Use `concurrently` to avoid blocking reads and writes.
            "#]],
        );
    }

    #[test]
    fn set_not_null() {
        check(
            "set-not-null",
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            expect_test::expect![[r#"
                error[set-not-null]: Setting a column `NOT NULL` blocks reads while the table is scanned.
                  --> 202601010000_a.up.sql:1:38
                   |
                 1 | ALTER TABLE users ALTER COLUMN email SET NOT NULL;
                   |                                      ^^^^^^^^^^^^
                   = help: Make the field nullable and use a `CHECK` constraint instead.
            "#]],
        );
        let validated_first = "ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email IS NOT NULL) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_email_check;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;";
        check("set-not-null", validated_first, expect_test::expect![[""]]);
    }

    #[test]
    fn table_created_in_the_same_migration_is_exempt_squawk_349() {
        let create = "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, x bigint);\n";
        check(
            "index-without-concurrently",
            &format!("{create}CREATE INDEX t_x_idx ON t (x);"),
            expect_test::expect![""],
        );
        let no_transaction =
            format!("-- dbops:no-transaction\n{create}CREATE INDEX t_x_idx ON t (x);");
        check(
            "index-without-concurrently",
            &no_transaction,
            expect_test::expect![""],
        );
        check(
            "constraint-without-not-valid",
            &format!("{create}ALTER TABLE t ADD CONSTRAINT t_x_check CHECK (x > 0);"),
            expect_test::expect![""],
        );
    }

    #[test]
    fn tables_made_by_a_query_in_the_same_migration_are_exempt_too() {
        for create in [
            "CREATE TABLE t AS SELECT 1::bigint AS x;",
            "CREATE TABLE IF NOT EXISTS public.t AS SELECT 1::bigint AS x;",
            "SELECT 1::bigint AS x INTO t;",
            "CREATE MATERIALIZED VIEW t AS SELECT 1::bigint AS x;",
        ] {
            check(
                "index-without-concurrently",
                &format!("{create}\nCREATE INDEX t_x_idx ON t (x);"),
                expect_test::expect![""],
            );
        }
        // A table made by a query in another migration is an existing table.
        check(
            "index-without-concurrently",
            "CREATE INDEX t_x_idx ON t (x);",
            expect_test::expect![[r#"
                error[index-without-concurrently]: During normal index creation, table updates are blocked, but reads are still allowed.
                  --> 202601010000_a.up.sql:1:1
                   |
                 1 | CREATE INDEX t_x_idx ON t (x);
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: Use `concurrently` to avoid blocking writes.
            "#]],
        );
    }
}
