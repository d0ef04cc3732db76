//! The migration engine against a real PostgreSQL, one throwaway database per test.

use std::path::Path;
use std::sync::Arc;

use migrate_core::{Database, DownTo, Error, Migrator, Settings, Source, UpOptions};
use testdb::TestDb;

fn write(dir: &Path, version: i64, slug: &str, up: &str, down: &str) {
    std::fs::write(dir.join(format!("{version}_{slug}.up.sql")), up).unwrap();
    std::fs::write(dir.join(format!("{version}_{slug}.down.sql")), down).unwrap();
}

fn three_migrations(dir: &Path) {
    write(
        dir,
        202501010000,
        "orgs",
        "CREATE TABLE orgs (id bigint PRIMARY KEY, name text NOT NULL);",
        "DROP TABLE orgs;",
    );
    write(
        dir,
        202501010100,
        "users",
        "CREATE TABLE users (id bigint PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs);\nCREATE INDEX users_org_id_idx ON users (org_id);",
        "DROP TABLE users;",
    );
    write(
        dir,
        202501010200,
        "seed_org",
        "INSERT INTO orgs VALUES (1, 'acme');",
        "DELETE FROM orgs WHERE id = 1;",
    );
}

/// A migrator whose statements give up on a lock after `lock_timeout` and
/// retry quickly, `max_attempts` times in all.
fn quick_retry_migrator(
    db: &TestDb,
    dir: &Path,
    lock_timeout_ms: u64,
    max_attempts: u32,
) -> Migrator {
    let settings = Settings {
        lock_timeout: std::time::Duration::from_millis(lock_timeout_ms),
        retry: migrate_core::RetryPolicy {
            max_attempts,
            initial_backoff: std::time::Duration::from_millis(20),
            max_backoff: std::time::Duration::from_millis(50),
            multiplier: 2.0,
        },
        ..Settings::default()
    };
    Migrator::new(
        "operational",
        Source::load(dir).unwrap(),
        Database::from_url(db.url()).unwrap(),
        settings,
    )
    .unwrap()
}

fn migrator(db: &TestDb, dir: &Path) -> Migrator {
    let source = Source::load(dir).unwrap();
    Migrator::new(
        "operational",
        source,
        Database::from_url(db.url()).unwrap(),
        Settings::default(),
    )
    .unwrap()
}

/// Writes 202501010000, which creates table `t`, and 202501010900, which
/// alters it; applies 202501010000, then the rest (with whatever the caller
/// wrote in between) while another session holds a lock on `t` for 600 ms,
/// with statements that give up on a lock after 100 ms and retry quickly and
/// often.
async fn apply_the_rest_while_t_is_locked(db: &TestDb, dir: &Path) -> migrate_core::RunReport {
    write(
        dir,
        202501010000,
        "t",
        "CREATE TABLE t (id bigint);",
        "DROP TABLE t;",
    );
    write(
        dir,
        202501010900,
        "t_c",
        "ALTER TABLE t ADD COLUMN c text;",
        "ALTER TABLE t DROP COLUMN c;",
    );
    let settings = Settings {
        lock_timeout: std::time::Duration::from_millis(100),
        retry: migrate_core::RetryPolicy {
            max_attempts: 20,
            initial_backoff: std::time::Duration::from_millis(50),
            max_backoff: std::time::Duration::from_millis(200),
            multiplier: 2.0,
        },
        ..Settings::default()
    };
    let migrator = Migrator::new(
        "operational",
        Source::load(dir).unwrap(),
        Database::from_url(db.url()).unwrap(),
        settings,
    )
    .unwrap();
    let first = UpOptions {
        to: Some(202501010000),
        ..UpOptions::default()
    };
    migrator.up(&first).await.unwrap();
    let blocker = db.connect().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE;")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        blocker.batch_execute("COMMIT").await.unwrap();
    });
    let report = migrator.up(&UpOptions::default()).await.unwrap();
    release.await.unwrap();
    report
}

async fn tables(db: &TestDb) -> Vec<String> {
    let client = db.connect().await;
    client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get(0))
        .collect()
}

async fn history(db: &TestDb) -> Vec<i64> {
    let client = db.connect().await;
    client
        .query(
            "SELECT version FROM dbops.operational_schema_history ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn apply_roll_back_and_apply_again() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    let migrator = migrator(&db, dir.path());

    let report = migrator.up(&UpOptions::default()).await.unwrap();
    assert_eq!(
        report
            .completed
            .iter()
            .map(|s| s.version)
            .collect::<Vec<_>>(),
        [202501010000, 202501010100, 202501010200]
    );
    assert_eq!(tables(&db).await, ["orgs", "users"]);
    assert!(
        migrator
            .up(&UpOptions::default())
            .await
            .unwrap()
            .completed
            .is_empty(),
        "a second up applies nothing"
    );

    let report = migrator.down(&DownTo::Steps(1).into()).await.unwrap();
    assert_eq!(report.completed[0].version, 202501010200);
    assert_eq!(history(&db).await, [202501010000, 202501010100]);

    migrator.down(&DownTo::Version(0).into()).await.unwrap();
    assert!(tables(&db).await.is_empty());
    assert!(history(&db).await.is_empty());

    migrator
        .up(&UpOptions {
            to: Some(202501010100),
            ..UpOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(history(&db).await, [202501010000, 202501010100]);
    migrator.up(&UpOptions::default()).await.unwrap();
    let status = migrator.status().await.unwrap();
    assert_eq!(status.schema_version, Some(202501010200));
    assert_eq!(status.applied, 3);
    assert!(status.pending.is_empty() && status.is_healthy());
}

#[tokio::test]
async fn eight_concurrent_runs_apply_each_migration_once() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    // Each migration appends to a log table, so a double apply would show.
    write(
        dir.path(),
        202501010000,
        "log",
        "CREATE TABLE applied_log (version bigint NOT NULL);",
        "DROP TABLE applied_log;",
    );
    for i in 1..=10 {
        let version = 202501010000 + i * 100;
        write(
            dir.path(),
            version,
            &format!("step_{i}"),
            &format!("INSERT INTO applied_log VALUES ({version}); SELECT pg_sleep(0.02);"),
            &format!("DELETE FROM applied_log WHERE version = {version};"),
        );
    }
    let migrator = Arc::new(migrator(&db, dir.path()));
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let migrator = Arc::clone(&migrator);
            tokio::spawn(async move { migrator.up(&UpOptions::default()).await })
        })
        .collect();
    let mut applied_by_runs = 0;
    for run in runs {
        applied_by_runs += run.await.unwrap().unwrap().completed.len();
    }
    assert_eq!(
        applied_by_runs, 11,
        "the runs together applied every migration exactly once"
    );
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT version) FROM applied_log",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (10, 10));
    assert_eq!(history(&db).await.len(), 11);
}

/// Most errors come without a position in the text (a violated constraint,
/// a relation that already exists, a `RAISE`): the failing statement is the
/// one after those the server completed, and the error names its first line
/// of code, not the comment above it or the top of the file.
#[tokio::test]
async fn an_error_without_a_position_names_the_line_of_its_statement() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010000,
        "dup",
        "-- the table\nCREATE TABLE t (id bigint PRIMARY KEY);\nINSERT INTO t VALUES (1);\n\n-- the duplicate\nINSERT INTO t VALUES (1);\nCREATE TABLE never (id bigint);",
        "DROP TABLE t;",
    );
    let migrator = migrator(&db, dir.path());
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    assert!(
        matches!(
            &error,
            Error::MigrationFailed { line: 6, column: 1, code: Some(code), .. } if code == "23505"
        ),
        "{error}"
    );
    std::fs::write(
        dir.path().join("202501010000_dup.up.sql"),
        "CREATE TABLE t (id bigint PRIMARY KEY);\n-- refused on purpose\nDO $$ BEGIN RAISE EXCEPTION 'not yet'; END $$;",
    )
    .unwrap();
    let migrator = self::migrator(&db, dir.path());
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    assert!(
        matches!(
            &error,
            Error::MigrationFailed {
                line: 3,
                column: 1,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("not yet"), "{error}");
    assert!(tables(&db).await.is_empty(), "nothing of it remains");
}

#[tokio::test]
async fn a_syntax_error_inside_a_transactional_migration_leaves_nothing_behind() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010000,
        "good",
        "CREATE TABLE good (id bigint);",
        "DROP TABLE good;",
    );
    write(
        dir.path(),
        202501010100,
        "bad",
        "CREATE TABLE half (id bigint);\nINSERT INTO half VALUES (1);\nCREATE TABLEE oops (id bigint);\nCREATE TABLE never (id bigint);",
        "DROP TABLE half;",
    );
    let migrator = migrator(&db, dir.path());
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    match &error {
        Error::MigrationFailed {
            version,
            line,
            file,
            applied_before,
            code,
            ..
        } => {
            assert_eq!(*version, 202501010100);
            assert_eq!(*line, 3, "the error points at the failing line: {error}");
            assert!(file.ends_with("202501010100_bad.up.sql"));
            assert_eq!(applied_before, &[202501010000]);
            assert_eq!(code.as_deref(), Some("42601"));
        }
        other => panic!("expected a migration failure, got {other:?}"),
    }
    assert_eq!(
        tables(&db).await,
        ["good"],
        "nothing of the failed migration remains"
    );
    assert_eq!(history(&db).await, [202501010000]);
    let status = migrator.status().await.unwrap();
    assert!(
        status.partial.is_empty(),
        "a transactional failure is not partial"
    );
    assert_eq!(status.last_outcome.unwrap().outcome, "failed");
}

#[tokio::test]
async fn drift_and_missing_files_are_refused() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    migrator(&db, dir.path())
        .up(&UpOptions::default())
        .await
        .unwrap();

    // Line endings alone are not drift.
    let users = dir.path().join("202501010100_users.up.sql");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, text.replace('\n', "\r\n")).unwrap();
    assert!(
        migrator(&db, dir.path())
            .status()
            .await
            .unwrap()
            .drifted
            .is_empty()
    );

    std::fs::write(&users, format!("{text}\n-- edited\n")).unwrap();
    let error = migrator(&db, dir.path())
        .up(&UpOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Drift { drifted } if drifted.len() == 1 && drifted[0].version == 202501010100)
    );
    assert!(
        error
            .to_string()
            .contains("202501010100_users.up.sql changed after it was applied"),
        "{error}"
    );
    std::fs::write(&users, &text).unwrap();

    std::fs::remove_file(dir.path().join("202501010200_seed_org.up.sql")).unwrap();
    std::fs::remove_file(dir.path().join("202501010200_seed_org.down.sql")).unwrap();
    let error = migrator(&db, dir.path())
        .up(&UpOptions::default())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("202501010200_seed_org: applied, but its file is missing"),
        "{error}"
    );
}

#[tokio::test]
async fn out_of_order_needs_consent() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010000,
        "a",
        "CREATE TABLE a (id bigint);",
        "DROP TABLE a;",
    );
    write(
        dir.path(),
        202501010200,
        "c",
        "CREATE TABLE c (id bigint);",
        "DROP TABLE c;",
    );
    migrator(&db, dir.path())
        .up(&UpOptions::default())
        .await
        .unwrap();
    write(
        dir.path(),
        202501010100,
        "b",
        "CREATE TABLE b (id bigint);",
        "DROP TABLE b;",
    );
    let error = migrator(&db, dir.path())
        .up(&UpOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::OutOfOrder {
                version: 202501010100,
                newest: 202501010200,
                ..
            }
        ),
        "{error:?}"
    );
    let report = migrator(&db, dir.path())
        .up(&UpOptions {
            allow_out_of_order: true,
            ..UpOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(report.completed[0].version, 202501010100);
    assert_eq!(
        history(&db).await,
        [202501010000, 202501010100, 202501010200]
    );
}

#[tokio::test]
async fn no_transaction_migrations_run_concurrently_safe_statements() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010000,
        "t",
        "CREATE TABLE t (id bigint, c text);",
        "DROP TABLE t;",
    );
    write(
        dir.path(),
        202501010100,
        "t_c_idx",
        "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY t_c_idx ON t (c);\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n",
        "-- dbops:no-transaction\nDROP INDEX CONCURRENTLY t_c_idx;\nDROP INDEX CONCURRENTLY t_id_idx;\n",
    );
    let migrator = migrator(&db, dir.path());
    migrator.up(&UpOptions::default()).await.unwrap();
    let client = db.connect().await;
    let indexes: i64 = client
        .query_one("SELECT count(*) FROM pg_indexes WHERE tablename = 't'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes, 2);
    migrator.down(&DownTo::Steps(1).into()).await.unwrap();
    let indexes: i64 = client
        .query_one("SELECT count(*) FROM pg_indexes WHERE tablename = 't'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes, 0);
}

#[tokio::test]
async fn a_failed_no_transaction_migration_is_partial_until_repaired() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010000,
        "t",
        "CREATE TABLE t (id bigint);\nINSERT INTO t VALUES (1), (1);",
        "DROP TABLE t;",
    );
    write(
        dir.path(),
        202501010100,
        "t_unique",
        "-- dbops:no-transaction\nCREATE TABLE side (id bigint);\nCREATE UNIQUE INDEX CONCURRENTLY t_id_key ON t (id);\n",
        "-- dbops:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t_id_key;\nDROP TABLE IF EXISTS side;\n",
    );
    write(
        dir.path(),
        202501010200,
        "later",
        "CREATE TABLE later (id bigint);",
        "DROP TABLE later;",
    );
    let migrator = migrator(&db, dir.path());
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::MigrationFailed {
                version: 202501010100,
                line: 3,
                ..
            }
        ),
        "{error}"
    );

    let status = migrator.status().await.unwrap();
    assert_eq!(status.partial.len(), 1);
    let partial = &status.partial[0];
    assert_eq!(
        (
            partial.version,
            partial.statements_done,
            partial.statements_total
        ),
        (202501010100, 1, 2)
    );
    assert!(
        partial
            .findings
            .iter()
            .any(|f| f.contains("invalid index public.t_id_key")),
        "{:?}",
        partial.findings
    );

    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    assert!(matches!(error, Error::Partial { .. }), "{error}");
    assert!(error.to_string().contains("repair"), "{error}");

    // The operator fixes the data and drops the invalid index, as the
    // runbook says, then reruns: the run goes on at the statement that
    // failed, and the table of statement 1 is not created again.
    let client = db.connect().await;
    client
        .batch_execute("DELETE FROM t; INSERT INTO t VALUES (1); DROP INDEX t_id_key;")
        .await
        .unwrap();
    let error = migrator
        .repair(202501010100, migrate_core::RepairAction::Rerun, " ")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("reason"), "{error}");
    migrator
        .repair(
            202501010100,
            migrate_core::RepairAction::Rerun,
            "duplicates removed in TICKET-1",
        )
        .await
        .unwrap();
    let status = migrator.status().await.unwrap();
    assert!(status.partial.is_empty());
    assert_eq!(history(&db).await, [202501010000, 202501010100]);
    // One run-log entry, the progress record of the first run, completed by the rerun.
    let entries = client
        .query(
            "SELECT outcome, statements_done FROM dbops.run_log WHERE version = 202501010100",
            &[],
        )
        .await
        .unwrap();
    let entries: Vec<(String, i32)> = entries.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(entries, [("succeeded".to_string(), 2)]);
    migrator.up(&UpOptions::default()).await.unwrap();
    assert_eq!(
        history(&db).await,
        [202501010000, 202501010100, 202501010200]
    );
}

#[tokio::test]
async fn lock_timeout_reports_the_holder() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010000,
        "a",
        "CREATE TABLE a (id bigint);",
        "DROP TABLE a;",
    );
    let source = Source::load(dir.path()).unwrap();
    let settings = Settings {
        lock_wait: std::time::Duration::from_millis(300),
        ..Settings::default()
    };
    let migrator = Migrator::new(
        "operational",
        source,
        Database::from_url(db.url()).unwrap(),
        settings,
    )
    .unwrap();
    migrator.status().await.unwrap();
    // Take the target's lock the way another dbops run would.
    migrator.up(&UpOptions::default()).await.unwrap();
    let holder = db.connect().await;
    holder
        .batch_execute("SET application_name = 'other-runner'")
        .await
        .unwrap();
    // The holder's last query carries a secret, which no message may show.
    holder
        .batch_execute("SELECT 'Canary-Secret-1' AS password")
        .await
        .unwrap();
    let key: i64 = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(b"dbops migrate dbops.operational_schema_history");
        i64::from_be_bytes(digest[..8].try_into().unwrap())
    };
    holder
        .query_one("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .unwrap();
    let error = migrator.down(&DownTo::Steps(1).into()).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::LockTimeout { .. }), "{message}");
    assert!(message.contains("other-runner"), "{message}");
    assert!(!message.contains("Canary"), "{message}");
    holder
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .unwrap();
    migrator.down(&DownTo::Steps(1).into()).await.unwrap();
}

#[tokio::test]
async fn lock_timeouts_on_statements_are_retried() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    // A long transaction holds a lock on t; the ALTER must wait, time out, and retry until it is gone.
    let report = apply_the_rest_while_t_is_locked(&db, dir.path()).await;
    assert_eq!(report.completed.len(), 1);
    assert!(
        report.completed[0].attempts > 1,
        "the statement was retried: {:?}",
        report.completed[0]
    );
}

#[tokio::test]
async fn a_final_lock_timeout_names_the_blocker_and_the_attempts() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010000,
        "t",
        "CREATE TABLE t (id bigint);",
        "DROP TABLE t;",
    );
    write(
        dir.path(),
        202501010100,
        "t_c",
        "ALTER TABLE t ADD COLUMN c text;",
        "ALTER TABLE t DROP COLUMN c;",
    );
    let migrator = quick_retry_migrator(&db, dir.path(), 300, 3);
    migrator
        .up(&UpOptions {
            to: Some(202501010000),
            ..UpOptions::default()
        })
        .await
        .unwrap();
    let blocker = db.connect().await;
    blocker
        .batch_execute(
            "SET application_name = 'long-report'; BEGIN; LOCK TABLE t IN ACCESS SHARE MODE; SELECT 'Canary-Secret-2';",
        )
        .await
        .unwrap();
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::MigrationFailed {
                version: 202501010100,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("after 3 attempt(s)"), "{message}");
    assert!(message.contains("long-report"), "{message}");
    assert!(!message.contains("Canary"), "{message}");
    blocker.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn a_rollback_of_zero_steps_and_an_oversized_actor_are_refused_before_anything_runs() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    let error = migrator(&db, dir.path())
        .with_audit(migrate_core::AuditSettings {
            actor: "a".repeat(300),
            metadata: serde_json::Map::new(),
        })
        .up(&UpOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Config { .. }) && error.to_string().contains("1 to 200"),
        "{error}"
    );
    assert!(tables(&db).await.is_empty());
    let migrator = migrator(&db, dir.path());
    migrator.up(&UpOptions::default()).await.unwrap();
    let error = migrator.down(&DownTo::Steps(0).into()).await.unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error}");
    assert_eq!(history(&db).await.len(), 3);
}

#[tokio::test]
async fn a_no_transaction_migration_whose_lock_waits_keep_giving_up_is_partial_with_its_error() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010000,
        "t",
        "CREATE TABLE t (id bigint);",
        "DROP TABLE t;",
    );
    write(
        dir.path(),
        202501010100,
        "t_idx",
        "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n",
        "-- dbops:no-transaction\nDROP INDEX CONCURRENTLY t_id_idx;\n",
    );
    let migrator = quick_retry_migrator(&db, dir.path(), 100, 2);
    migrator
        .up(&UpOptions {
            to: Some(202501010000),
            ..UpOptions::default()
        })
        .await
        .unwrap();
    let blocker = db.connect().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    assert!(error.to_string().contains("after 2 attempt(s)"), "{error}");
    blocker.batch_execute("ROLLBACK").await.unwrap();
    let status = migrator.status().await.unwrap();
    assert_eq!(status.partial.len(), 1, "{status:?}");
    let error = status.partial[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("after 2 attempt(s)"), "{error}");
}

#[tokio::test]
async fn plan_hash_covers_versions_and_checksums() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    let plan = migrator(&db, dir.path())
        .plan_up(&UpOptions::default())
        .await
        .unwrap();
    assert_eq!(plan.steps.len(), 3);
    assert_eq!(plan.hash.len(), 64);
    assert!(tables(&db).await.is_empty(), "planning changes nothing");
    std::fs::write(
        dir.path().join("202501010200_seed_org.up.sql"),
        "INSERT INTO orgs VALUES (2, 'other');",
    )
    .unwrap();
    let changed = migrator(&db, dir.path())
        .plan_up(&UpOptions::default())
        .await
        .unwrap();
    assert_ne!(plan.hash, changed.hash);
}

// Within a run, each migration's COMMIT goes out with the next migration's
// batch (Session::hand_off). The tests below fail that shared round trip in
// each of its parts.

#[tokio::test]
async fn a_migration_whose_commit_fails_is_rolled_back_and_the_next_one_never_runs() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    // The deferred foreign key is checked at COMMIT, which fails.
    write(
        dir.path(),
        202501010000,
        "deferred",
        "CREATE TABLE p (id bigint PRIMARY KEY);\nCREATE TABLE c (p_id bigint REFERENCES p DEFERRABLE INITIALLY DEFERRED);\nINSERT INTO c VALUES (1);",
        "DROP TABLE c; DROP TABLE p;",
    );
    write(
        dir.path(),
        202501010100,
        "next",
        "CREATE TABLE next (id bigint);",
        "DROP TABLE next;",
    );
    let error = migrator(&db, dir.path())
        .up(&UpOptions::default())
        .await
        .unwrap_err();
    match &error {
        Error::MigrationFailed {
            version,
            code,
            applied_before,
            ..
        } => {
            assert_eq!(*version, 202501010000, "{error}");
            assert_eq!(code.as_deref(), Some("23503"), "{error}");
            assert!(applied_before.is_empty(), "{error}");
        }
        other => panic!("expected the first migration to fail, got {other:?}"),
    }
    assert!(tables(&db).await.is_empty(), "nothing was applied");
    assert!(history(&db).await.is_empty());
}

#[tokio::test]
async fn a_migration_whose_audit_entry_fails_is_rolled_back_and_the_next_one_never_runs() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    let migrator = migrator(&db, dir.path()).with_audit(migrate_core::AuditSettings {
        actor: "test".into(),
        metadata: serde_json::Map::new(),
    });
    migrator.prepare_database().await.unwrap();
    db.connect()
        .await
        .batch_execute(
            // In dbops's schema: an object in public would make the first
            // run refuse to start a history over it.
            "CREATE FUNCTION dbops.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no entry for %', NEW.target_id; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON dbops.audit_log FOR EACH ROW
                 WHEN (NEW.target_id = '202501010100') EXECUTE FUNCTION dbops.refuse();",
        )
        .await
        .unwrap();
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    let message = format!("{error}");
    assert!(
        message.contains("writing the audit entry of migration 202501010100"),
        "{message}"
    );
    assert_eq!(history(&db).await, [202501010000], "only the first applied");
    assert_eq!(tables(&db).await, ["orgs"]);
}

#[tokio::test]
async fn lock_timeouts_of_a_migration_after_another_are_retried() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        202501010100,
        "u",
        "CREATE TABLE u (id bigint);",
        "DROP TABLE u;",
    );
    // `u` commits with the ALTER's first batch, which times out on the lock.
    let report = apply_the_rest_while_t_is_locked(&db, dir.path()).await;
    let versions: Vec<i64> = report.completed.iter().map(|c| c.version).collect();
    assert_eq!(versions, [202501010100, 202501010900]);
    assert_eq!(report.completed[0].attempts, 1);
    assert!(
        report.completed[1].attempts > 1,
        "{:?}",
        report.completed[1]
    );
    assert_eq!(
        history(&db).await,
        [202501010000, 202501010100, 202501010900]
    );
}
