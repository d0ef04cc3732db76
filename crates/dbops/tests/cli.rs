//! The real `dbops` binary: exit codes and messages for what operators get wrong.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

fn dbops(url: &str, args: &[&str]) -> Command {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .env_remove("ANALYTICS_URL")
        .env("DB_URL", url)
        .env("NO_COLOR", "1")
        .args(args);
    command
}

/// Runs dbops and returns (exit code, stdout, stderr).
fn run(url: &str, args: &[&str]) -> (i32, String, String) {
    let output = dbops(url, args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn valid_pair(dir: &Path) {
    write(dir, "202501010000_a.up.sql", "CREATE TABLE a (id bigint);");
    write(dir, "202501010000_a.down.sql", "DROP TABLE a;");
}

/// Each kind of bad input: (what to set up, expected exit code, text the error must contain).
#[tokio::test]
async fn bad_input_gets_a_named_culprit_and_its_own_exit_code() {
    let db = TestDb::new().await;
    type Setup = fn(&Path);
    let cases: [(&str, Setup, i32, &str); 4] = [
        (
            "malformed name",
            |dir| {
                valid_pair(dir);
                write(dir, "20250101_b.up.sql", "SELECT 1;");
            },
            4,
            "20250101_b.up.sql: migration file names must look like YYYYMMDDHHMM_slug.up.sql",
        ),
        (
            "missing down",
            |dir| write(dir, "202501010000_a.up.sql", "SELECT 1;"),
            4,
            "has no matching 202501010000_a.down.sql",
        ),
        (
            "duplicate version",
            |dir| {
                valid_pair(dir);
                write(dir, "202501010000_b.up.sql", "SELECT 1;");
                write(dir, "202501010000_b.down.sql", "SELECT 1;");
            },
            4,
            "version 202501010000 is used twice",
        ),
        (
            "bad sql",
            |dir| {
                write(
                    dir,
                    "202501010000_a.up.sql",
                    "CREATE TABLE a (id bigint);\nSELEC 1;",
                );
                write(dir, "202501010000_a.down.sql", "DROP TABLE a;");
            },
            10,
            "migration 202501010000 (",
        ),
    ];
    for (name, setup, code, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let (got, _, stderr) = run(
            db.url(),
            &[
                "migrate",
                "up",
                "--allow-lint-errors",
                "--dir",
                dir.path().to_str().unwrap(),
            ],
        );
        assert_eq!(got, code, "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn lint_errors_in_pending_migrations_block_the_run_unless_overridden() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "202501010000_a.up.sql",
        "CREATE TABLE a (id serial PRIMARY KEY);",
    );
    write(dir.path(), "202501010000_a.down.sql", "DROP TABLE a;");
    let dir = dir.path().to_str().unwrap();
    let (code, _, stderr) = run(db.url(), &["migrate", "up", "--dir", dir]);
    assert_eq!(code, 11, "{stderr}");
    assert!(
        stderr.contains("202501010000_a.up.sql:1:"),
        "findings name file and line: {stderr}"
    );
    // Production never allows the override.
    let (code, _, stderr) = run(
        db.url(),
        &[
            "migrate",
            "up",
            "--env",
            "production",
            "--allow-lint-errors",
            "--yes",
            "--dir",
            dir,
        ],
    );
    assert_eq!(code, 12, "{stderr}");
    assert!(
        stderr.contains("does not allow --allow-lint-errors"),
        "{stderr}"
    );
    // Locally the override works, and is audited.
    let (code, _, stderr) = run(
        db.url(),
        &[
            "migrate",
            "up",
            "--allow-lint-errors",
            "--actor",
            "ann",
            "--dir",
            dir,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let client = db.connect().await;
    let actions: Vec<String> = client
        .query(
            "SELECT action FROM dbops.audit_log WHERE actor = 'ann' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(actions, ["migration.lint_override", "migration.apply"]);
}

#[test]
fn an_unreachable_database_and_rejected_credentials_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    valid_pair(dir.path());
    let dir = dir.path().to_str().unwrap();

    // Nothing listens on port 1.
    let (code, _, stderr) = run(
        "postgres://app:hunter2@127.0.0.1:1/app?connect_timeout=2",
        &["migrate", "status", "--dir", dir],
    );
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("cannot reach the database at postgres://app:***@127.0.0.1:1/app"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");

    // A role that does not exist is refused at authentication, whatever the server's auth method.
    let server = testdb::server_url();
    let mut url = url_with_user(&server, "no_such_role_dbops", "hunter2");
    url.push_str("?connect_timeout=5");
    let (code, _, stderr) = run(&url, &["migrate", "status", "--dir", dir]);
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("rejected the credentials of user \"no_such_role_dbops\""),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

fn url_with_user(server: &str, user: &str, password: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split(['/', '?']).next().unwrap_or(host);
    format!("postgres://{user}:{password}@{host}/postgres")
}

#[tokio::test]
async fn a_process_killed_inside_a_no_transaction_migration_leaves_a_partial_state() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "202501010000_t.up.sql",
        "CREATE TABLE t (id bigint);",
    );
    write(dir.path(), "202501010000_t.down.sql", "DROP TABLE t;");
    write(
        dir.path(),
        "202501010100_slow.up.sql",
        "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\nSELECT pg_sleep(60);\nCREATE TABLE never (id bigint);\n",
    );
    write(
        dir.path(),
        "202501010100_slow.down.sql",
        "-- dbops:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS t_id_idx;\n",
    );
    let dir_arg = dir.path().to_str().unwrap();

    let mut child = dbops(
        db.url(),
        &["migrate", "up", "--allow-lint-errors", "--dir", dir_arg],
    )
    .spawn()
    .unwrap();
    let client = db.connect().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = client
            .query_opt(
                "SELECT 1 FROM dbops.run_log WHERE version = 202501010100 AND statements_done = 1",
                &[],
            )
            .await
            .ok()
            .flatten();
        if running.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow migration never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server notices the dead client when pg_sleep next checks the socket; end it for certain.
    client
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dbops migrate operational' AND datname = current_database()", &[])
        .await
        .unwrap();

    let (code, stdout, stderr) = run(db.url(), &["migrate", "status", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 partial"), "{stdout}");
    assert!(
        stdout.contains(
            "PARTIAL  202501010100_slow (up stopped after 1 of 3 statements, the process died"
        ),
        "{stdout}"
    );

    let (code, _, stderr) = run(db.url(), &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 9, "{stderr}");
    assert!(stderr.contains("partial state"), "{stderr}");

    let (code, stdout, _) = run(db.url(), &["migrate", "status", "--json", "--dir", dir_arg]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["partial"][0]["version"], 202501010100i64);
    assert_eq!(status["partial"][0]["statements_done"], 1);

    let (code, _, stderr) = run(
        db.url(),
        &[
            "migrate",
            "repair",
            "202501010100",
            "--action",
            "mark-applied",
            "--reason",
            "finished by hand",
            "--dir",
            dir_arg,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = run(db.url(), &["migrate", "status", "--dir", dir_arg]);
    assert_eq!(code, 0);
    assert!(stdout.contains("0 partial"), "{stdout}");
}

#[tokio::test]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    valid_pair(dir.path());
    let (code, stdout, stderr) = run(
        db.url(),
        &[
            "migrate",
            "up",
            "--dry-run",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("CREATE TABLE a (id bigint);"), "{stdout}");
    assert!(stdout.contains("-- plan hash: "), "{stdout}");
    let client = db.connect().await;
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE tablename = 'a'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}

#[test]
fn a_config_typo_names_the_file_line_and_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    std::fs::write(&config, "[targets.operational]\ndir = \"m\"\nurl_env = \"DB_URL\"\n\n[settings]\nlock_timeuot = \"5s\"\n").unwrap();
    let (code, _, stderr) = run(
        "postgres://127.0.0.1:1/x",
        &["--config", config.to_str().unwrap(), "migrate", "status"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("migrate.toml:6:1"), "{stderr}");
    assert!(stderr.contains("lock_timeuot"), "{stderr}");
}
