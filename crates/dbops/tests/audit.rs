//! The audit trail against a database superuser: every tampering of issue 14,
//! each checked four ways (with and without the audit key, with and without
//! the head published before the tampering), asserting which are detected.
//! docs/security.md has the same table.

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

mod support;

/// The audit key of these tests (any 32 bytes or more).
const KEY: &str = "an audit key the database never sees, 40+ bytes";

fn migration(dir: &Path, version: i64, table: &str) {
    std::fs::write(
        dir.join(format!("{version}_{table}.up.sql")),
        format!("CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY, CONSTRAINT {table}_pkey PRIMARY KEY (id));"),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{version}_{table}.down.sql")),
        format!("DROP TABLE {table};"),
    )
    .unwrap();
}

/// Runs dbops, with the tests' audit key or without one.
fn dbops(url: &str, key: bool, args: &[&str]) -> (i32, String, String) {
    dbops_keyed(url, key.then_some(KEY), args)
}

/// Runs dbops with `key` in DBOPS_AUDIT_KEY, if any.
fn dbops_keyed(url: &str, key: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .env_remove("ANALYTICS_URL")
        .env_remove("DBOPS_AUDIT_KEY")
        .env("DBOPS_CONFIG", support::standalone_config())
        .env("DB_URL", url)
        .env("NO_COLOR", "1")
        .args(args);
    if let Some(key) = key {
        command.env("DBOPS_AUDIT_KEY", key);
    }
    support::outcome(command.output().unwrap())
}

/// Four entries written with the key by real runs; returns the head
/// `dbops audit head` prints, as an operator would have kept it.
async fn four_entries(db: &TestDb, dir: &Path) -> String {
    migration(dir, 202501010000, "widgets");
    migration(dir, 202501010100, "gadgets");
    let dir = dir.to_str().unwrap();
    for args in [
        ["migrate", "up", "--dir", dir],
        ["migrate", "down", "--dir", dir],
        ["migrate", "up", "--dir", dir],
    ] {
        let (code, _, stderr) = dbops(db.url(), true, &args);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, stdout, stderr) = dbops(
        db.url(),
        false,
        &["audit", "head", "--target", "operational"],
    );
    assert_eq!(code, 0, "{stderr}");
    let head = stdout
        .strip_prefix("operational: dbops.audit_log ")
        .unwrap_or_else(|| panic!("{stdout}"))
        .trim()
        .to_string();
    assert!(head.starts_with("4:"), "{head}");
    head
}

/// Recomputes every hash of dbops.audit_log and moves the head row, as an
/// attacker who knows the (public) hash formula would.
fn recompute() -> String {
    format!(
        "DO $$ DECLARE r record; prev bytea := NULL; BEGIN
           FOR r IN SELECT id FROM dbops.audit_log ORDER BY id LOOP
             UPDATE dbops.audit_log SET prev_hash = prev, entry_hash = sha256(coalesce(prev, ''::bytea) || {})
             WHERE id = r.id RETURNING entry_hash INTO prev;
           END LOOP;
           UPDATE dbops.audit_head SET last_id = (SELECT max(id) FROM dbops.audit_log), last_hash = prev
           WHERE chain = 'dbops.audit_log';
         END $$;",
        migrate_core::audit::HASHED_TEXT
    )
}

/// One tampering: what the superuser runs (with the append-only triggers
/// bypassed by `session_replication_role = replica`, which leaves no trace),
/// whether dbops writes again afterwards, and which checks must detect it:
/// [neither, key, published head, key and head].
struct Tampering {
    name: &'static str,
    sql: String,
    then_dbops_writes: bool,
    detected: [bool; 4],
    /// What the fullest check (key and head) says.
    says: &'static str,
}

fn tamperings() -> Vec<Tampering> {
    let recompute = recompute();
    let t = |name, sql: String, detected, says| Tampering {
        name,
        sql,
        then_dbops_writes: false,
        detected,
        says,
    };
    vec![
        t("edit an entry", "UPDATE dbops.audit_log SET actor = 'mallory' WHERE id = 2".into(), [true; 4], "content does not match its hash"),
        t("delete a middle entry", "DELETE FROM dbops.audit_log WHERE id = 2".into(), [true; 4], "previous-hash link is broken"),
        t(
            "edit a middle entry, recompute the later hashes and the head",
            format!("UPDATE dbops.audit_log SET actor = 'mallory' WHERE id = 2; {recompute}"),
            [false, true, true, true], "authentication code does not match",
        ),
        t(
            "delete a middle entry and its code, recompute",
            format!("DELETE FROM dbops.audit_log WHERE id = 2; DELETE FROM dbops.audit_mac WHERE entry_id = 2; {recompute}"),
            [false, true, true, true], "authentication code does not match",
        ),
        t(
            "swap two middle entries, recompute",
            format!(
                "UPDATE dbops.audit_log a SET action = b.action, metadata = b.metadata, occurred_at = b.occurred_at
                 FROM dbops.audit_log b WHERE (a.id, b.id) IN ((2, 3), (3, 2)); {recompute}"
            ),
            [false, true, true, true], "authentication code does not match",
        ),
        t(
            "append a forged entry without a code, move the head",
            format!(
                "INSERT INTO dbops.audit_log (actor, action, target_type, target_id, metadata) VALUES ('mallory', 'migration.apply', 'migration', '1', '{{}}'); {recompute}"
            ),
            [true; 4], "has no authentication code, though entry 4 before it has one",
        ),
        t(
            "append a forged entry with a made-up code, move the head",
            format!(
                "INSERT INTO dbops.audit_log (actor, action, target_type, target_id, metadata) VALUES ('mallory', 'migration.apply', 'migration', '1', '{{}}'); {recompute}
                 INSERT INTO dbops.audit_mac SELECT chain, 5, key_id, sha256('made up') FROM dbops.audit_mac WHERE entry_id = 4"
            ),
            [false, true, false, true], "id 5: authentication code does not match",
        ),
        t(
            "delete the last entry and its code, move the head back",
            format!("DELETE FROM dbops.audit_log WHERE id = 4; DELETE FROM dbops.audit_mac WHERE entry_id = 4; {recompute}"),
            [false, false, true, true], "published head 4:",
        ),
        t("delete the head row", "DELETE FROM dbops.audit_head".into(), [true; 4], "has no head row in dbops.audit_head"),
        t(
            "TRUNCATE the chain, its codes and its head",
            "TRUNCATE dbops.audit_log; TRUNCATE dbops.audit_mac; DELETE FROM dbops.audit_head".into(),
            [false, false, true, true], "is gone: the chain was truncated",
        ),
        Tampering {
            name: "drop the chain, its codes and its head; dbops recreates them and writes on",
            sql: "DROP TABLE dbops.audit_log; DROP TABLE dbops.audit_mac; DELETE FROM dbops.audit_head".into(),
            then_dbops_writes: true,
            detected: [false, false, true, true],
            says: "is gone: the chain was truncated",
        },
        t(
            "remove an entry's hash",
            "UPDATE dbops.audit_log SET entry_hash = NULL WHERE id = 3".into(),
            [true; 4], "id 3: has no hash",
        ),
        t(
            "disable an append-only trigger",
            "ALTER TABLE dbops.audit_log DISABLE TRIGGER audit_log_append_only".into(),
            [true; 4], "append-only trigger audit_log_append_only is disabled",
        ),
        t(
            "drop an append-only trigger",
            "DROP TRIGGER audit_log_append_only_truncate ON dbops.audit_log".into(),
            [true; 4], "append-only trigger audit_log_append_only_truncate is missing",
        ),
        t(
            "make an append-only trigger fire only in replica sessions",
            "ALTER TABLE dbops.audit_log ENABLE REPLICA TRIGGER audit_log_append_only".into(),
            [true; 4], "audit_log_append_only fires only in replica sessions",
        ),
        t(
            "disable the codes' truncate trigger",
            "ALTER TABLE dbops.audit_mac DISABLE TRIGGER audit_mac_append_only_truncate".into(),
            [true; 4], "dbops.audit_mac: append-only trigger audit_mac_append_only_truncate is disabled",
        ),
    ]
}

#[tokio::test]
async fn every_tampering_is_detected_where_the_key_or_the_published_head_can_see_it() {
    let mut mismatches = Vec::new();
    for tampering in tamperings() {
        let db = TestDb::new().await;
        let dir = tempfile::tempdir().unwrap();
        let head = four_entries(&db, dir.path()).await;
        let (code, stdout, stderr) = dbops(
            db.url(),
            true,
            &[
                "audit",
                "verify",
                "--target",
                "operational",
                "--expect-head",
                &head,
            ],
        );
        assert_eq!(
            code, 0,
            "{}: intact before: {stdout}{stderr}",
            tampering.name
        );
        let client = db.connect().await;
        client
            .batch_execute(&format!(
                "SET session_replication_role = replica; {}; RESET session_replication_role;",
                tampering.sql
            ))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", tampering.name));
        if tampering.then_dbops_writes {
            let dir = dir.path().to_str().unwrap();
            let (code, _, stderr) = dbops(db.url(), true, &["migrate", "down", "--dir", dir]);
            assert_eq!(code, 0, "{}: {stderr}", tampering.name);
        }
        let ways = [(false, false), (true, false), (false, true), (true, true)];
        for ((key, with_head), expected) in ways.into_iter().zip(tampering.detected) {
            let mut args = vec!["audit", "verify", "--target", "operational"];
            if with_head {
                args.extend(["--expect-head", head.as_str()]);
            }
            let (code, stdout, stderr) = dbops(db.url(), key, &args);
            let detected = code == 16;
            assert!(
                code == 0 || code == 16,
                "{}: verify failed: {stdout}{stderr}",
                tampering.name
            );
            if key && with_head && !stdout.contains(tampering.says) {
                mismatches.push(format!(
                    "{}: the output does not say {:?}\n{stdout}",
                    tampering.name, tampering.says
                ));
            }
            if detected != expected {
                mismatches.push(format!(
                    "{} (key: {key}, head: {with_head}): detected {detected}, expected {expected}\n{stdout}",
                    tampering.name
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test]
async fn entries_from_before_the_key_still_verify_and_are_marked_unauthenticated() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    migration(dir.path(), 202501010000, "widgets");
    let dir_arg = dir.path().to_str().unwrap();
    for key in [false, false, true] {
        let (code, _, stderr) = dbops(db.url(), key, &["migrate", "up", "--dir", dir_arg]);
        assert_eq!(code, 0, "{stderr}");
        let (code, _, stderr) = dbops(db.url(), key, &["migrate", "down", "--dir", dir_arg]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, stdout, stderr) = dbops(
        db.url(),
        true,
        &["audit", "verify", "--target", "operational"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("6 chained audit entries checked, 0 break(s)")
            && stdout.contains(
                "2 entries authenticated, 4 unauthenticated (written before the key was in use)"
            ),
        "{stdout}"
    );
    // An empty DBOPS_AUDIT_KEY (an env file's `DBOPS_AUDIT_KEY=`) is no key.
    let (code, stdout, _) = dbops_keyed(
        db.url(),
        Some(""),
        &["audit", "verify", "--target", "operational"],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("no DBOPS_AUDIT_KEY: 6 entries checked by their hashes only"),
        "{stdout}"
    );

    // A runner without the key after entries with it: flagged, as a forger would be.
    let (code, _, stderr) = dbops(db.url(), false, &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = dbops(
        db.url(),
        true,
        &["audit", "verify", "--target", "operational"],
    );
    assert_eq!(code, 16, "{stdout}");
    assert!(
        stdout.contains("id 7: has no authentication code, though entry 6 before it has one"),
        "{stdout}"
    );

    // Another key: its codes do not match.
    let other = "x".repeat(32);
    let args = ["audit", "verify", "--target", "operational"];
    let (code, stdout, _) = dbops_keyed(db.url(), Some(&other), &args);
    assert_eq!(code, 16, "{stdout}");
}

#[tokio::test]
async fn a_rotated_key_leaves_the_earlier_codes_unchecked_but_in_order() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    migration(dir.path(), 202501010000, "widgets");
    let dir_arg = dir.path().to_str().unwrap();
    let new_key = "the key after the rotation, 32 bytes or more";
    let verify = ["audit", "verify", "--target", "operational"];
    for key in [KEY, new_key] {
        let (code, _, stderr) =
            dbops_keyed(db.url(), Some(key), &["migrate", "up", "--dir", dir_arg]);
        assert_eq!(code, 0, "{stderr}");
        let (code, _, stderr) =
            dbops_keyed(db.url(), Some(key), &["migrate", "down", "--dir", dir_arg]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, stdout, _) = dbops_keyed(db.url(), Some(new_key), &verify);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("2 entries authenticated, 0 unauthenticated (written before the key was in use), 2 by an earlier key (not checked)"),
        "{stdout}"
    );
    // A runner still on the old key after the rotation: its entry is out of order.
    let (code, _, stderr) = dbops_keyed(db.url(), Some(KEY), &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = dbops_keyed(db.url(), Some(new_key), &verify);
    assert_eq!(code, 16, "{stdout}");
    assert!(
        stdout.contains("id 5: authenticated by another key")
            && stdout.contains("after entry 4 of this key"),
        "{stdout}"
    );
}

#[tokio::test]
async fn heads_are_published_in_logs_and_checked_from_a_file() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    migration(dir.path(), 202501010000, "widgets");
    let dir_arg = dir.path().to_str().unwrap();
    let (code, _, stderr) = dbops(
        db.url(),
        true,
        &["--log-format", "json", "migrate", "up", "--dir", dir_arg],
    );
    assert_eq!(code, 0, "{stderr}");
    let published: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("audit.head"))
        .collect();
    assert!(!published.is_empty(), "no audit.head in the log: {stderr}");
    assert!(!stderr.contains(KEY), "the key is never logged");
    // Beside the migrations folder, which may hold only migrations.
    let logs = tempfile::tempdir().unwrap();
    let heads = logs.path().join("heads.log");
    std::fs::write(&heads, published.join("\n")).unwrap();
    let (code, stdout, _) = dbops(
        db.url(),
        false,
        &[
            "audit",
            "verify",
            "--target",
            "operational",
            "--heads",
            heads.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("published heads: 1 of 1 still in the chain"),
        "{stdout}"
    );

    // A file without heads, a malformed head, an unusable key: configuration errors.
    let empty = logs.path().join("empty.log");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let (code, _, stderr) = dbops(
        db.url(),
        false,
        &["audit", "verify", "--heads", empty.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no published head (SEQ:HASH)"), "{stderr}");
    let (code, _, stderr) = dbops(
        db.url(),
        false,
        &["audit", "verify", "--expect-head", "4:beef"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is not a published head SEQ:HASH"),
        "{stderr}"
    );
    let (code, _, stderr) = dbops_keyed(db.url(), Some("short secret"), &["audit", "verify"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("DBOPS_AUDIT_KEY: is 12 bytes"), "{stderr}");
    assert!(!stderr.contains("short secret"), "{stderr}");

    // health and lint --db report a disabled append-only trigger.
    db.connect()
        .await
        .batch_execute("ALTER TABLE dbops.audit_log DISABLE TRIGGER audit_log_append_only")
        .await
        .unwrap();
    // health and lint --db read each target's history: both targets are this folder.
    let config = logs.path().join("migrate.toml");
    std::fs::write(
        &config,
        format!(
            "[targets.operational]\ndir = {dir_arg:?}\nurl_env = \"DB_URL\"\n\n[targets.analytics]\ndir = {dir_arg:?}\nurl_env = \"DB_URL\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (code, stdout, stderr) = dbops(
        db.url(),
        false,
        &["--config", config, "health", "--target", "operational"],
    );
    assert_eq!(code, 13, "{stdout}{stderr}");
    let disabled = "dbops.audit_log: append-only trigger audit_log_append_only is disabled";
    assert!(stdout.contains(disabled), "{stdout}");
    let (code, stdout, stderr) = dbops(
        db.url(),
        false,
        &["--config", config, "lint", "--db", dir_arg],
    );
    assert_eq!(code, 11, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("error: audit trail: operational: {disabled}")),
        "{stderr}"
    );
}
