//! The real `dbops` binary: `seed operational`, `seed analytics` and `partitions ensure` against a migrated database.

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

const PEPPER: &str = "a test pepper, long enough to be accepted by the seeder";

fn dbops(url: &str, pepper: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env_remove("ANALYTICS_URL")
        .env_remove("DBOPS_API_KEY_PEPPER")
        .env("DB_URL", url)
        .env("NO_COLOR", "1")
        .args(args);
    if let Some(pepper) = pepper {
        command.env("DBOPS_API_KEY_PEPPER", pepper);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn migrated() -> TestDb {
    let db = TestDb::new().await;
    db.apply_up_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/operational"))
        .await;
    db
}

#[tokio::test]
async fn seeding_needs_the_pepper_and_shows_new_keys_once() {
    let db = migrated().await;
    let (code, _, stderr) = dbops(db.url(), None, &["seed", "operational"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("DBOPS_API_KEY_PEPPER is not set"),
        "{stderr}"
    );
    let (code, _, stderr) = dbops(db.url(), Some("short"), &["seed", "operational"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(
        !stderr.contains("short"),
        "the pepper itself is never printed: {stderr}"
    );

    let (code, stdout, stderr) = dbops(
        db.url(),
        Some(PEPPER),
        &["seed", "operational", "--seed", "4"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("seeded 3 organization(s), 15 user(s), 9 API key(s)"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("dbk_").count(), 9, "{stdout}");
    assert!(
        !stderr.contains("dbk_"),
        "secrets stay out of the log: {stderr}"
    );

    let (code, stdout, stderr) = dbops(
        db.url(),
        Some(PEPPER),
        &["seed", "operational", "--seed", "4"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("seeded 0 organization(s), 0 user(s), 0 API key(s)"),
        "{stdout}"
    );
    assert!(!stdout.contains("dbk_"), "{stdout}");

    let (code, _, stderr) = dbops(
        db.url(),
        Some(PEPPER),
        &["seed", "operational", "--seed", "5"],
    );
    assert_eq!(code, 3, "another seed is refused: {stderr}");
    assert!(stderr.contains("seed 4"), "{stderr}");
}

#[tokio::test]
async fn analytics_seed_and_partition_maintenance() {
    let db = migrated().await;
    let analytics = [
        "seed",
        "analytics",
        "--events",
        "20000",
        "--days",
        "2",
        "--orgs",
        "5",
        "--seed",
        "3",
    ];
    let (code, stdout, stderr) = dbops(db.url(), Some(PEPPER), &analytics);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("20000 event(s) loaded"), "{stdout}");
    let (code, stdout, stderr) = dbops(db.url(), Some(PEPPER), &analytics);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(" 0 event(s) loaded") && stdout.contains("20000 already present"),
        "{stdout}"
    );

    let (code, _, stderr) = dbops(
        db.url(),
        Some(PEPPER),
        &["seed", "analytics", "--events", "10", "--late-share", "2"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("--late-share"), "{stderr}");

    let (code, stdout, stderr) = dbops(
        db.url(),
        None,
        &["partitions", "ensure", "--ahead-days", "10", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["table"], "public.usage_events");
    // The migration made today and 7 days ahead; 10 days ahead needs 3 more.
    assert_eq!(report["created"].as_array().unwrap().len(), 3, "{stdout}");
    let (code, stdout, _) = dbops(
        db.url(),
        None,
        &["partitions", "ensure", "--ahead-days", "10"],
    );
    assert_eq!(code, 0);
    assert!(
        stdout.contains("0 partition(s) created, 0 retired, 0 row(s) moved"),
        "{stdout}"
    );

    let (code, _, stderr) = dbops(
        db.url(),
        None,
        &["partitions", "ensure", "--table", "organizations"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("organizations"), "{stderr}");
}
