//! The real `dbops` binary run from directories other than the repository
//! root: the configuration is found walking up, or named by `--config` /
//! `DBOPS_CONFIG`, and the paths inside it start from its project root.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs dbops in `cwd` and returns (exit code, stdout, stderr).
fn run_in(cwd: &Path, url: &str, envs: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .current_dir(cwd)
        .env_remove("ANALYTICS_URL")
        .env_remove("DBOPS_CONFIG")
        .env("DB_URL", url)
        .env("NO_COLOR", "1")
        .envs(envs.iter().copied())
        .args(args);
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A project outside the repository: `configs/migrate.toml` naming its
/// migrations folder relative to the project, and one migration in it.
fn project() -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    std::fs::create_dir_all(root.join("configs")).unwrap();
    std::fs::create_dir_all(root.join("db/migrations")).unwrap();
    std::fs::create_dir_all(root.join("src/deep")).unwrap();
    std::fs::write(
        root.join("configs/migrate.toml"),
        "[targets.operational]\ndir = \"db/migrations\"\nurl_env = \"DB_URL\"\n\n\
         [targets.analytics]\ndir = \"db/migrations\"\nurl_env = \"ANALYTICS_URL\"\nfallback_url_env = \"DB_URL\"\n\n\
         [environments.local]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("db/migrations/202501010000_widgets.up.sql"),
        "CREATE TABLE widgets (id bigint GENERATED ALWAYS AS IDENTITY, CONSTRAINT widgets_pkey PRIMARY KEY (id));",
    )
    .unwrap();
    std::fs::write(
        root.join("db/migrations/202501010000_widgets.down.sql"),
        "DROP TABLE widgets;",
    )
    .unwrap();
    project
}

#[test]
fn without_a_config_the_error_names_where_it_looked() {
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_in(
        empty.path(),
        "postgres://127.0.0.1:1/x",
        &[],
        &["migrate", "status"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no configs/migrate.toml in"), "{stderr}");
    assert!(
        stderr.contains(&empty.path().display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("--config"), "{stderr}");
}

#[test]
fn a_missing_explicit_config_is_named() {
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("nowhere/migrate.toml");
    let missing = missing.to_str().unwrap();
    for (envs, args) in [
        (vec![], vec!["--config", missing, "health"]),
        (vec![("DBOPS_CONFIG", missing)], vec!["health"]),
    ] {
        let (code, _, stderr) = run_in(empty.path(), "postgres://127.0.0.1:1/x", &envs, &args);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains(missing), "{stderr}");
    }
}

#[tokio::test]
async fn status_and_health_work_from_a_repository_subdirectory() {
    let db = TestDb::new().await;
    let cwd = repo_root().join("crates/dbops/src");
    let (code, stdout, stderr) = run_in(&cwd, db.url(), &[], &["migrate", "status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("pending  "), "{stdout}");
    let (code, stdout, stderr) = run_in(&cwd, db.url(), &[], &["health"]);
    // Nothing is applied in the throwaway database, so the probe says not
    // ready (13), having read both migrations folders.
    assert_eq!(code, 13, "{stdout}{stderr}");
    assert!(stdout.contains("operational:"), "{stdout}");
    assert!(stdout.contains("analytics:"), "{stdout}");
}

#[tokio::test]
async fn paths_in_a_config_start_from_its_project_from_any_directory() {
    let db = TestDb::new().await;
    let project = project();
    let config = project.path().join("configs/migrate.toml");
    let config = config.to_str().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();

    // Found walking up from a subdirectory of the project.
    let deep = project.path().join("src/deep");
    let (code, stdout, stderr) = run_in(&deep, db.url(), &[], &["migrate", "status"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("pending  202501010000_widgets"), "{stdout}");

    // Named by --config from an unrelated directory, as an installed binary would be.
    let (code, _, stderr) = run_in(
        elsewhere.path(),
        db.url(),
        &[],
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

    // Named by DBOPS_CONFIG, as a readiness probe would be configured.
    let (code, stdout, stderr) = run_in(
        elsewhere.path(),
        db.url(),
        &[("DBOPS_CONFIG", config)],
        &["health", "--target", "operational"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ready"), "{stdout}");
}

#[test]
fn lint_finds_the_project_migrations_and_names_them_from_where_it_runs() {
    let project = project();
    let root = project.path();
    std::fs::write(
        root.join("db/migrations/202501020000_t.up.sql"),
        "CREATE TABLE t (id bigint);",
    )
    .unwrap();
    std::fs::write(
        root.join("db/migrations/202501020000_t.down.sql"),
        "DROP TABLE t;",
    )
    .unwrap();
    let url = "postgres://127.0.0.1:1/x";
    let args = ["lint", "--format", "github"];

    // From the project root, files are named relative to it, as GitHub
    // annotations need.
    let (code, stdout, stderr) = run_in(root, url, &[], &args);
    assert_eq!(code, 11, "{stdout}{stderr}");
    assert!(
        stdout.contains("file=db/migrations/202501020000_t.up.sql,"),
        "{stdout}"
    );

    // From below it, the same files are found, named by their full path.
    let (code, stdout, stderr) = run_in(&root.join("src/deep"), url, &[], &args);
    assert_eq!(code, 11, "{stdout}{stderr}");
    let full = root.join("db/migrations/202501020000_t.up.sql");
    assert!(
        stdout.contains(&format!("file={},", full.display())),
        "{stdout}"
    );
}
