//! `dbops lint` as CI runs it: exit codes, the four formats, and `--db` on a real database.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `dbops lint ARGS` from the repository root (configs/lint.toml) and returns (exit code, stdout).
fn lint(url: Option<&str>, args: &[&str]) -> (i32, String) {
    let args: Vec<&str> = std::iter::once("lint")
        .chain(args.iter().copied())
        .collect();
    let (code, stdout, _) = run_in(&repo_root(), None, url, &args);
    (code, stdout)
}

/// Runs `dbops ARGS` in `dir`, with `config` as DBOPS_CONFIG (else the one
/// found from `dir`) and `url` as DB_URL; returns (exit code, stdout, stderr).
fn run_in(
    dir: &Path,
    config: Option<&Path>,
    url: Option<&str>,
    args: &[&str],
) -> (i32, String, String) {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .current_dir(dir)
        .env_remove("ANALYTICS_URL")
        .env("NO_COLOR", "1")
        .args(args);
    match url {
        Some(url) => command.env("DB_URL", url),
        None => command.env_remove("DB_URL"),
    };
    match config {
        Some(config) => command.env("DBOPS_CONFIG", config),
        None => command.env_remove("DBOPS_CONFIG"),
    };
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn migration(dir: &Path, up: &str) -> String {
    std::fs::write(dir.join("202601010000_change.up.sql"), up).unwrap();
    std::fs::write(dir.join("202601010000_change.down.sql"), "SELECT 1;").unwrap();
    dir.display().to_string()
}

#[test]
fn clean_files_exit_zero_and_errors_exit_eleven() {
    let (code, out) = lint(None, &["migrations/operational"]);
    assert_eq!((code, out.as_str()), (0, "0 errors, 0 warnings\n"));

    let dir = tempfile::tempdir().unwrap();
    let path = migration(
        dir.path(),
        "CREATE INDEX users_email_idx ON users (email);\n",
    );
    let (code, out) = lint(None, &[&path]);
    assert_eq!(code, 11, "{out}");
    assert!(out.contains("error[index-without-concurrently]"), "{out}");
    assert!(out.contains("202601010000_change.up.sql:1:1"), "{out}");
}

#[test]
fn formats() {
    let dir = tempfile::tempdir().unwrap();
    let path = migration(dir.path(), "ALTER TABLE users DROP COLUMN nickname;\n");
    let (_, json) = lint(None, &[&path, "--format", "json"]);
    let findings: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(findings[0]["rule"], "drop-column");
    assert_eq!(findings[0]["location"]["start"]["line"], 1);

    let (_, github) = lint(None, &[&path, "--format", "github"]);
    assert!(github.starts_with("::error file="), "{github}");
    assert!(
        github.contains(",line=1,col=19,") && github.contains("title=drop-column::"),
        "{github}"
    );

    let (_, sarif) = lint(None, &[&path, "--format", "sarif"]);
    let log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(log["runs"][0]["results"][0]["ruleId"], "drop-column");
}

#[tokio::test]
async fn db_lints_the_live_schema() {
    let db = TestDb::new().await;
    db.connect()
        .await
        .batch_execute("CREATE TABLE invoice (id integer PRIMARY KEY, password text)")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = lint(Some(db.url()), &["--db", &dir.path().display().to_string()]);
    assert_eq!(code, 11, "{out}");
    for expected in [
        "error[integer-key]: column `invoice.id` is `integer`",
        "error[plaintext-secret-column]: `invoice.password` is named like a password but holds `text`",
        "error[naming-table]: table name `invoice` is not plural",
        "--> live database: table invoice",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// With --db, a type change of a column no file creates is judged from the
/// column's type in the database; without, its old type is unknown.
#[tokio::test]
async fn db_gives_the_old_type_of_a_column_no_file_creates() {
    let db = TestDb::new().await;
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, plan varchar(20), seats integer)",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = migration(
        dir.path(),
        "ALTER TABLE accounts ALTER COLUMN plan TYPE text;\nALTER TABLE accounts ALTER COLUMN seats TYPE bigint;\n",
    );
    let (_, out) = lint(Some(db.url()), &["--db", &path, "--format", "json"]);
    let findings: serde_json::Value = serde_json::from_str(&out).unwrap();
    let type_changes: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "changing-column-type")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        type_changes,
        [
            "changing `accounts.seats` from `integer` (its type in the live database) to `bigint` rewrites the table and its indexes under an ACCESS EXCLUSIVE lock"
        ]
    );
    let (_, out) = lint(None, &[&path]);
    assert_eq!(
        out.matches("its current type is unknown").count(),
        2,
        "{out}"
    );
}

/// A project of its own: configs/migrate.toml (a production environment that
/// refuses lint overrides but needs no approvals, so the lint gate is what is
/// tested), an empty configs/lint.toml and migrations/operational with `files`.
fn baseline_project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    std::fs::create_dir_all(root.join("configs")).unwrap();
    std::fs::create_dir_all(root.join("migrations/operational")).unwrap();
    std::fs::create_dir_all(root.join("migrations/analytics")).unwrap();
    std::fs::write(
        root.join("configs/migrate.toml"),
        "[targets.operational]\ndir = \"migrations/operational\"\nurl_env = \"DB_URL\"\n\n\
         [targets.analytics]\ndir = \"migrations/analytics\"\nurl_env = \"ANALYTICS_URL\"\nfallback_url_env = \"DB_URL\"\n\n\
         [environments.production]\napprovals = 0\nconfirm = true\nallow_lint_override = false\n",
    )
    .unwrap();
    std::fs::write(root.join("configs/lint.toml"), "").unwrap();
    for (name, sql) in files {
        std::fs::write(root.join("migrations/operational").join(name), sql).unwrap();
    }
    project
}

/// Runs dbops in `project`, with its configs/migrate.toml, and returns (exit code, stdout, stderr).
fn in_project(project: &Path, url: &str, args: &[&str]) -> (i32, String, String) {
    let config = project.join("configs/migrate.toml");
    run_in(project, Some(&config), Some(url), args)
}

const OLD_HISTORY: &[(&str, &str)] = &[
    (
        "202501010000_users.up.sql",
        "CREATE TABLE users (id serial PRIMARY KEY, email varchar(100));\n",
    ),
    ("202501010000_users.down.sql", "DROP TABLE users;\n"),
    (
        "202501020000_users_email_idx.up.sql",
        "CREATE INDEX users_email_idx ON users (email);\n",
    ),
    (
        "202501020000_users_email_idx.down.sql",
        "DROP INDEX users_email_idx;\n",
    ),
];

#[tokio::test]
async fn a_baseline_lets_a_fresh_production_database_pass_and_still_blocks_new_findings() {
    let project = baseline_project(OLD_HISTORY);
    let root = project.path();
    let db = TestDb::new().await;
    let (code, out, _) = in_project(root, db.url(), &["lint"]);
    assert_eq!(code, 11, "the old history has error-level findings: {out}");
    // Without a baseline, production refuses the history.
    let (code, _, stderr) = in_project(
        root,
        db.url(),
        &["migrate", "up", "--env", "production", "--yes"],
    );
    assert_eq!(code, 11, "{stderr}");

    let (code, _, stderr) = in_project(root, db.url(), &["lint", "--update-baseline"]);
    assert_eq!(code, 0, "{stderr}");
    let baseline_file = root.join("configs/lint-baseline.toml");
    let written = std::fs::read_to_string(&baseline_file).unwrap();
    assert!(
        written.contains("file = \"migrations/operational/202501020000_users_email_idx.up.sql\"\nrule = \"index-without-concurrently\""),
        "{written}"
    );
    // Writing it again gives the same bytes.
    in_project(root, db.url(), &["lint", "--update-baseline"]);
    assert_eq!(std::fs::read_to_string(&baseline_file).unwrap(), written);

    let (code, out, stderr) = in_project(root, db.url(), &["lint"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "0 errors, 0 warnings\n"),
        "{stderr}"
    );
    assert!(stderr.contains("accepted by the lint baseline"), "{stderr}");

    // A fresh database passes the production policy: nothing to override.
    let (code, _, stderr) = in_project(
        root,
        db.url(),
        &["migrate", "up", "--env", "production", "--yes"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "operational: 5 lint finding(s) in the pending migrations accepted by the lint baseline"
        ),
        "{stderr}"
    );

    // A new risky migration is not in the baseline: lint and production refuse it.
    let dir = root.join("migrations/operational");
    std::fs::write(
        dir.join("202501030000_drop_email.up.sql"),
        "ALTER TABLE users DROP COLUMN email;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("202501030000_drop_email.down.sql"),
        "ALTER TABLE users ADD COLUMN email text;\n",
    )
    .unwrap();
    let (code, out, _) = in_project(root, db.url(), &["lint"]);
    assert_eq!(code, 11, "{out}");
    assert!(
        out.contains("error[drop-column]") && out.contains("1 error"),
        "{out}"
    );
    let (code, _, stderr) = in_project(
        root,
        db.url(),
        &["migrate", "up", "--env", "production", "--yes"],
    );
    assert_eq!(code, 11, "{stderr}");
    assert!(
        stderr.contains("202501030000_drop_email.up.sql"),
        "{stderr}"
    );

    // An edited file loses its entries.
    std::fs::remove_file(dir.join("202501030000_drop_email.up.sql")).unwrap();
    std::fs::remove_file(dir.join("202501030000_drop_email.down.sql")).unwrap();
    std::fs::write(
        dir.join("202501020000_users_email_idx.up.sql"),
        "-- look up users by email\nCREATE INDEX users_email_idx ON users (email);\n",
    )
    .unwrap();
    let (code, out, _) = in_project(root, db.url(), &["lint"]);
    assert_eq!(code, 11, "{out}");
    assert!(
        out.contains("error[index-without-concurrently]") && out.contains("1 error"),
        "{out}"
    );
}

#[test]
fn a_bad_baseline_is_named_and_update_takes_no_paths() {
    let project = baseline_project(OLD_HISTORY);
    let root = project.path();
    let url = "postgres://unused@127.0.0.1:1/none";
    std::fs::write(
        root.join("configs/lint-baseline.toml"),
        "[[accepted]]\nrule = 1\n",
    )
    .unwrap();
    let (code, _, stderr) = in_project(root, url, &["lint"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("lint-baseline.toml: invalid lint baseline"),
        "{stderr}"
    );

    let (code, _, stderr) = in_project(root, url, &["lint", "--update-baseline", "migrations"]);
    assert_eq!(code, 2, "{stderr}");

    // A baseline that cannot be written: its folder does not exist.
    std::fs::write(
        root.join("configs/lint.toml"),
        "baseline = \"no/such/folder/baseline.toml\"\n",
    )
    .unwrap();
    let (code, _, stderr) = in_project(root, url, &["lint", "--update-baseline"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("writing the lint baseline")
            && stderr.contains("no/such/folder/baseline.toml"),
        "{stderr}"
    );
}
