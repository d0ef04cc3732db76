//! The realistic history's shape, and against PostgreSQL: its ups apply,
//! each down undoes its up, and the two files of every up and every down
//! leave an empty schema.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{
    MIGRATIONS, NO_TRANSACTION, ROWS, Step, history, history_of, in_stretches, summary, write,
};
use crate::pg::{self, psql};

/// Enough rows that backfills, checks and validations see data, few
/// enough that the test is quick.
const TEST_ROWS: usize = 2_000;

#[test]
fn the_history_is_the_same_every_time_and_as_long_as_promised() {
    let steps = history(ROWS);
    assert_eq!(steps.len(), MIGRATIONS);
    assert_eq!(steps, history(ROWS));
    // Only the seeds' row counts depend on `rows`.
    let small = history(TEST_ROWS);
    let slugs = |steps: &[Step]| steps.iter().map(|s| s.slug.clone()).collect::<Vec<_>>();
    assert_eq!(slugs(&steps), slugs(&small));
}

/// The lint benchmark's 3,000 files: the same history, continued, with new
/// tables still arriving (not only changes to the first ones).
#[test]
fn the_history_goes_on_to_3000_migrations() {
    let long = history_of(TEST_ROWS, 3_000);
    assert_eq!(long.len(), 3_000);
    assert_eq!(long[..MIGRATIONS], history(TEST_ROWS)[..]);
    let created = |steps: &[Step]| steps.iter().filter(|s| s.kind == "create table").count();
    assert!(
        created(&long) > created(&long[..MIGRATIONS]),
        "no table after the first {MIGRATIONS} migrations"
    );
}

#[test]
fn every_kind_of_change_happens() {
    let steps = history(ROWS);
    let kinds: BTreeSet<&str> = steps.iter().map(|step| step.kind).collect();
    let expected = [
        "add column",
        "add column with default",
        "backfill",
        "change column type",
        "check constraint",
        "comment",
        "create function",
        "create table",
        "create view",
        "drop column",
        "drop index",
        "drop table",
        "enum",
        "enum backfill",
        "enum value",
        "foreign key",
        "function",
        "index",
        "index concurrently",
        "reference rows",
        "rename column",
        "rename enum value",
        "rename table",
        "replace function",
        "replace view",
        "seed",
        "set default",
        "set not null",
        "trigger",
        "validate constraint",
    ];
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|kind| !kinds.contains(kind))
        .collect();
    assert!(
        missing.is_empty(),
        "missing: {missing:?}\n{}",
        summary(&steps)
    );
    let at_least = |kind: &str, count: usize| {
        let found = steps.iter().filter(|step| step.kind == kind).count();
        assert!(
            found >= count,
            "{found} {kind}, wanted {count}\n{}",
            summary(&steps)
        );
    };
    at_least("index concurrently", 20);
    at_least("backfill", 20);
    at_least("create table", 25);
}

#[test]
fn no_transaction_scripts_hold_one_statement_and_the_others_no_concurrently() {
    for step in history(ROWS) {
        for sql in [&step.up, &step.down] {
            if sql.starts_with(NO_TRANSACTION) {
                assert_eq!(sql.matches(';').count(), 1, "{}: {sql}", step.slug);
                assert!(sql.contains("CONCURRENTLY"), "{}: {sql}", step.slug);
            } else {
                assert!(!sql.contains("CONCURRENTLY"), "{}: {sql}", step.slug);
            }
            assert!(sql.ends_with(";\n"), "{}: {sql:?}", step.slug);
        }
        let up = step.up.starts_with(NO_TRANSACTION);
        assert_eq!(up, step.down.starts_with(NO_TRANSACTION), "{}", step.slug);
        assert!(
            step.slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            step.slug
        );
    }
}

#[test]
fn stretches_of_transactional_scripts_share_a_transaction() {
    let no_tx = format!("{NO_TRANSACTION}CREATE INDEX CONCURRENTLY i ON t (c);\n");
    let scripts = ["A;\n", "B;\n", no_tx.as_str(), no_tx.as_str(), "C;\n"];
    assert_eq!(
        in_stretches(scripts.into_iter()),
        format!("BEGIN;\nA;\nB;\nCOMMIT;\n{no_tx}{no_tx}BEGIN;\nC;\nCOMMIT;\n")
    );
    assert_eq!(in_stretches([no_tx.as_str()].into_iter()), no_tx);
}

/// One line per object of the `public` schema, hashed: columns (in any
/// order: a column a down adds again comes last), relations, constraints,
/// indexes, triggers, functions, enum types and comments.
const STATE: &str = "
CREATE FUNCTION xtask_verify.state() RETURNS text LANGUAGE sql AS $$
SELECT md5(coalesce(string_agg(line, E'\\n' ORDER BY line), '')) FROM (
    SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
        || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
        || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
        || coalesce(' comment ' || col_description(c.oid, a.attnum), '')
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v')
      AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT 'relation ' || c.relname || ' ' || c.relkind::text
        || coalesce(' comment ' || obj_description(c.oid, 'pg_class'), '')
        || CASE WHEN c.relkind = 'v' THEN ' ' || pg_get_viewdef(c.oid) ELSE '' END
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
    SELECT 'constraint ' || co.conrelid::regclass || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
    FROM pg_constraint co WHERE co.connamespace = 'public'::regnamespace
  UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' invalid' END
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace = 'public'::regnamespace
  UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
  UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ' ' || md5(p.prosrc)
    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
  UNION ALL
    SELECT 'type ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
    WHERE t.typnamespace = 'public'::regnamespace GROUP BY t.typname
) objects (line)
$$;
";

/// The state of an empty `public` schema.
const EMPTY: &str = "d41d8cd98f00b204e9800998ecf8427e";

fn fresh_database(prefix: &str) -> url::Url {
    // One call for both tests: two at once could both start a cluster.
    static SERVER: std::sync::OnceLock<url::Url> = std::sync::OnceLock::new();
    let server = SERVER.get_or_init(|| {
        pg::ensure().expect("a PostgreSQL server (DB_URL, or the installed programs)")
    });
    psql::create_fresh_database(server, prefix).expect("a fresh database")
}

fn drop_database(db: &url::Url) {
    let server = psql::database_url(db, "postgres");
    psql::drop_database(&server, psql::database_name(db)).expect("dropping the test database");
}

/// Applies every up, then every down newest first, each transactional one
/// in its own transaction as dbops runs it, in one `psql` session; after
/// each down the schema must be as it was before its up.
#[test]
fn each_down_undoes_its_up() {
    let out = std::env::temp_dir().join(format!("xtask-realistic-{}", std::process::id()));
    let (fixture, steps) = write(&out, TEST_ROWS).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&fixture.migrations)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let ups: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".up.sql"))
        .collect();
    let downs: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".down.sql"))
        .collect();
    assert_eq!((ups.len(), downs.len()), (steps.len(), steps.len()));

    let mut script =
        format!("CREATE SCHEMA xtask_verify;\n{STATE}SELECT 'up 0 ' || xtask_verify.state();\n");
    let run = |script: &mut String, file: &std::path::Path, label: String| {
        let transactional = !std::fs::read_to_string(file)
            .unwrap()
            .starts_with(NO_TRANSACTION);
        let (begin, commit) = if transactional {
            ("BEGIN;\n", "COMMIT;\n")
        } else {
            ("", "")
        };
        let _ = write!(
            script,
            "{begin}\\i '{}'\n{commit}SELECT '{label} ' || xtask_verify.state();\n",
            file.display()
        );
    };
    for (i, up) in ups.iter().enumerate() {
        run(&mut script, up, format!("up {}", i + 1));
    }
    for (i, down) in downs.iter().enumerate().rev() {
        run(&mut script, down, format!("down {}", i + 1));
    }
    let script_file = out.join("verify.sql");
    std::fs::write(&script_file, &script).unwrap();

    let db = fresh_database("xtask_realistic_steps");
    let output = crate::cmd::read(psql::psql(&db).args(["-A", "-t", "-f"]).arg(&script_file));
    let output = output.unwrap_or_else(|e| panic!("the history failed in {db}: {e}"));
    let states: Vec<(&str, &str)> = output
        .lines()
        .filter_map(|line| line.rsplit_once(' '))
        .collect();
    let state = |label: String| {
        states
            .iter()
            .find(|(found, _)| *found == label)
            .map(|(_, state)| *state)
            .unwrap_or_else(|| panic!("no state `{label}` in the output"))
    };
    assert_eq!(state("up 0".into()), EMPTY);
    // Newest first, as the downs ran: a broken down spoils every state after it.
    for (i, step) in steps.iter().enumerate().rev() {
        assert_eq!(
            state(format!("down {}", i + 1)),
            state(format!("up {i}")),
            "the down of migration {} ({}) does not give back the schema before its up:\n{}",
            i + 1,
            step.slug,
            step.down
        );
    }
    drop_database(&db);
    std::fs::remove_dir_all(&out).unwrap();
}

/// The two files the benchmark's baseline runs: `all.sql` applies, and
/// `all-down.sql` leaves an empty schema.
#[test]
fn all_sql_applies_and_all_down_sql_empties_the_schema() {
    let out = std::env::temp_dir().join(format!("xtask-realistic-all-{}", std::process::id()));
    let (fixture, _) = write(&out, TEST_ROWS).unwrap();
    let db = fresh_database("xtask_realistic_all");
    for file in [&fixture.all_up, &fixture.all_down] {
        crate::cmd::output(psql::psql(&db).arg("-f").arg(file))
            .unwrap_or_else(|e| panic!("{} failed in {db}: {e}", file.display()));
    }
    let state = psql::query(&db, &format!("CREATE SCHEMA xtask_verify;\n{STATE}"))
        .and_then(|_| psql::query(&db, "SELECT xtask_verify.state()"))
        .unwrap();
    assert_eq!(state.trim(), EMPTY);
    drop_database(&db);
    std::fs::remove_dir_all(&out).unwrap();
}
