//! The real `dbops docs` binary on the project's migrations: generate, validate, exit codes, `--fix`.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `dbops ARGS` in the workspace root (for configs/ and migrations/), with
/// the analytics schema in the same database; returns (exit code, stdout, stderr).
fn run(url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::cargo_bin("dbops")
        .unwrap()
        .current_dir(workspace())
        .env("DB_URL", url)
        .env_remove("ANALYTICS_URL")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn generate_validate_and_fix_on_the_project_schema() {
    let db = TestDb::new().await;
    let (code, _, stderr) = run(db.url(), &["migrate", "up", "--target", "all"]);
    assert_eq!(code, 0, "{stderr}");
    let docs = tempfile::tempdir().unwrap();
    let docs_dir = docs.path().to_str().unwrap();

    let (code, stdout, _) = run(db.url(), &["docs", "validate", "--docs-dir", docs_dir]);
    assert_eq!(
        (code, stdout.trim()),
        (
            14,
            format!("`{docs_dir}/dictionary.md`: missing: run `dbops docs generate`").as_str()
        )
    );

    let (code, stdout, stderr) = run(db.url(), &["docs", "generate", "--docs-dir", docs_dir]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("wrote") && stdout.contains("dictionary.md"),
        "{stdout}"
    );
    let dictionary = std::fs::read_to_string(docs.path().join("dictionary.md")).unwrap();
    for table in ["## `api_keys`", "## `usage_events`", "## `analytics."] {
        assert!(dictionary.contains(table), "{table} documented");
    }
    assert!(
        !dictionary.contains("## `usage_events_p"),
        "partitions are folded into their parent"
    );
    let (code, stdout, stderr) = run(db.url(), &["docs", "validate", "--docs-dir", docs_dir]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let client = db.connect().await;
    client
        .batch_execute("ALTER TABLE api_keys ALTER COLUMN revoked_at SET NOT NULL")
        .await
        .unwrap();
    let (code, stdout, _) = run(db.url(), &["docs", "validate", "--docs-dir", docs_dir]);
    assert_eq!(code, 14);
    assert_eq!(
        stdout.trim(),
        "column `api_keys.revoked_at`: NOT NULL in the database, nullable in the dictionary"
    );
    let (code, json, _) = run(
        db.url(),
        &["docs", "validate", "--docs-dir", docs_dir, "--json"],
    );
    assert_eq!(code, 14);
    let findings: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(findings[0]["kind"], "changed");
    assert_eq!(findings[0]["subject"], "column `api_keys.revoked_at`");

    let (code, stdout, stderr) = run(
        db.url(),
        &["docs", "validate", "--docs-dir", docs_dir, "--fix"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("wrote"), "{stdout}");

    // An unenforced foreign key is a failed data check, not stale docs.
    client
        .batch_execute("ALTER TABLE users DISABLE TRIGGER ALL")
        .await
        .unwrap();
    let (code, stdout, _) = run(db.url(), &["docs", "validate", "--docs-dir", docs_dir]);
    assert_eq!(code, 15, "{stdout}");
    assert!(
        stdout.contains("a trigger enforcing it is disabled"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_bad_classification_map_is_a_configuration_error() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("map.toml");
    std::fs::write(&map, "[tables.users]\nretention = \"forever\"\n[tables.users.columns]\nemail = { class = \"secretish\", protection = \"none\" }\n").unwrap();
    let (code, _, stderr) = run(
        db.url(),
        &[
            "docs",
            "generate",
            "--docs-dir",
            dir.path().to_str().unwrap(),
            "--classification",
            map.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(
            "map.toml:4: table `users`, column `email`, setting `class`: unknown class `secretish`"
        ),
        "{stderr}"
    );
}
