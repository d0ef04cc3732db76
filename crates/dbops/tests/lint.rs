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
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .current_dir(repo_root())
        .env_remove("ANALYTICS_URL")
        .env("NO_COLOR", "1")
        .arg("lint")
        .args(args);
    match url {
        Some(url) => command.env("DB_URL", url),
        None => command.env_remove("DB_URL"),
    };
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
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
