//! `changing-column-type`: `ALTER COLUMN ... TYPE` on an existing table is reported when
//! PostgreSQL rewrites the table (and rebuilds its indexes) under an `ACCESS EXCLUSIVE` lock.
//!
//! Not every type change rewrites. PostgreSQL skips the rewrite when the old
//! type is binary coercible to the new one and the `USING` expression (if
//! any) does not change the value, or when only a type modifier grows (ALTER
//! TABLE, "Notes"; `pg_cast` with `castmethod = 'b'`; the length-coercion
//! support functions). This rule knows those cases:
//! - `varchar(n)` to `varchar(m)` with m >= n, or to `varchar` or `text`;
//!   `text` or `xml` to `text`/unbounded `varchar`; `cidr` to `inet`;
//! - `numeric(p,s)` to `numeric(q,s)` with q >= p, or to unconstrained `numeric`;
//! - `varbit(n)` to a longer or unbounded `varbit`, `bit(n)` to unbounded `varbit`;
//! - `timestamp(p)`, `timestamptz(p)`, `time(p)`, `timetz(p)` and `interval(p)`
//!   to a precision at least as large, or to none (6, the largest).
//!
//! Everything else is taken as a rewrite, integer widening included (`integer`
//! to `bigint` rewrites every row). `timestamp` to `timestamptz` (and back)
//! skips the rewrite only when the session's `TimeZone` is UTC, which a
//! migration file cannot promise: it is reported.
//!
//! The old type comes from replaying the earlier migrations of the same run
//! (the schema model). When they do not create the column, the old type is
//! unknown, and the change is reported, saying so.

use crate::model::TypeChange;
use crate::rules::{At, Family, Findings, Rule, RuleInfo, SchemaView};
use crate::syntax::base_type;
use crate::violation::Severity;

pub(crate) struct ChangingColumnType;

pub(crate) static INFO: RuleInfo = RuleInfo {
    id: "changing-column-type",
    family: Family::LockSafety,
    severity: Severity::Error,
    summary: "Column types are not changed in place when PostgreSQL rewrites the table for it (binary-coercible changes and widened limits are fine).",
};

impl Rule for ChangingColumnType {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        let Some(origins) = view.origins else {
            return;
        };
        for change in &origins.type_changes {
            if change.new_table {
                continue;
            }
            if let Some(message) = finding(change) {
                out.report(&INFO, At::Span(change.at), message).help(
                    "add a column of the new type, backfill it in batches, then switch readers and writers to it",
                );
            }
        }
    }
}

/// The message for a type change that rewrites (or may rewrite) its table; `None` when it does not.
fn finding(change: &TypeChange) -> Option<String> {
    let column = format!("`{}.{}`", change.table, change.column);
    let new = &change.new;
    let Some(before) = &change.old else {
        return Some(format!(
            "changing {column} to `{new}` may rewrite the table: its current type is unknown (no earlier migration in this run creates the column)"
        ));
    };
    let old = if change.old_from_live {
        format!("`{before}` (its type in the live database)")
    } else {
        format!("`{before}`")
    };
    let rewrites_because = match &change.using {
        Some(using) if !keeps_value(using, &change.column) => format!(" USING `{using}`"),
        _ if rewrites(before, new) => String::new(),
        _ => return None,
    };
    let zone = [before.as_str(), new.as_str()]
        .iter()
        .all(|t| base_type(t).starts_with("timestamp"));
    let unless = if zone && rewrites_because.is_empty() {
        " unless the session's TimeZone is UTC"
    } else {
        ""
    };
    Some(format!(
        "changing {column} from {old} to `{new}`{rewrites_because} rewrites the table and its indexes under an ACCESS EXCLUSIVE lock{unless}"
    ))
}

/// Whether a `USING` expression is the column itself, possibly cast: it
/// changes no value beyond what the type change does.
fn keeps_value(using: &str, column: &str) -> bool {
    let bare = using
        .split_once("::")
        .map_or(using, |(expr, _)| expr)
        .trim()
        .trim_matches('"');
    bare.eq_ignore_ascii_case(column)
}

/// A type as `format_type` prints it, split into its name, modifiers and array-ness.
#[derive(Debug, PartialEq, Eq)]
struct TypeName {
    /// Without the modifiers: `timestamp(3) with time zone` is `timestamp with time zone`.
    name: String,
    modifiers: Option<Vec<i64>>,
    array: bool,
}

/// Splits a type; `None` when its modifiers are not numbers.
fn parse(data_type: &str) -> Option<TypeName> {
    let (rest, array) = match data_type.strip_suffix("[]") {
        Some(rest) => (rest, true),
        None => (data_type, false),
    };
    let Some((name, modifiers)) = rest.split_once('(') else {
        return Some(TypeName {
            name: rest.trim().to_owned(),
            modifiers: None,
            array,
        });
    };
    let (inside, after) = modifiers.split_once(')')?;
    let modifiers = inside
        .split(',')
        .map(|m| m.trim().parse().ok())
        .collect::<Option<Vec<i64>>>()?;
    let name = [name.trim(), after.trim()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some(TypeName {
        name,
        modifiers: Some(modifiers),
        array,
    })
}

/// Whether PostgreSQL rewrites a table to change a column from `old` to `new`
/// (both as `format_type` prints them), with no `USING` or one that keeps the value.
pub(crate) fn rewrites(old: &str, new: &str) -> bool {
    if old == new {
        return false;
    }
    let (Some(old), Some(new)) = (parse(old), parse(new)) else {
        return true;
    };
    // PostgreSQL coerces arrays element by element, and rewrites for it even
    // when the elements are binary coercible.
    if old.array || new.array {
        return true;
    }
    let widened = |old: &Option<Vec<i64>>, new: &Option<Vec<i64>>| match (old, new) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(old), Some(new)) => new.first() >= old.first(),
    };
    match (old.name.as_str(), new.name.as_str()) {
        ("character varying", "character varying") | ("bit varying", "bit varying") => {
            !widened(&old.modifiers, &new.modifiers)
        }
        ("numeric", "numeric") => match (&old.modifiers, &new.modifiers) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(o), Some(n)) => {
                let scale = |m: &[i64]| m.get(1).copied().unwrap_or(0);
                !(n[0] >= o[0] && scale(n) == scale(o))
            }
        },
        (a, b)
            if a == b
                && matches!(
                    a,
                    "timestamp with time zone"
                        | "timestamp without time zone"
                        | "time with time zone"
                        | "time without time zone"
                        | "interval"
                ) =>
        {
            // No precision is the largest, 6.
            let precision =
                |m: &Option<Vec<i64>>| m.as_ref().and_then(|m| m.first().copied()).unwrap_or(6);
            precision(&new.modifiers) < precision(&old.modifiers)
        }
        ("character varying" | "text" | "xml", "text") => false,
        ("text" | "xml", "character varying") => new.modifiers.is_some(),
        ("bit", "bit varying") => new.modifiers.is_some(),
        ("cidr", "inet") => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::rewrites;
    use crate::rules::test_support::{check, check_files};

    /// What the real histories do: widen a varchar, give up its limit, move to text, grow a
    /// numeric, and the changes that do rewrite (integer keys to bigint, shrinking, retyping).
    #[test]
    fn judged_by_whether_the_table_is_rewritten() {
        let create = "CREATE TABLE users (id integer PRIMARY KEY, email varchar(100), name character varying(50), \
             bio varchar(255), price numeric(10,2), balance numeric(12,4), code char(3), ip cidr, \
             created_at timestamp, flags bit varying(8), status text);\n";
        let changes = "ALTER TABLE users ALTER COLUMN email TYPE varchar(255);
ALTER TABLE users ALTER COLUMN name TYPE varchar;
ALTER TABLE users ALTER COLUMN bio TYPE text;
ALTER TABLE users ALTER COLUMN price TYPE numeric(14,2);
ALTER TABLE users ALTER COLUMN ip TYPE inet;
ALTER TABLE users ALTER COLUMN flags TYPE varbit(64);
ALTER TABLE users ALTER COLUMN status TYPE varchar;
ALTER TABLE users ALTER COLUMN id TYPE bigint;
ALTER TABLE users ALTER COLUMN balance TYPE numeric(12,2);
ALTER TABLE users ALTER COLUMN code TYPE text;
ALTER TABLE users ALTER COLUMN created_at TYPE timestamptz;
ALTER TABLE users ALTER COLUMN status SET DATA TYPE varchar(20);
ALTER TABLE users ALTER COLUMN email TYPE integer USING length(email);
";
        check_files(
            "changing-column-type",
            &[
                ("202601010000_users.up.sql", create),
                ("202601010000_users.down.sql", "DROP TABLE users;"),
                ("202602010000_types.up.sql", changes),
                ("202602010000_types.down.sql", "SELECT 1;"),
            ],
            expect_test::expect![[r#"
                error[changing-column-type]: changing `users.id` from `integer` to `bigint` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock
                  --> 202602010000_types.up.sql:8:19
                   |
                 8 | ALTER TABLE users ALTER COLUMN id TYPE bigint;
                   |                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add a column of the new type, backfill it in batches, then switch readers and writers to it
                error[changing-column-type]: changing `users.balance` from `numeric(12,4)` to `numeric(12,2)` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock
                  --> 202602010000_types.up.sql:9:19
                   |
                 9 | ALTER TABLE users ALTER COLUMN balance TYPE numeric(12,2);
                   |                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add a column of the new type, backfill it in batches, then switch readers and writers to it
                error[changing-column-type]: changing `users.code` from `character(3)` to `text` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock
                   --> 202602010000_types.up.sql:10:19
                    |
                 10 | ALTER TABLE users ALTER COLUMN code TYPE text;
                    |                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^
                    = help: add a column of the new type, backfill it in batches, then switch readers and writers to it
                error[changing-column-type]: changing `users.created_at` from `timestamp without time zone` to `timestamp with time zone` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock unless the session's TimeZone is UTC
                   --> 202602010000_types.up.sql:11:19
                    |
                 11 | ALTER TABLE users ALTER COLUMN created_at TYPE timestamptz;
                    |                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                    = help: add a column of the new type, backfill it in batches, then switch readers and writers to it
                error[changing-column-type]: changing `users.status` from `character varying` to `character varying(20)` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock
                   --> 202602010000_types.up.sql:12:19
                    |
                 12 | ALTER TABLE users ALTER COLUMN status SET DATA TYPE varchar(20);
                    |                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                    = help: add a column of the new type, backfill it in batches, then switch readers and writers to it
                error[changing-column-type]: changing `users.email` from `character varying(255)` to `integer` USING `length(email)` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock
                   --> 202602010000_types.up.sql:13:19
                    |
                 13 | ALTER TABLE users ALTER COLUMN email TYPE integer USING length(email);
                    |                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                    = help: add a column of the new type, backfill it in batches, then switch readers and writers to it
            "#]],
        );
    }

    /// As Django and Rails write them: quoted names, `USING "col"::type`,
    /// several changes in one statement.
    #[test]
    fn framework_shapes() {
        let create = "CREATE TABLE \"auth_user\" (\"id\" serial NOT NULL PRIMARY KEY, \"username\" varchar(30) NOT NULL, \
             \"bio\" varchar(500), \"score\" integer);\n";
        let django = "ALTER TABLE \"auth_user\" ALTER COLUMN \"username\" TYPE varchar(150) USING \"username\"::varchar(150);\n\
             ALTER TABLE \"auth_user\" ALTER COLUMN \"bio\" TYPE text, ALTER COLUMN \"score\" TYPE bigint;\n";
        check_files(
            "changing-column-type",
            &[
                ("202601010000_auth_user.up.sql", create),
                ("202601010000_auth_user.down.sql", "DROP TABLE auth_user;"),
                ("202602010000_widen.up.sql", django),
                ("202602010000_widen.down.sql", "SELECT 1;"),
            ],
            expect_test::expect![[r#"
                error[changing-column-type]: changing `auth_user.score` from `integer` to `bigint` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock
                  --> 202602010000_widen.up.sql:2:55
                   |
                 2 | ALTER TABLE "auth_user" ALTER COLUMN "bio" TYPE text, ALTER COLUMN "score" TYPE bigint;
                   |                                                       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add a column of the new type, backfill it in batches, then switch readers and writers to it
            "#]],
        );
    }

    #[test]
    fn unknown_old_type_is_reported_as_unknown() {
        check(
            "changing-column-type",
            "ALTER TABLE accounts ALTER COLUMN plan TYPE text;",
            expect_test::expect![[r#"
                error[changing-column-type]: changing `accounts.plan` to `text` may rewrite the table: its current type is unknown (no earlier migration in this run creates the column)
                  --> 202601010000_a.up.sql:1:22
                   |
                 1 | ALTER TABLE accounts ALTER COLUMN plan TYPE text;
                   |                      ^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: add a column of the new type, backfill it in batches, then switch readers and writers to it
            "#]],
        );
    }

    /// Linted against the live database, a column the files do not create is
    /// judged from its live type.
    #[test]
    fn the_live_type_stands_in_for_an_unknown_one() {
        let live = "CREATE TABLE accounts (plan varchar(20), seats integer);";
        let (live, _) = crate::model::replay([(0, &squawk_syntax::SourceFile::parse(live))], &[]);
        let files = vec![
            (
                std::path::PathBuf::from("202601010000_a.up.sql"),
                "ALTER TABLE accounts ALTER COLUMN plan TYPE text;\nALTER TABLE accounts ALTER COLUMN seats TYPE bigint;\nALTER TABLE accounts ALTER COLUMN region TYPE text;\n".to_owned(),
            ),
            (std::path::PathBuf::from("202601010000_a.down.sql"), "SELECT 1;".to_owned()),
        ];
        let found: Vec<String> =
            crate::lint_sources_against(&files, &live, &crate::Config::default())
                .into_iter()
                .filter(|v| v.rule == "changing-column-type")
                .map(|v| v.message)
                .collect();
        expect_test::expect![[r#"
            [
                "changing `accounts.seats` from `integer` (its type in the live database) to `bigint` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock",
                "changing `accounts.region` to `text` may rewrite the table: its current type is unknown (no earlier migration in this run creates the column)",
            ]
        "#]].assert_debug_eq(&found);
    }

    #[test]
    fn tables_new_in_the_same_migration_are_exempt() {
        for create in [
            "CREATE TABLE t (x integer);",
            "CREATE TABLE t AS SELECT 1 AS x;",
            "SELECT 1 AS x INTO t;",
        ] {
            check(
                "changing-column-type",
                &format!("{create}\nALTER TABLE t ALTER COLUMN x TYPE bigint USING x::bigint;"),
                expect_test::expect![""],
            );
        }
    }

    /// The verdicts, pair by pair; the test below checks each against PostgreSQL.
    const CASES: &[(&str, &str, bool)] = &[
        ("character varying(10)", "character varying(20)", false),
        ("character varying(10)", "character varying(10)", false),
        ("character varying(20)", "character varying(10)", true),
        ("character varying(10)", "character varying", false),
        ("character varying", "character varying(10)", true),
        ("character varying(10)", "text", false),
        ("character varying", "text", false),
        ("text", "character varying", false),
        ("text", "character varying(10)", true),
        ("xml", "text", false),
        ("character(3)", "text", true),
        ("character(3)", "character(5)", true),
        ("numeric(10,2)", "numeric(12,2)", false),
        ("numeric(10,2)", "numeric", false),
        ("numeric(10,2)", "numeric(12,3)", true),
        ("numeric(10,2)", "numeric(8,2)", true),
        ("numeric", "numeric(10,2)", true),
        ("bit varying(8)", "bit varying(16)", false),
        ("bit varying(8)", "bit varying", false),
        ("bit varying(16)", "bit varying(8)", true),
        ("bit(8)", "bit varying", false),
        ("cidr", "inet", false),
        ("inet", "cidr", true),
        ("integer", "bigint", true),
        ("smallint", "integer", true),
        ("bigint", "integer", true),
        ("integer", "text", true),
        (
            "timestamp without time zone",
            "timestamp with time zone",
            true,
        ),
        (
            "timestamp with time zone",
            "timestamp without time zone",
            true,
        ),
        (
            "timestamp(3) without time zone",
            "timestamp without time zone",
            false,
        ),
        (
            "timestamp(3) with time zone",
            "timestamp(6) with time zone",
            false,
        ),
        (
            "timestamp with time zone",
            "timestamp(3) with time zone",
            true,
        ),
        ("time(0) without time zone", "time without time zone", false),
        ("interval(0)", "interval", false),
        ("text[]", "text[]", false),
        ("character varying(10)[]", "text[]", true),
        ("text", "text[]", true),
        ("real", "double precision", true),
        ("jsonb", "json", true),
    ];

    #[test]
    fn verdicts() {
        for (old, new, expected) in CASES {
            assert_eq!(rewrites(old, new), *expected, "{old} -> {new}");
        }
    }

    /// Each verdict of [`CASES`] against PostgreSQL: a rewrite gives the table a new relfilenode.
    /// The session's TimeZone is not UTC, as a migration cannot count on it.
    #[tokio::test]
    async fn verdicts_match_postgresql() {
        let db = testdb::TestDb::new().await;
        let client = db.connect().await;
        client
            .batch_execute("SET TimeZone = 'America/New_York'")
            .await
            .unwrap();
        let mut wrong = Vec::new();
        for (old, new, expected) in CASES {
            let sql = format!(
                "DROP TABLE IF EXISTS t; CREATE TABLE t (c {old}); INSERT INTO t VALUES (NULL);"
            );
            client.batch_execute(&sql).await.unwrap();
            let filenode = "SELECT pg_relation_filenode('t')::bigint";
            let before: i64 = client.query_one(filenode, &[]).await.unwrap().get(0);
            let using = if new.ends_with("[]") && !old.ends_with("[]") {
                format!(" USING ARRAY[c]::{new}")
            } else {
                String::new()
            };
            client
                .batch_execute(&format!("ALTER TABLE t ALTER COLUMN c TYPE {new}{using}"))
                .await
                .unwrap();
            let after: i64 = client.query_one(filenode, &[]).await.unwrap().get(0);
            if (before != after) != *expected {
                wrong.push(format!(
                    "{old} -> {new}: PostgreSQL rewrote: {}",
                    before != after
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
