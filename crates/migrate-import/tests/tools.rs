//! Importing each tool's migrations, against a real PostgreSQL: a small
//! history in the tool's real layout, a database the tool built with its
//! history table, and the import: conversion, mapping, the applied ones
//! read from the tool's table, and dbops's verified baseline up to them.
//!
//! dbmate is run for real (installed from npm into `target/`, from
//! `tests/tools/package.json`). The other tools do not install here from a
//! package registry that this test can use offline, so their history tables
//! are created with the DDL their own source code runs (quoted in each
//! tool's module doc and below) and filled as they fill them.

use std::path::{Path, PathBuf};

use migrate_core::{BaselineOptions, Database, Migrator, Settings, Source, UpOptions};
use migrate_import::{Error, Tool, convert, read_history};
use testdb::TestDb;

const USERS: &str = "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);";
const INDEX: &str = "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);";
const NAME: &str = "ALTER TABLE users ADD COLUMN name text;";
/// What the tool applied: the first two migrations.
const APPLIED: &str = "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
                       CREATE INDEX users_email_idx ON users (email);";

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

async fn run_sql(db: &TestDb, sql: &str) {
    db.connect().await.batch_execute(sql).await.unwrap();
}

/// Converts `source` into a fresh dbops folder, checks the mapping, reads
/// the tool's history from `db`, and baselines up to the newest applied
/// migration (which must be `applied`); then `up` applies the rest.
async fn import(
    tool: Tool,
    source: &Path,
    db: &TestDb,
    mapping: &[(&str, i64, &str)],
    applied: i64,
) -> PathBuf {
    let conversion = convert(tool, source).unwrap();
    let got: Vec<(&str, i64, &str)> = conversion
        .migrations
        .iter()
        .map(|m| (m.old.version.as_str(), m.version, m.rule.name()))
        .collect();
    assert_eq!(got, mapping, "{}", tool.name());
    let target = source.parent().unwrap().join("dbops");
    let written = conversion.write(&target).unwrap();
    assert_eq!(written.created, mapping.len() * 2 + 1);
    // Written again: nothing changes.
    let again = convert(tool, source).unwrap().write(&target).unwrap();
    assert_eq!((again.created, again.unchanged), (0, written.created));
    let mapping_file = std::fs::read_to_string(&written.mapping).unwrap();
    assert!(
        mapping_file.contains(&format!("| {} |", mapping[0].1)),
        "{mapping_file}"
    );

    let client = db.connect().await;
    let history = read_history(tool, &client, None).await.unwrap();
    assert_eq!(conversion.last_applied(&history).unwrap(), Some(applied));
    let migrator = Migrator::new(
        "operational",
        Source::load(&target).unwrap(),
        Database::from_url(db.url()).unwrap(),
        Settings::default(),
    )
    .unwrap();
    let report = migrator
        .baseline(&BaselineOptions {
            to: applied,
            scratch: None,
            accept_differences: false,
            // The tool's own table is in the live database only.
            ignore_tables: vec![format!("public.{}", tool.history_table())],
        })
        .await
        .unwrap_or_else(|e| panic!("{}: {}", tool.name(), migrate_core::error_chain(&e)));
    assert!(report.differences.is_empty());
    let run = migrator.up(&UpOptions::default()).await.unwrap();
    assert_eq!(
        run.completed.len(),
        1,
        "the pending migration applies on top"
    );
    target
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn golang_migrate() {
    let (db, dir) = (TestDb::new().await, tempfile::tempdir().unwrap());
    let source = dir.path().join("migrations");
    write(
        &source,
        &[
            ("000001_create_users.up.sql", USERS),
            ("000001_create_users.down.sql", "DROP TABLE users;"),
            (
                "000002_index_email.up.sql",
                "CREATE INDEX users_email_idx ON users (email);",
            ),
            ("000002_index_email.down.sql", "DROP INDEX users_email_idx;"),
            ("000003_add_name.up.sql", NAME),
            (
                "000003_add_name.down.sql",
                "ALTER TABLE users DROP COLUMN name;",
            ),
        ],
    );
    // golang-migrate's postgres driver (database/postgres/postgres.go, ensureVersionTable).
    run_sql(
        &db,
        &format!(
            "{APPLIED}
             CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null);
             INSERT INTO schema_migrations (version, dirty) VALUES (2, false);"
        ),
    )
    .await;
    let target = import(
        Tool::GolangMigrate,
        &source,
        &db,
        &[
            ("1", 200001010001, "sequence"),
            ("2", 200001010002, "sequence"),
            ("3", 200001010003, "sequence"),
        ],
        200001010002,
    )
    .await;
    assert!(target.join("200001010003_add_name.down.sql").is_file());

    // A dirty version refuses the import.
    run_sql(&db, "UPDATE schema_migrations SET dirty = true").await;
    let error = read_history(Tool::GolangMigrate, &db.connect().await, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Dirty { ref version, .. } if version == "2"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("finish or undo it with golang-migrate first")
    );
}

#[tokio::test]
async fn goose() {
    let (db, dir) = (TestDb::new().await, tempfile::tempdir().unwrap());
    let source = dir.path().join("migrations");
    write(
        &source,
        &[
            (
                "20240105093000_create_users.sql",
                "-- Users.\n-- +goose Up\n-- +goose StatementBegin\n\
                 CREATE FUNCTION one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;\n\
                 -- +goose StatementEnd\n\
                 CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n\n\
                 -- +goose Down\nDROP TABLE users;\nDROP FUNCTION one();\n",
            ),
            (
                "20240105093015_index_email.sql",
                &format!("-- +goose NO TRANSACTION\n-- +goose Up\n{INDEX}\n-- +goose Down\n"),
            ),
            (
                "20240106100000_add_name.sql",
                &format!(
                    "-- +goose Up\n{NAME}\n-- +goose Down\nALTER TABLE users DROP COLUMN name;\n"
                ),
            ),
        ],
    );
    // goose's postgres dialect (internal/dialect/dialectquery/postgres.go,
    // CreateTable), with its initial version-0 row; the third migration was
    // applied and rolled back.
    run_sql(
        &db,
        &format!(
            "{APPLIED}
             CREATE FUNCTION one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;
             CREATE TABLE goose_db_version (
                 id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
                 version_id bigint NOT NULL,
                 is_applied boolean NOT NULL,
                 tstamp timestamp NOT NULL DEFAULT now()
             );
             INSERT INTO goose_db_version (version_id, is_applied) VALUES
                 (0, true), (20240105093000, true), (20240105093015, true),
                 (20240106100000, true), (20240106100000, false);"
        ),
    )
    .await;
    let target = import(
        Tool::Goose,
        &source,
        &db,
        &[
            ("20240105093000", 202401050930, "timestamp"),
            ("20240105093015", 202401050931, "next-minute"),
            ("20240106100000", 202401061000, "timestamp"),
        ],
        202401050931,
    )
    .await;
    let index = read(&target.join("202401050931_index_email.up.sql"));
    assert!(index.starts_with("-- dbops:no-transaction\n"), "{index}");
    let down = read(&target.join("202401050931_index_email.down.sql"));
    assert!(down.contains("-- dbops:empty"), "{down}");
    let users = read(&target.join("202401050930_create_users.up.sql"));
    assert!(!users.contains("+goose"), "{users}");

    // A gap: the second migration rolled back, the first and third applied.
    run_sql(
        &db,
        "INSERT INTO goose_db_version (version_id, is_applied) VALUES (20240105093015, false), (20240106100000, true)",
    )
    .await;
    let history = read_history(Tool::Goose, &db.connect().await, None)
        .await
        .unwrap();
    let error = convert(Tool::Goose, &source)
        .unwrap()
        .last_applied(&history)
        .unwrap_err();
    assert!(matches!(error, Error::Gap { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("not the older 20240105093015 (index_email)"),
        "{error}"
    );
}

#[tokio::test]
async fn sqlx() {
    let (db, dir) = (TestDb::new().await, tempfile::tempdir().unwrap());
    let source = dir.path().join("migrations");
    write(
        &source,
        &[
            ("20240201120000_create_users.sql", USERS),
            (
                "20240201120100_index_email.up.sql",
                &format!("-- no-transaction\n{INDEX}"),
            ),
            (
                "20240201120100_index_email.down.sql",
                "-- no-transaction\nDROP INDEX CONCURRENTLY users_email_idx;",
            ),
            ("20240201120200_add_name.up.sql", NAME),
            (
                "20240201120200_add_name.down.sql",
                "ALTER TABLE users DROP COLUMN name;",
            ),
        ],
    );
    // sqlx-postgres/src/migrate.rs, ensure_migrations_table.
    run_sql(
        &db,
        &format!(
            "{APPLIED}
             CREATE TABLE IF NOT EXISTS _sqlx_migrations (
                 version BIGINT PRIMARY KEY,
                 description TEXT NOT NULL,
                 installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
                 success BOOLEAN NOT NULL,
                 checksum BYTEA NOT NULL,
                 execution_time BIGINT NOT NULL
             );
             INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES
                 (20240201120000, 'create users', true, '\\x00', 1),
                 (20240201120100, 'index email', true, '\\x00', 1);"
        ),
    )
    .await;
    let target = import(
        Tool::Sqlx,
        &source,
        &db,
        &[
            ("20240201120000", 202402011200, "timestamp"),
            ("20240201120100", 202402011201, "timestamp"),
            ("20240201120200", 202402011202, "timestamp"),
        ],
        202402011201,
    )
    .await;
    for side in ["up", "down"] {
        let text = read(&target.join(format!("202402011201_index_email.{side}.sql")));
        assert!(text.starts_with("-- dbops:no-transaction\n"), "{text}");
    }
    // A simple (irreversible) migration's down refuses to run.
    let down = read(&target.join("202402011200_create_users.down.sql"));
    assert!(down.contains("RAISE EXCEPTION"), "{down}");

    run_sql(
        &db,
        "UPDATE _sqlx_migrations SET success = false WHERE version = 20240201120100",
    )
    .await;
    let error = read_history(Tool::Sqlx, &db.connect().await, None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Dirty { .. }), "{error}");
}

/// The function of diesel's initial setup migration (a function body is
/// compared as written, whitespace included).
const DIESEL_SETUP: &str =
    "CREATE OR REPLACE FUNCTION diesel_set_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := current_timestamp;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
";

#[tokio::test]
async fn diesel() {
    let (db, dir) = (TestDb::new().await, tempfile::tempdir().unwrap());
    let source = dir.path().join("migrations");
    write(
        &source,
        &[
            (".keep", ""),
            ("00000000000000_diesel_initial_setup/up.sql", DIESEL_SETUP),
            (
                "00000000000000_diesel_initial_setup/down.sql",
                "DROP FUNCTION IF EXISTS diesel_set_updated_at();\n",
            ),
            ("2024-03-01-080000_create_users/up.sql", USERS),
            (
                "2024-03-01-080000_create_users/down.sql",
                "DROP TABLE users;",
            ),
            ("2024-03-01-081500_index_email/up.sql", INDEX),
            (
                "2024-03-01-081500_index_email/down.sql",
                "DROP INDEX CONCURRENTLY users_email_idx;",
            ),
            (
                "2024-03-01-081500_index_email/metadata.toml",
                "run_in_transaction = false\n",
            ),
            ("2024-03-02-090000_add_name/up.sql", NAME),
            (
                "2024-03-02-090000_add_name/down.sql",
                "ALTER TABLE users DROP COLUMN name;",
            ),
        ],
    );
    // diesel_migrations (migration_harness.rs, CREATE_MIGRATIONS_TABLE), with
    // versions as diesel records them: the folder's prefix without dashes.
    run_sql(
        &db,
        &format!(
            "{APPLIED}
             {DIESEL_SETUP}
             CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
                 version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
             );
             INSERT INTO __diesel_schema_migrations (version) VALUES
                 ('00000000000000'), ('20240301080000'), ('20240301081500');"
        ),
    )
    .await;
    let target = import(
        Tool::Diesel,
        &source,
        &db,
        &[
            ("00000000000000", 200001010000, "sequence"),
            ("20240301080000", 202403010800, "timestamp"),
            ("20240301081500", 202403010815, "timestamp"),
            ("20240302090000", 202403020900, "timestamp"),
        ],
        202403010815,
    )
    .await;
    let index = read(&target.join("202403010815_index_email.up.sql"));
    assert!(index.starts_with("-- dbops:no-transaction\n"), "{index}");

    // A version the folder does not have.
    run_sql(
        &db,
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('20230101000000')",
    )
    .await;
    let history = read_history(Tool::Diesel, &db.connect().await, None)
        .await
        .unwrap();
    let error = convert(Tool::Diesel, &source)
        .unwrap()
        .last_applied(&history)
        .unwrap_err();
    assert!(
        matches!(error, Error::UnknownApplied { ref version, .. } if version == "20230101000000"),
        "{error}"
    );
}

/// dbmate from npm, in `target/npm-dbmate`; `None` (with a message) when
/// npm cannot install it here.
fn dbmate() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/npm-dbmate");
    let binary = root.join("node_modules/.bin/dbmate");
    if binary.is_file() {
        return Some(binary);
    }
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/package.json"),
        root.join("package.json"),
    )
    .unwrap();
    let installed = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund"])
        .current_dir(&root)
        .status();
    match installed {
        Ok(status) if status.success() && binary.is_file() => Some(binary),
        other => {
            eprintln!(
                "SKIPPED: dbmate could not be installed from npm ({other:?}); the dbmate import is untested here"
            );
            None
        }
    }
}

#[tokio::test]
async fn dbmate_run_for_real() {
    let Some(dbmate) = dbmate() else {
        return;
    };
    let (db, dir) = (TestDb::new().await, tempfile::tempdir().unwrap());
    let source = dir.path().join("migrations");
    write(
        &source,
        &[
            (
                "20240401000000_create_users.sql",
                &format!("-- migrate:up\n{USERS}\n\n-- migrate:down\nDROP TABLE users;\n"),
            ),
            (
                "20240401000001_index_email.sql",
                &format!(
                    "-- migrate:up transaction:false\n{INDEX}\n\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY users_email_idx;\n"
                ),
            ),
        ],
    );
    let status = std::process::Command::new(&dbmate)
        .args(["--no-dump-schema", "--migrations-dir"])
        .arg(&source)
        .args(["--url", &format!("{}?sslmode=disable", db.url()), "up"])
        .status()
        .unwrap();
    assert!(status.success(), "dbmate up");
    write(
        &source,
        &[(
            "20240402000000_add_name.sql",
            &format!("-- migrate:up\n{NAME}\n"),
        )],
    );
    let target = import(
        Tool::Dbmate,
        &source,
        &db,
        &[
            ("20240401000000", 202404010000, "timestamp"),
            ("20240401000001", 202404010001, "next-minute"),
            ("20240402000000", 202404020000, "timestamp"),
        ],
        202404010001,
    )
    .await;
    for side in ["up", "down"] {
        let text = read(&target.join(format!("202404010001_index_email.{side}.sql")));
        assert!(text.starts_with("-- dbops:no-transaction\n"), "{text}");
    }
    // No down section: the down migration refuses to run.
    let down = read(&target.join("202404020000_add_name.down.sql"));
    assert!(down.contains("RAISE EXCEPTION"), "{down}");
}

#[tokio::test]
async fn refinery() {
    let (db, dir) = (TestDb::new().await, tempfile::tempdir().unwrap());
    let source = dir.path().join("migrations");
    write(
        &source,
        &[
            ("V1__create_users.sql", USERS),
            (
                "nested/V2__index_email.sql",
                "CREATE INDEX users_email_idx ON users (email);",
            ),
            ("V3__add_name.sql", NAME),
        ],
    );
    // refinery-core (traits/mod.rs, ASSERT_MIGRATIONS_TABLE_QUERY, int4 versions).
    run_sql(
        &db,
        &format!(
            "{APPLIED}
             CREATE TABLE IF NOT EXISTS refinery_schema_history(
                 version int4 PRIMARY KEY,
                 name VARCHAR(255),
                 applied_on VARCHAR(255),
                 checksum VARCHAR(255));
             INSERT INTO refinery_schema_history VALUES
                 (1, 'create_users', '2024-05-01T00:00:00Z', '1'),
                 (2, 'index_email', '2024-05-01T00:00:00Z', '2');"
        ),
    )
    .await;
    import(
        Tool::Refinery,
        &source,
        &db,
        &[
            ("1", 200001010001, "sequence"),
            ("2", 200001010002, "sequence"),
            ("3", 200001010003, "sequence"),
        ],
        200001010002,
    )
    .await;
}

#[tokio::test]
async fn flyway() {
    let (db, dir) = (TestDb::new().await, tempfile::tempdir().unwrap());
    let source = dir.path().join("migrations");
    write(
        &source,
        &[
            ("V1__Create_users.sql", USERS),
            ("V1_1__Index_email.sql", INDEX),
            ("V1_1__Index_email.sql.conf", "executeInTransaction=false\n"),
            (
                "U1_1__Index_email.sql",
                "DROP INDEX CONCURRENTLY users_email_idx;",
            ),
            ("V2__Add_name.sql", NAME),
        ],
    );
    // Flyway's PostgreSQL createMetaDataTable.sql, and its rows for a
    // migration run: the schema marker, then each versioned script.
    run_sql(
        &db,
        &format!(
            "{APPLIED}
             CREATE TABLE flyway_schema_history (
                 installed_rank INT NOT NULL,
                 version VARCHAR(50),
                 description VARCHAR(200) NOT NULL,
                 type VARCHAR(20) NOT NULL,
                 script VARCHAR(1000) NOT NULL,
                 checksum INTEGER,
                 installed_by VARCHAR(100) NOT NULL,
                 installed_on TIMESTAMP NOT NULL DEFAULT now(),
                 execution_time INTEGER NOT NULL,
                 success BOOLEAN NOT NULL
             );
             ALTER TABLE flyway_schema_history ADD CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank);
             CREATE INDEX flyway_schema_history_s_idx ON flyway_schema_history (success);
             INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES
                 (1, '1', 'Create users', 'SQL', 'V1__Create_users.sql', 1, 'flyway', 5, true),
                 (2, '1.1', 'Index email', 'SQL', 'V1_1__Index_email.sql', 2, 'flyway', 5, true);"
        ),
    )
    .await;
    let target = import(
        Tool::Flyway,
        &source,
        &db,
        &[
            ("1", 200001010001, "sequence"),
            ("1.1", 200001010002, "next-minute"),
            ("2", 200001010003, "next-minute"),
        ],
        200001010002,
    )
    .await;
    let down = read(&target.join("200001010002_index_email.down.sql"));
    assert!(down.starts_with("-- dbops:no-transaction\n"), "{down}");
    assert!(down.contains("DROP INDEX CONCURRENTLY"), "{down}");

    // A failed migration refuses the import.
    run_sql(
        &db,
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
         VALUES (3, '2', 'Add name', 'SQL', 'V2__Add_name.sql', 3, 'flyway', 5, false)",
    )
    .await;
    let error = read_history(Tool::Flyway, &db.connect().await, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Dirty { ref version, .. } if version == "2"),
        "{error}"
    );

    // Repeatable migrations are refused, naming them.
    write(&source, &[("R__Refresh_views.sql", "SELECT 1;")]);
    let error = convert(Tool::Flyway, &source).unwrap_err();
    assert!(
        matches!(error, Error::Unsupported { ref path, .. } if path.ends_with("R__Refresh_views.sql")),
        "{error}"
    );
    assert!(error.to_string().contains("dbops has none"), "{error}");
}

#[tokio::test]
async fn a_history_table_of_another_name_is_read_when_named() {
    let db = TestDb::new().await;
    // goose run with `-table app.goose_versions`.
    run_sql(
        &db,
        "CREATE SCHEMA app;
         CREATE TABLE app.goose_versions (
             id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
             version_id bigint NOT NULL,
             is_applied boolean NOT NULL,
             tstamp timestamp NOT NULL DEFAULT now()
         );
         INSERT INTO app.goose_versions (version_id, is_applied) VALUES (0, true), (1, true);",
    )
    .await;
    let client = db.connect().await;
    let history = read_history(Tool::Goose, &client, Some("app.goose_versions"))
        .await
        .unwrap();
    assert_eq!(history.table, "app.goose_versions");
    assert!(!history.is_empty());
    let error = read_history(Tool::Goose, &client, None).await.unwrap_err();
    assert!(matches!(error, Error::NoHistoryTable { .. }), "{error}");
    for bad in [
        "app.goose versions",
        "a.b.c",
        "1table",
        "x;DROP TABLE y",
        "",
    ] {
        let error = read_history(Tool::Goose, &client, Some(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidTableName { .. }),
            "{bad}: {error}"
        );
    }
}

#[tokio::test]
async fn a_history_table_that_is_not_the_tools_is_refused() {
    let db = TestDb::new().await;
    // A dbmate-named table holding something that is not a version.
    run_sql(
        &db,
        "CREATE TABLE schema_migrations (version varchar(128) primary key);
         INSERT INTO schema_migrations VALUES ('20240101_oops');",
    )
    .await;
    let client = db.connect().await;
    let error = read_history(Tool::Dbmate, &client, None).await.unwrap_err();
    assert!(
        matches!(error, Error::BadHistoryValue { ref value, .. } if value == "20240101_oops"),
        "{error}"
    );
    // The same table read as golang-migrate's: its columns are not there.
    let error = read_history(Tool::GolangMigrate, &client, None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Database { .. }), "{error}");
    assert!(
        error.to_string().contains("reading schema_migrations"),
        "{error}"
    );
}

#[tokio::test]
async fn a_missing_history_table_is_named() {
    let db = TestDb::new().await;
    for tool in Tool::ALL {
        let error = read_history(tool, &db.connect().await, None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::NoHistoryTable { ref table, .. } if table == tool.history_table()),
            "{error}"
        );
    }
}

/// The error of converting a folder holding `files` as `tool`.
fn refused(tool: Tool, files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    convert(tool, dir.path()).unwrap_err().to_string()
}

#[test]
fn folders_a_tool_would_not_run_are_refused_naming_the_file() {
    for (tool, files, expected) in [
        (
            Tool::Goose,
            &[("00001_a.go", "package x")][..],
            "00001_a.go: cannot be imported from goose: a Go migration",
        ),
        (
            Tool::Goose,
            &[("00001_a.sql", "SELECT 1;")],
            "00001_a.sql:1: not a valid goose migration: SQL before `-- +goose Up`",
        ),
        (
            Tool::Goose,
            &[("00001_a.sql", "-- nothing\n")],
            "no `-- +goose Up` annotation",
        ),
        (
            Tool::Goose,
            &[("00001_a.sql", "-- +goose Up\n-- +goose ENVSUB ON\n")],
            "00001_a.sql:2: not a valid goose migration: `-- +goose ENVSUB`",
        ),
        (
            Tool::Goose,
            &[("00001_a.sql", "-- +goose Up\n-- +goose Sideways\n")],
            "unknown annotation `-- +goose SIDEWAYS`",
        ),
        (
            Tool::Goose,
            &[
                ("1_a.sql", "-- +goose Up\n"),
                ("01_b.sql", "-- +goose Up\n"),
            ],
            "version 1 is used twice",
        ),
        (
            Tool::Dbmate,
            &[("1_a.sql", "-- migrate:up transaction:maybe\n")],
            "1_a.sql:1: not a valid dbmate migration: unknown option `transaction:maybe`",
        ),
        (
            Tool::Dbmate,
            &[("1_a.sql", "-- migrate:down\n")],
            "no `-- migrate:up` section",
        ),
        (
            Tool::Dbmate,
            &[("a.sql", "")],
            "a.sql: cannot be imported from dbmate",
        ),
        (
            Tool::Sqlx,
            &[("1_a.up.sql", "SELECT 1;")],
            "1_a.up.sql: not a valid sqlx migration: no .down.sql beside it",
        ),
        (
            Tool::Sqlx,
            &[("1_a.sql", "SELECT 1;"), ("1_a.down.sql", "SELECT 1;")],
            "1_a.sql: not a valid sqlx migration: the version also has a reversible",
        ),
        (
            Tool::GolangMigrate,
            &[("1_a.down.sql", "SELECT 1;")],
            "a down migration without its up migration",
        ),
        (
            Tool::GolangMigrate,
            &[("1_a.sql", "SELECT 1;")],
            "1_a.sql: cannot be imported from golang-migrate",
        ),
        (
            Tool::Diesel,
            &[("2024_a/down.sql", "SELECT 1;")],
            "2024_a: not a valid diesel migration: no up.sql in it",
        ),
        (
            Tool::Diesel,
            &[("schema.rs", "")],
            "schema.rs: cannot be imported from diesel",
        ),
        (
            Tool::Refinery,
            &[("V1__a.rs", "")],
            "V1__a.rs: cannot be imported from refinery: a Rust migration",
        ),
        (
            Tool::Refinery,
            &[("V1_a.sql", "")],
            "V1_a.sql: cannot be imported from refinery",
        ),
        (
            Tool::Flyway,
            &[("U1__a.sql", "SELECT 1;")],
            "U1__a.sql: not a valid flyway migration: an undo migration without",
        ),
        (
            Tool::Flyway,
            &[("B1__a.sql", "SELECT 1;")],
            "baseline migrations (B) and callbacks",
        ),
        (
            Tool::Flyway,
            &[("V1.x__a.sql", "SELECT 1;")],
            "the version \"1.x\" is not numbers",
        ),
        (
            Tool::Flyway,
            &[("README.md", "notes")],
            "holds no flyway migration",
        ),
    ] {
        let error = refused(tool, files);
        assert!(
            error.contains(expected),
            "{}: {error}\nexpected: {expected}",
            tool.name()
        );
    }
}

#[test]
fn a_missing_folder_is_named() {
    let error = convert(Tool::Goose, Path::new("/nonexistent/migrations")).unwrap_err();
    assert!(
        matches!(error, Error::ReadDir { ref path, .. } if path == Path::new("/nonexistent/migrations")),
        "{error}"
    );
}

#[test]
fn a_written_file_that_was_edited_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("old");
    write(&source, &[("V1__a.sql", "SELECT 1;")]);
    let target = dir.path().join("new");
    let conversion = convert(Tool::Refinery, &source).unwrap();
    conversion.write(&target).unwrap();
    let up = target.join("200001010001_a.up.sql");
    std::fs::write(&up, "SELECT 2;").unwrap();
    let error = conversion.write(&target).unwrap_err();
    assert!(
        matches!(error, Error::Conflict { ref path } if *path == up),
        "{error}"
    );
    assert_eq!(read(&up), "SELECT 2;");
}
