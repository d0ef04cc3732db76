//! The real `dbops` binary: exit codes and messages for what operators get wrong.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

mod support;

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

fn dbops(url: &str, args: &[&str]) -> Command {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .env_remove("ANALYTICS_URL")
        .env("DBOPS_CONFIG", support::standalone_config())
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
    write(
        dir.path(),
        "202501020000_describe_a.up.sql",
        "COMMENT ON TABLE a IS 'the letters';",
    );
    write(
        dir.path(),
        "202501020000_describe_a.down.sql",
        "COMMENT ON TABLE a IS NULL;",
    );
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
    // Locally the override works, and is audited on the entry of the
    // migration whose file holds the findings, with their rules; not on the
    // others.
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
    let entries: Vec<(String, serde_json::Value)> = client
        .query(
            "SELECT action, coalesce(metadata -> 'lint_override', 'null') FROM dbops.audit_log WHERE actor = 'ann' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].0, "migration.apply");
    let rules = entries[0].1["rules"].as_array().unwrap();
    assert!(!rules.is_empty(), "{entries:?}");
    assert_eq!(
        entries[0].1["errors"].as_u64(),
        Some(rules.len() as u64),
        "{entries:?}"
    );
    assert_eq!(entries[1].1, serde_json::Value::Null, "{entries:?}");
}

/// `count` `dbops migrate` processes started together, as a deployment's
/// pods do; returns each one's (exit code, stdout, stderr).
fn fleet(url: &str, count: usize, args: &[&str]) -> Vec<(i32, String, String)> {
    let children: Vec<_> = (0..count)
        .map(|_| {
            dbops(url, args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            (
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn fleets_of_8_and_32_runners_all_succeed_and_apply_each_migration_once() {
    for count in [8, 32] {
        let db = TestDb::new().await;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            clean_migration(dir.path(), 202501010000 + i, &format!("w{i}_widgets"));
        }
        let dir = dir.path().to_str().unwrap();
        let results = fleet(
            db.url(),
            count,
            &["migrate", "up", "--actor", "fleet", "--dir", dir],
        );
        for (code, stdout, stderr) in &results {
            assert_eq!(*code, 0, "{count} runners: {stdout}{stderr}");
        }
        // The others either waited for the lock and found their plan done
        // (and say who did it), or planned after it was done.
        let applied = results
            .iter()
            .filter(|(_, stdout, _)| stdout.contains("applied 10 migration(s)"))
            .count();
        let others = results
            .iter()
            .filter(|(_, stdout, _)| {
                stdout.contains("another runner (pid ") || stdout.contains("nothing to apply")
            })
            .count();
        assert_eq!((applied, others), (1, count - 1), "{results:?}");
        let client = db.connect().await;
        let counts: Vec<(i64, i64)> = client
            .query(
                "SELECT (SELECT count(*) FROM dbops.operational_schema_history),
                        (SELECT count(*) FROM dbops.audit_log WHERE actor = 'fleet')",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        assert_eq!(counts, [(10, 10)], "{count} runners");

        // A fleet rolls back to a version: whoever plans, early or late, the
        // runners converge on it. (`--steps` counts from whatever is newest
        // when a runner plans, so a runner that plans after another rolled
        // back would go one further.)
        let results = fleet(
            db.url(),
            count,
            &[
                "migrate",
                "down",
                "--to",
                "202501010008",
                "--actor",
                "fleet",
                "--dir",
                dir,
            ],
        );
        for (code, stdout, stderr) in &results {
            assert_eq!(*code, 0, "{count} rollbacks: {stdout}{stderr}");
        }
        let rolled_back = results
            .iter()
            .filter(|(_, stdout, _)| stdout.contains("rolled back 1 migration(s)"))
            .count();
        assert_eq!(rolled_back, 1, "{results:?}");
        let applied: i64 = client
            .query_one("SELECT count(*) FROM dbops.operational_schema_history", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(applied, 9, "{count} rollbacks roll back one migration");
    }
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
        stderr.contains("cannot reach the database at postgres://app@127.0.0.1:1/app"),
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

    // A database that does not exist has its own message and exit code.
    let missing = format!(
        "{}/no_such_database_dbops",
        server.rsplit_once('/').unwrap().0
    );
    let (code, _, stderr) = run(&missing, &["migrate", "status", "--dir", dir]);
    assert_eq!(code, 18, "{stderr}");
    assert!(
        stderr.contains("database \"no_such_database_dbops\" does not exist on the server at"),
        "{stderr}"
    );
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

fn clean_migration(dir: &Path, version: i64, table: &str) {
    write(
        dir,
        &format!("{version}_{table}.up.sql"),
        &format!(
            "CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY, CONSTRAINT {table}_pkey PRIMARY KEY (id));"
        ),
    );
    write(
        dir,
        &format!("{version}_{table}.down.sql"),
        &format!("DROP TABLE {table};"),
    );
}

/// Production's signed approvals are tested in tests/approvals.rs.
#[tokio::test]
async fn environments_that_confirm_need_yes_without_a_terminal() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    clean_migration(dir.path(), 202501010000, "widgets");
    let dir_arg = dir.path().to_str().unwrap();
    let (code, _, stderr) = run(db.url(), &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");

    // Without a terminal, an environment that confirms needs --yes.
    let (code, _, stderr) = run(
        db.url(),
        &["migrate", "down", "--env", "staging", "--dir", dir_arg],
    );
    assert_eq!(code, 12, "{stderr}");
    assert!(stderr.contains("pass --yes"), "{stderr}");
    let (code, _, stderr) = run(
        db.url(),
        &[
            "migrate", "down", "--env", "staging", "--yes", "--dir", dir_arg,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("rolling back 202501010000_widgets drops table widgets and its rows"),
        "{stderr}"
    );
}

#[tokio::test]
async fn every_change_is_audited_in_an_append_only_chain() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    clean_migration(dir.path(), 202501010000, "widgets");
    clean_migration(dir.path(), 202501010100, "gadgets");
    let dir_arg = dir.path().to_str().unwrap();
    for args in [
        vec!["migrate", "up", "--actor", "ann", "--dir", dir_arg],
        vec!["migrate", "down", "--actor", "ann", "--dir", dir_arg],
        vec!["migrate", "up", "--actor", "ann", "--dir", dir_arg],
    ] {
        let (code, _, stderr) = run(db.url(), &args);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, stdout, stderr) = run(db.url(), &["audit", "verify", "--target", "operational"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("4 chained audit entries checked, 0 break(s)"),
        "{stdout}"
    );

    let client = db.connect().await;
    let entries: Vec<(String, serde_json::Value)> = client
        .query(
            "SELECT action, metadata FROM dbops.audit_log ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(entries[0].0, "migration.apply");
    assert_eq!(entries[2].0, "migration.rollback");
    let first = &entries[0].1;
    assert_eq!(first["target"], "operational");
    assert_eq!(first["version"], 202501010000i64);
    assert_eq!(first["outcome"], "succeeded");
    assert_eq!(first["environment"], "local");
    assert!(
        first["checksum"].is_string() && first["duration_ms"].is_u64(),
        "{first}"
    );

    // The table is append-only; tampering as a superuser would (with the
    // triggers bypassed) is tried in tests/audit.rs.
    let err = client
        .batch_execute("UPDATE dbops.audit_log SET actor = 'mallory' WHERE id = 2")
        .await
        .unwrap_err();
    assert!(
        err.as_db_error().is_some_and(|e| e
            .message()
            .contains("dbops.audit_log is append-only: UPDATE")),
        "{err:?}"
    );
}

#[tokio::test]
async fn health_is_ready_only_when_current() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    clean_migration(dir.path(), 202501010000, "widgets");
    // The configuration sits outside the migrations folder, which may hold
    // only migrations and notes.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        format!(
            "[targets.operational]\ndir = {:?}\nurl_env = \"DB_URL\"\n\n[targets.analytics]\ndir = {:?}\nurl_env = \"ANALYTICS_URL\"\nfallback_url_env = \"DB_URL\"\n\n[environments.local]\n",
            dir.path(),
            dir.path()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (code, stdout, _) = run(
        db.url(),
        &["--config", config, "health", "--target", "operational"],
    );
    assert_eq!(code, 13, "{stdout}");
    assert!(
        stdout.contains("not ready: operational: 1 migration(s) pending"),
        "{stdout}"
    );
    // Both targets share one folder and one database here: apply one.
    let (code, _, stderr) = run(
        db.url(),
        &[
            "--config",
            config,
            "migrate",
            "up",
            "--target",
            "operational",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = run(
        db.url(),
        &[
            "--config",
            config,
            "health",
            "--target",
            "operational",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    let health: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(health["ready"], true);
    assert_eq!(health["targets"][0]["schema_version"], 202501010000i64);
}

#[tokio::test]
async fn json_logs_carry_the_span_fields() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    clean_migration(dir.path(), 202501010000, "widgets");
    let (code, _, stderr) = run(
        db.url(),
        &[
            "--log-format",
            "json",
            "migrate",
            "up",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let applied = lines
        .iter()
        .find(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("up 202501010000_widgets"))
        })
        .unwrap_or_else(|| panic!("no JSON line for the migration in:\n{stderr}"));
    let span = &applied["span"];
    assert_eq!(span["name"], "migrate.migration");
    assert_eq!(span["target"], "operational");
    assert_eq!(span["version"], 202501010000i64);
    assert_eq!(span["slug"], "widgets");
    assert_eq!(span["outcome"], "succeeded");
    assert!(
        span["checksum"].is_string() && span["duration_ms"].is_u64(),
        "{span}"
    );
    assert_eq!(applied["spans"][0]["name"], "migrate.run");

    // Human logs name the migration too.
    let (code, _, stderr) = run(
        db.url(),
        &["migrate", "down", "--dir", dir.path().to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("down 202501010000_widgets in "), "{stderr}");
}

#[tokio::test]
async fn a_dry_run_shows_the_preflight_of_the_hooks() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    clean_migration(dir.path(), 202501010000, "widgets");
    write(
        dir.path(),
        "202501010100_widgets_name.up.sql",
        "ALTER TABLE widgets ADD COLUMN name text;",
    );
    write(
        dir.path(),
        "202501010100_widgets_name.down.sql",
        "ALTER TABLE widgets DROP COLUMN name;",
    );
    let dir_arg = dir.path().to_str().unwrap();
    let (code, _, stderr) = run(
        db.url(),
        &["migrate", "up", "--to", "202501010000", "--dir", dir_arg],
    );
    assert_eq!(code, 0, "{stderr}");

    // A session that has held a lock on the table for a while blocks the ALTER.
    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE widgets IN ACCESS SHARE MODE; SELECT pg_sleep(1.5);")
        .await
        .unwrap();
    let (code, stdout, stderr) = run(db.url(), &["migrate", "up", "--dry-run", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("ALTER TABLE widgets ADD COLUMN name text;"),
        "{stdout}"
    );
    assert!(stdout.contains("-- preflight:"), "{stdout}");
    assert!(
        stdout.contains("[blocking-sessions]")
            && stdout.contains("block the tables this migration touches"),
        "{stdout}"
    );
    holder.batch_execute("COMMIT").await.unwrap();

    let (code, stdout, _) = run(
        db.url(),
        &["migrate", "down", "--dry-run", "--dir", dir_arg],
    );
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "-- warning: rolling back 202501010000_widgets drops table widgets and its rows"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("-- preflight: no findings"), "{stdout}");
}

#[tokio::test]
async fn redo_rolls_back_and_applies_the_newest_migration_again() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    clean_migration(dir.path(), 202501010000, "widgets");
    clean_migration(dir.path(), 202501010100, "gadgets");
    let dir_arg = dir.path().to_str().unwrap();
    let (code, stdout, _) = run(db.url(), &["migrate", "redo", "--dir", dir_arg]);
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing to redo"), "{stdout}");
    let (code, _, stderr) = run(db.url(), &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    let client = db.connect().await;
    client
        .batch_execute("INSERT INTO gadgets DEFAULT VALUES")
        .await
        .unwrap();

    let (code, stdout, stderr) = run(
        db.url(),
        &["migrate", "redo", "--actor", "ann", "--dir", dir_arg],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("rolled back 202501010100 in "), "{stdout}");
    assert!(
        stderr.contains("rolling back 202501010100_gadgets drops table gadgets and its rows"),
        "{stderr}"
    );
    let rows: i64 = client
        .query_one("SELECT count(*) FROM gadgets", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "the table was dropped and created again");
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
    assert_eq!(actions, ["migration.rollback", "migration.apply"]);
}

#[tokio::test]
async fn a_held_migration_lock_times_out_after_the_configured_wait_and_names_the_holder() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    clean_migration(dir.path(), 202501010000, "widgets");
    let dir_arg = dir.path().to_str().unwrap();
    let (code, _, stderr) = run(db.url(), &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    // Another runner's session holds the target's lock.
    let holder = db.connect().await;
    holder
        .batch_execute("SET application_name = 'deploy-42'")
        .await
        .unwrap();
    let key: i64 = holder
        .query_one(
            "SELECT ('x' || left(encode(sha256('dbops migrate dbops.operational_schema_history'), 'hex'), 16))::bit(64)::bigint",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    holder
        .query_one("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let output = dbops(db.url(), &["migrate", "down", "--dir", dir_arg])
        .env("DBOPS_LOCK_WAIT", "300ms")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(7), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        stderr.contains("waiting for the migration lock of target \"operational\""),
        "{stderr}"
    );
    assert!(stderr.contains("application \"deploy-42\""), "{stderr}");
}

#[tokio::test]
async fn bare_commands_cover_every_target_and_a_rollback_names_its_own() {
    let db = TestDb::new().await;
    let (operational, analytics) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    clean_migration(operational.path(), 202501010000, "widgets");
    clean_migration(analytics.path(), 202501010000, "gadgets");
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        format!(
            "[targets.operational]\ndir = {:?}\nurl_env = \"DB_URL\"\n\n[targets.analytics]\ndir = {:?}\nurl_env = \"ANALYTICS_URL\"\nfallback_url_env = \"DB_URL\"\n\n[environments.local]\n",
            operational.path(),
            analytics.path()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (code, stdout, stderr) = run(db.url(), &["--config", config, "migrate", "status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("operational: version none"), "{stdout}");
    assert!(stdout.contains("analytics: version none"), "{stdout}");
    let (code, stdout, stderr) = run(db.url(), &["--config", config, "migrate", "up"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("operational: applied 1") && stdout.contains("analytics: applied 1"),
        "{stdout}"
    );
    let (code, _, stderr) = run(db.url(), &["--config", config, "migrate", "down"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("migrate down names its target"), "{stderr}");
}

#[test]
fn with_json_logs_the_final_error_is_json_too() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "202501010000_a.UP.SQL", "SELECT 1;");
    let dir = dir.path().to_str().unwrap();
    let (code, _, stderr) = run(
        "postgres://nobody@127.0.0.1:1/none",
        &["--log-format", "json", "migrate", "status", "--dir", dir],
    );
    assert_eq!(code, 4, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    let error: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(error["level"], "ERROR");
    assert_eq!(error["exit_code"], 4);
    assert!(
        error["message"].as_str().unwrap().contains("lower case"),
        "{error}"
    );
}

#[test]
fn counts_out_of_range_are_refused_before_anything_runs() {
    for (args, expected) in [
        (
            &["seed", "operational", "--orgs", "4294967296"][..],
            "4294967296 is not in 1..=100000",
        ),
        (
            &["seed", "analytics", "--events", "10", "--orgs", "0"][..],
            "0 is not in 1..=1000000",
        ),
        (
            &["rollup", "status", "--limit=-1"][..],
            "-1 is not in 1..=10000",
        ),
    ] {
        let (code, _, stderr) = run("postgres://nobody@127.0.0.1:1/none", args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// A duration from DBOPS_LOCK_WAIT, DBOPS_LOCK_TIMEOUT or
/// DBOPS_STATEMENT_TIMEOUT, or from a flag, is checked with the file's
/// settings merged: a bad value is a configuration error (exit 3) naming the
/// variable or flag it came from, before anything connects.
#[test]
fn bad_settings_from_variables_and_flags_name_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    valid_pair(dir.path());
    let dir_arg = dir.path().to_str().unwrap();
    // Nothing listens there: a run that got as far as connecting would exit 5.
    let url = "postgres://postgres@127.0.0.1:1/postgres";
    // (variables, flags, what the error says)
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
        &'static str,
    );
    let cases: [Case; 6] = [
        (
            &[("DBOPS_LOCK_TIMEOUT", "banana")],
            &[],
            "DBOPS_LOCK_TIMEOUT: \"banana\" is not a duration",
        ),
        (
            &[("DBOPS_STATEMENT_TIMEOUT", "99999999d")],
            &[],
            "DBOPS_STATEMENT_TIMEOUT: must be at most 24 days",
        ),
        (
            &[("DBOPS_LOCK_WAIT", "1s")],
            &["--lock-wait", "99999999d"],
            "--lock-wait: must be at most 24 days",
        ),
        (
            &[],
            &["--statement-timeout", "0"],
            "--statement-timeout: must be positive",
        ),
        (
            &[("DBOPS_LOCK_TIMEOUT", "0s")],
            &[],
            "DBOPS_LOCK_TIMEOUT: must be positive",
        ),
        (
            &[("DBOPS_LOCK_TIMEOUT", "0s")],
            &["--lock-timeout", "2s", "--lock-wait", "25d"],
            "--lock-wait: must be at most 24 days",
        ),
    ];
    for (variables, flags, expected) in cases {
        let mut args = vec!["migrate", "status", "--dir", dir_arg];
        args.extend_from_slice(flags);
        let mut command = dbops(url, &args);
        for (name, value) in variables {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{variables:?} {flags:?}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{variables:?} {flags:?}: {stderr}"
        );
    }
}
