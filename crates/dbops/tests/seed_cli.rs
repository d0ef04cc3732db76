//! The real `dbops` binary: `seed operational`, `seed analytics` and `partitions ensure` against a migrated database.

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

const PEPPER: &str = "a test pepper, long enough to be accepted by the seeder";

fn dbops(url: &str, pepper: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let pepper: Vec<(&str, &str)> = pepper
        .map(|p| ("DBOPS_API_KEY_PEPPER", p))
        .into_iter()
        .collect();
    dbops_with(url, &pepper, args)
}

/// `dbops args` with the pepper variables `peppers` and no others.
fn dbops_with(url: &str, peppers: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env_remove("ANALYTICS_URL")
        .env_remove("DBOPS_API_KEY_PEPPER")
        .env_remove("DBOPS_API_KEY_PEPPERS")
        .env("DB_URL", url)
        .env("NO_COLOR", "1")
        .envs(peppers.iter().copied())
        .args(args);
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
        stderr.contains("DBOPS_API_KEY_PEPPERS (or DBOPS_API_KEY_PEPPER) is not set"),
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

async fn count(db: &TestDb, table: &str) -> i64 {
    db.connect()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn seeding_is_refused_where_the_environment_does_not_allow_it() {
    let db = migrated().await;
    for args in [
        &["seed", "operational", "--env", "production"][..],
        &["seed", "analytics", "--events", "10", "--env", "production"][..],
    ] {
        let (code, stdout, stderr) = dbops(db.url(), Some(PEPPER), args);
        assert_eq!(code, 12, "{args:?}: {stderr}");
        assert!(
            stderr.contains("environment production does not allow seeding (allow_seed in [environments.production]"),
            "{stderr}"
        );
        assert!(!stdout.contains("dbk_"), "{stdout}");
    }
    assert_eq!(count(&db, "organizations").await, 0, "nothing was written");
    assert_eq!(count(&db, "usage_events").await, 0, "nothing was written");

    let (code, _, stderr) = dbops(
        db.url(),
        Some(PEPPER),
        &["seed", "operational", "--env", "nowhere"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("unknown environment \"nowhere\""),
        "{stderr}"
    );

    let (code, stdout, stderr) = dbops(
        db.url(),
        Some(PEPPER),
        &["seed", "operational", "--env", "staging"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("dbk_").count(), 9, "{stdout}");
}

#[tokio::test]
async fn a_keyring_names_the_pepper_of_new_keys_and_one_pepper_variable_is_enough() {
    let db = migrated().await;
    let keyring = "7=the-seventh-pepper-of-32-bytes-or-more 1=the-first-pepper-of-32-bytes-or-more";
    let (code, _, stderr) = dbops_with(
        db.url(),
        &[
            ("DBOPS_API_KEY_PEPPERS", keyring),
            ("DBOPS_API_KEY_PEPPER", PEPPER),
        ],
        &["seed", "operational"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("both DBOPS_API_KEY_PEPPERS and DBOPS_API_KEY_PEPPER are set"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("pepper-of"),
        "no secret in messages: {stderr}"
    );
    assert_eq!(count(&db, "api_keys").await, 0);

    let (code, stdout, stderr) = dbops_with(
        db.url(),
        &[("DBOPS_API_KEY_PEPPERS", keyring)],
        &["seed", "operational"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches("dbk_").count(), 9, "{stdout}");
    let ids: Vec<String> = db
        .connect()
        .await
        .query("SELECT DISTINCT pepper_id FROM api_keys", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids, ["7"]);
}

/// The keys a `seed operational` run printed, in order.
fn printed_keys(stdout: &str) -> Vec<String> {
    stdout
        .split_whitespace()
        .filter(|word| word.starts_with("dbk_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn two_databases_seeded_with_different_peppers_print_different_keys() {
    let (a, b, c) = (migrated().await, migrated().await, migrated().await);
    let seed = ["seed", "operational", "--seed", "3"];
    let other = "another test pepper, just as long as the first one";
    let run = |db: &TestDb, pepper: &str| {
        let (code, stdout, stderr) = dbops(db.url(), Some(pepper), &seed);
        assert_eq!(code, 0, "{stderr}");
        printed_keys(&stdout)
    };
    let (from_a, from_b, from_c) = (run(&a, PEPPER), run(&b, other), run(&c, PEPPER));
    assert_eq!(from_a.len(), 9);
    assert_eq!(
        from_a, from_c,
        "the same seed and pepper print the same keys"
    );
    for (key_a, key_b) in from_a.iter().zip(&from_b) {
        assert_eq!(key_a[..16], key_b[..16], "the seed fixes the public prefix");
        assert_ne!(key_a, key_b);
    }
}
