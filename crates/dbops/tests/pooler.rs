//! The real `dbops` binary through a real PgBouncer: session pooling works,
//! transaction pooling is refused (exit 22) before anything changes, and no
//! advisory lock is left behind either way.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::{PgBouncer, PoolMode, TestDb};

mod support;

const PEPPER: &str = "a test pepper, long enough to be accepted by the seeder";

/// The command `dbops ARGS` with `DB_URL` set to `url`.
fn command(url: &str, args: &[&str]) -> Command {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .env("DB_URL", url)
        .env_remove("ANALYTICS_URL")
        .env("DBOPS_CONFIG", support::standalone_config())
        .env("DBOPS_API_KEY_PEPPER", PEPPER)
        .env("NO_COLOR", "1")
        .args(args);
    command
}

/// Runs `dbops ARGS` with `DB_URL` set to `url`; exit code and standard error.
fn dbops(url: &str, args: &[&str]) -> (i32, String) {
    let output = command(url, args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A folder of one migration creating table `widgets`, clean for the linter.
fn migrations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("202501010000_widgets.up.sql"),
        "CREATE TABLE widgets (id bigint GENERATED ALWAYS AS IDENTITY, CONSTRAINT widgets_pkey PRIMARY KEY (id));",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("202501010000_widgets.down.sql"),
        "DROP TABLE widgets;",
    )
    .unwrap();
    dir
}

/// Advisory locks held in `db`'s database, asked of the server directly.
async fn advisory_locks(db: &TestDb) -> i64 {
    let admin = testdb::connect_to(&db.url_for("postgres")).await;
    admin
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
               AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
            &[&db.name()],
        )
        .await
        .unwrap()
        .get(0)
}

async fn relation_exists(db: &TestDb, name: &str) -> bool {
    db.connect()
        .await
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn session_pooling_migrates_and_leaves_no_lock() {
    let db = TestDb::new().await;
    let bouncer = PgBouncer::start(PoolMode::Session);
    let dir = migrations();
    let dir_arg = dir.path().to_str().unwrap();
    let url = bouncer.url_for(db.name());

    let (code, stderr) = dbops(&url, &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(relation_exists(&db, "public.widgets").await);
    let (code, stderr) = dbops(&url, &["migrate", "status", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    // Asked while PgBouncer still holds its server connections, where a
    // stranded lock would be.
    assert_eq!(advisory_locks(&db).await, 0);
    drop(bouncer);
}

#[tokio::test]
async fn transaction_pooling_is_refused_before_any_change() {
    let db = TestDb::new().await;
    let bouncer = PgBouncer::start(PoolMode::Transaction);
    let dir = migrations();
    let dir_arg = dir.path().to_str().unwrap();
    let url = bouncer.url_for(db.name());

    for args in [
        &["migrate", "up", "--dir", dir_arg][..],
        &["migrate", "status", "--dir", dir_arg],
        &["seed", "analytics", "--events", "10", "--days", "1"],
    ] {
        let (code, stderr) = dbops(&url, args);
        assert_eq!(code, 22, "dbops {args:?}: {stderr}");
        assert!(
            stderr.contains("pooler in transaction or statement pooling mode")
                && stderr.contains(
                    "connect to the server directly, or through the pooler in session pooling mode"
                ),
            "dbops {args:?}: {stderr}"
        );
    }
    // Nothing changed: not even dbops's own bookkeeping tables.
    assert!(!relation_exists(&db, "public.widgets").await);
    assert!(!relation_exists(&db, "dbops.runs").await);
    // Asked while PgBouncer still holds its server connections, where a
    // stranded lock would be.
    assert_eq!(advisory_locks(&db).await, 0);
    drop(bouncer);
}

#[tokio::test]
async fn concurrent_runs_through_transaction_pooling_are_all_refused() {
    let db = TestDb::new().await;
    let bouncer = PgBouncer::start(PoolMode::Transaction);
    let dir = migrations();
    let url = bouncer.url_for(db.name());
    let dir_arg = dir.path().to_str().unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            command(&url, &["migrate", "up", "--dir", dir_arg])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(22), "{stderr}");
    }
    assert!(!relation_exists(&db, "public.widgets").await);
    assert_eq!(advisory_locks(&db).await, 0);
    drop(bouncer);
}
