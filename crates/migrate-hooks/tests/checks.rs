//! Each standard check against a real PostgreSQL database, driven the way the
//! engine drives it: `before`, the migration's SQL, `after`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use migrate_core::hooks::{Finding, Hook, Outcome, Severity, Statements};
use migrate_hooks::{HooksConfig, OnBlocked, StillBlocked};
use support::context;
use testdb::TestDb;
use tokio_postgres::Client;

/// The configuration with only the checks `enable` turns on.
fn only(enable: impl FnOnce(&mut HooksConfig)) -> HooksConfig {
    let mut config = HooksConfig::default();
    config.blocking_sessions.enabled = false;
    config.row_counts.enabled = false;
    config.table_rewrites = false;
    config.invalid_indexes = false;
    config.not_valid_constraints = false;
    config.long_running.enabled = false;
    enable(&mut config);
    config
}

/// The standard hook with only the checks `enable` turns on.
fn checks(enable: impl FnOnce(&mut HooksConfig)) -> Arc<dyn Hook> {
    migrate_hooks::standard_hooks(&only(enable))
        .pop()
        .expect("a check is enabled")
}

#[test]
fn the_configuration_chooses_the_checks() {
    let names = |config: &HooksConfig| -> Vec<String> {
        migrate_hooks::standard_hooks(config)
            .iter()
            .map(|hook| hook.name().to_string())
            .collect()
    };
    assert_eq!(names(&HooksConfig::default()), ["standard-checks"]);
    let off = HooksConfig {
        enabled: false,
        ..HooksConfig::default()
    };
    assert!(names(&off).is_empty());
    assert_eq!(
        names(&only(|config| config.long_running.enabled = true)),
        ["standard-checks"]
    );
    assert!(names(&only(|_| {})).is_empty());
}

/// Runs `sql` between the hook's before- and after-check, as the engine
/// does, and returns every finding. The migration may fail: after-checks
/// run after failed migrations too.
async fn run(client: &Client, hook: &dyn Hook, sql: &str) -> Vec<Finding> {
    let statements = Statements::default();
    let ctx = context(client, &statements, sql);
    let prepared = hook.before(&ctx).await.expect("before-check runs");
    let mut findings = prepared.findings.clone();
    if findings.iter().any(|f| f.severity == Severity::Refuse) {
        return findings;
    }
    // As the engine does: a migration queued behind a lock gives up.
    client
        .batch_execute("SET lock_timeout = '1s'")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let result = client.batch_execute(sql).await;
    let outcome = Outcome {
        succeeded: result.is_ok(),
        duration: started.elapsed(),
        error: result.err().map(|e| e.to_string()),
    };
    findings.extend(
        hook.after(&ctx, &prepared, &outcome)
            .await
            .expect("after-check runs"),
    );
    findings
}

/// Like [`run`], with the migration and the after-check in one transaction,
/// committed afterwards: how the engine runs a transactional migration.
async fn run_in_transaction(client: &Client, hook: &dyn Hook, sql: &str) -> Vec<Finding> {
    let statements = Statements::default();
    let ctx = context(client, &statements, sql);
    let prepared = hook.before(&ctx).await.expect("before-check runs");
    let started = std::time::Instant::now();
    client.batch_execute("BEGIN").await.unwrap();
    client.batch_execute(sql).await.expect("the migration runs");
    let outcome = Outcome {
        succeeded: true,
        duration: started.elapsed(),
        error: None,
    };
    let mut findings = prepared.findings.clone();
    findings.extend(
        hook.after(&ctx, &prepared, &outcome)
            .await
            .expect("after-check runs"),
    );
    client.batch_execute("COMMIT").await.unwrap();
    findings
}

fn blocking(
    action: OnBlocked,
    max_wait: Duration,
    when_still_blocked: StillBlocked,
) -> Arc<dyn Hook> {
    checks(|config| {
        let config = &mut config.blocking_sessions;
        config.enabled = true;
        config.action = action;
        config.max_wait = max_wait;
        config.poll_interval = Duration::from_millis(50);
        config.when_still_blocked = when_still_blocked;
        config.short_transaction = Duration::ZERO;
    })
}

fn row_counts(exact_max_rows: u64) -> Arc<dyn Hook> {
    checks(|config| {
        config.row_counts.enabled = true;
        config.row_counts.exact_max_rows = exact_max_rows;
    })
}

async fn setup(db: &TestDb, sql: &str) -> Client {
    let client = db.connect().await;
    client.batch_execute(sql).await.expect("setup SQL runs");
    client
}

/// `other`, another session, holding a lock on `users` inside an open
/// transaction; and its pid.
async fn hold_lock(other: Client) -> (Client, i32) {
    other
        .batch_execute("BEGIN; LOCK TABLE users IN ROW EXCLUSIVE MODE;")
        .await
        .unwrap();
    let pid: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    (other, pid)
}

#[tokio::test]
async fn a_session_holding_a_lock_on_a_touched_table_is_refused_or_warned_about() {
    let db = TestDb::new().await;
    let client = setup(&db, "CREATE TABLE users (id int PRIMARY KEY, email text);").await;
    let (_other, pid) = hold_lock(db.connect().await).await;
    let alter = "ALTER TABLE users ADD COLUMN nickname text;";

    let findings = run(
        &client,
        &*blocking(OnBlocked::Refuse, Duration::ZERO, StillBlocked::Refuse),
        alter,
    )
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Refuse);
    assert!(
        findings[0].message.contains(&format!("pid {pid} "))
            && findings[0]
                .message
                .contains("holds RowExclusiveLock on users"),
        "{}",
        findings[0].message
    );
    assert_eq!(findings[0].data["sessions"][0]["pid"], pid);
    assert_eq!(findings[0].data["sessions"][0]["reason"], "holds_lock");
    assert_eq!(findings[0].data["sessions"][0]["table"], "users");

    let findings = run(
        &client,
        &*blocking(OnBlocked::Warn, Duration::ZERO, StillBlocked::Refuse),
        alter,
    )
    .await;
    assert_eq!(findings[0].severity, Severity::Warning, "{findings:#?}");

    // Waiting gives up after max_wait and then does what it is told.
    let started = std::time::Instant::now();
    let findings = run(
        &client,
        &*blocking(
            OnBlocked::Wait,
            Duration::from_millis(300),
            StillBlocked::Refuse,
        ),
        alter,
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(findings[0].severity, Severity::Refuse, "{findings:#?}");
    assert!(
        findings[0].message.contains("after waiting"),
        "{}",
        findings[0].message
    );

    // A lock holder whose transaction is young is no blocker yet.
    let hook = checks(|config| {
        config.blocking_sessions.enabled = true;
        config.blocking_sessions.action = OnBlocked::Refuse;
        config.blocking_sessions.short_transaction = Duration::from_secs(3600);
    });
    let statements = Statements::default();
    let prepared = hook
        .before(&context(&client, &statements, alter))
        .await
        .unwrap();
    assert!(prepared.findings.is_empty(), "{:#?}", prepared.findings);

    // A migration that only creates tables has nothing to wait for.
    let findings = run(
        &client,
        &*blocking(OnBlocked::Refuse, Duration::ZERO, StillBlocked::Refuse),
        "CREATE TABLE teams (id int PRIMARY KEY);",
    )
    .await;
    assert!(findings.is_empty(), "{findings:#?}");
}

/// Opens a connection to `db` as `role`.
async fn connect_as(db: &TestDb, role: &str) -> Client {
    let parsed = pgconn::ConnConfig::parse(db.url()).unwrap();
    let mut config = parsed.tokio_postgres_config("");
    config.user(role);
    let (client, connection) = config
        .connect(parsed.tls_connector().unwrap())
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn a_role_without_pg_read_all_stats_sees_a_blocker_of_another_role() {
    let db = TestDb::new().await;
    // Roles belong to the server, not the test's database: named after it.
    let owner = format!("{}_owner", db.name());
    let other = format!("{}_other", db.name());
    let client = setup(
        &db,
        &format!(
            "CREATE ROLE {owner}; CREATE ROLE {other} LOGIN;
             CREATE TABLE users (id int PRIMARY KEY, email text);
             ALTER TABLE users OWNER TO {owner}; GRANT INSERT ON users TO {other};"
        ),
    )
    .await;
    let (blocker, pid) = hold_lock(connect_as(&db, &other).await).await;
    // The migration runs as the table's owner, with no other privilege.
    client
        .batch_execute(&format!("SET ROLE {owner}"))
        .await
        .unwrap();
    // The default short_transaction (1s): a holder whose transaction's age
    // the role cannot see counts once it has been seen holding that long.
    let hook = checks(|config| {
        config.blocking_sessions.enabled = true;
        config.blocking_sessions.action = OnBlocked::Refuse;
    });
    let alter = "ALTER TABLE users ADD COLUMN nickname text;";
    let findings = run(&client, &*hook, alter).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(
        findings[0]
            .message
            .contains(&format!("GRANT pg_read_all_stats TO {owner}")),
        "{}",
        findings[0].message
    );
    assert_eq!(findings[1].severity, Severity::Refuse);
    let session = &findings[1].data["sessions"][0];
    assert_eq!(session["pid"], pid);
    assert_eq!(session["user"], other.as_str());
    assert_eq!(session["reason"], "holds_lock");
    assert_eq!(session["transaction_seconds"], serde_json::Value::Null);
    assert!(
        session["seen_seconds"].as_f64().unwrap() >= 1.0,
        "{session}"
    );
    assert!(
        findings[1].message.contains(&format!(
            "pid {pid} (user {other}, transaction start hidden, seen for"
        )),
        "{}",
        findings[1].message
    );
    // Never the query text: it may carry secrets.
    let text = format!("{findings:?}");
    assert!(!text.contains("LOCK TABLE"), "{text}");

    // Said once per run, not once per migration.
    let findings = run(&client, &*hook, alter).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Refuse);

    // Once the other role's transaction ends, nothing blocks.
    blocker.batch_execute("COMMIT").await.unwrap();
    let findings = run(&client, &*hook, alter).await;
    assert!(findings.is_empty(), "{findings:#?}");

    // With the grant, the blocker's transaction age is seen, and no warning.
    client.batch_execute("RESET ROLE").await.unwrap();
    client
        .batch_execute(&format!("GRANT pg_read_all_stats TO {owner}"))
        .await
        .unwrap();
    client
        .batch_execute(&format!("SET ROLE {owner}"))
        .await
        .unwrap();
    blocker
        .batch_execute("BEGIN; LOCK TABLE users IN ROW EXCLUSIVE MODE; SELECT pg_sleep(1.1);")
        .await
        .unwrap();
    let hook = checks(|config| {
        config.blocking_sessions.enabled = true;
        config.blocking_sessions.action = OnBlocked::Refuse;
    });
    let findings = run(&client, &*hook, "ALTER TABLE users ADD COLUMN alias text;").await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(
        findings[0].data["sessions"][0]["transaction_seconds"]
            .as_f64()
            .unwrap()
            >= 1.0,
        "{findings:#?}"
    );
    blocker.batch_execute("COMMIT").await.unwrap();
    drop(blocker);
    client
        .batch_execute(&format!(
            "RESET ROLE; DROP TABLE users; DROP ROLE {owner}; DROP ROLE {other};"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_table_the_role_may_not_read_is_estimated_rather_than_counted() {
    let db = TestDb::new().await;
    let owner = format!("{}_owner", db.name());
    let client = setup(
        &db,
        &format!(
            "CREATE ROLE {owner};
             CREATE TABLE organizations (id int PRIMARY KEY);
             INSERT INTO organizations SELECT generate_series(1, 3);
             GRANT REFERENCES ON organizations TO {owner};
             CREATE TABLE users (id int PRIMARY KEY, organization_id int);
             ALTER TABLE users OWNER TO {owner};
             SET ROLE {owner};"
        ),
    )
    .await;
    let findings = run(
        &client,
        &*row_counts(1000),
        "ALTER TABLE users ADD CONSTRAINT users_organization_id_fkey
             FOREIGN KEY (organization_id) REFERENCES organizations (id);
         DELETE FROM users WHERE organization_id IS NULL;",
    )
    .await;
    let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "organizations: 3 → 3 rows (unchanged, estimated from statistics)",
            "users: 0 → 0 rows (unchanged, exact count)"
        ]
    );
    client
        .batch_execute(&format!(
            "RESET ROLE; DROP TABLE users, organizations; DROP ROLE {owner};"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn sessions_queued_behind_a_lock_are_named_with_the_holder() {
    let db = TestDb::new().await;
    let client = setup(&db, "CREATE TABLE users (id int PRIMARY KEY, email text);").await;
    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    let waiter = db.connect().await;
    let waiting = tokio::spawn(async move {
        waiter
            .batch_execute("BEGIN; SELECT count(*) FROM users; COMMIT;")
            .await
            .unwrap();
    });
    // Until the reader queues behind the lock.
    for _ in 0..100 {
        let queued: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'users'::regclass",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if queued > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let findings = run(
        &client,
        &*blocking(OnBlocked::Refuse, Duration::ZERO, StillBlocked::Refuse),
        "ALTER TABLE users ADD COLUMN nickname text;",
    )
    .await;
    holder.batch_execute("COMMIT").await.unwrap();
    waiting.await.unwrap();
    let mut reasons: Vec<(&str, &str)> = findings[0].data["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["reason"].as_str().unwrap(), s["mode"].as_str().unwrap()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("holds_lock", "AccessExclusiveLock"),
            ("waits_for_lock", "AccessShareLock")
        ],
        "{findings:#?}"
    );
    assert!(
        findings[0]
            .message
            .contains("waits for AccessShareLock on users"),
        "{}",
        findings[0].message
    );
}

#[tokio::test]
async fn waiting_ends_when_the_blocking_session_commits() {
    let db = TestDb::new().await;
    let client = setup(&db, "CREATE TABLE users (id int PRIMARY KEY, email text);").await;
    let (other, _) = hold_lock(db.connect().await).await;
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.batch_execute("COMMIT").await.unwrap();
        other
    });
    let findings = run(
        &client,
        &*blocking(
            OnBlocked::Wait,
            Duration::from_secs(30),
            StillBlocked::Refuse,
        ),
        "ALTER TABLE users ADD COLUMN nickname text;",
    )
    .await;
    release.await.unwrap();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Info);
    assert!(
        findings[0].message.starts_with("waited "),
        "{}",
        findings[0].message
    );
    let columns: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(columns, 1, "the migration ran after the wait");
}

#[tokio::test]
async fn a_long_open_transaction_counts_as_blocking() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE users (id int PRIMARY KEY); CREATE TABLE other (id int);",
    )
    .await;
    let idle = db.connect().await;
    // The transaction touches another table only: its age alone makes it block.
    idle.batch_execute("BEGIN; SELECT * FROM other;")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hook = checks(|config| {
        config.blocking_sessions.enabled = true;
        config.blocking_sessions.action = OnBlocked::Warn;
        config.blocking_sessions.long_transaction = Duration::from_millis(100);
    });
    let findings = run(&client, &*hook, "ALTER TABLE users ADD COLUMN x int;").await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        findings[0].data["sessions"][0]["reason"],
        "long_transaction"
    );
    assert!(
        findings[0].message.contains("has a long-open transaction"),
        "{}",
        findings[0].message
    );
}

#[tokio::test]
async fn an_alter_column_type_rewrite_is_reported_and_an_added_column_is_not() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE users (id int PRIMARY KEY, email text);
         INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 100) g;",
    )
    .await;
    let findings = run(
        &client,
        &*checks(|config| config.table_rewrites = true),
        "ALTER TABLE users ADD COLUMN nickname text;",
    )
    .await;
    assert!(findings.is_empty(), "{findings:#?}");

    let findings = run(
        &client,
        &*checks(|config| config.table_rewrites = true),
        "ALTER TABLE users ALTER COLUMN id TYPE bigint;",
    )
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(
        findings[0].message.starts_with("users was rewritten"),
        "{}",
        findings[0].message
    );
    assert_eq!(findings[0].data["table"], "users");
    assert_ne!(
        findings[0].data["relfilenode_before"],
        findings[0].data["relfilenode_after"]
    );
}

#[tokio::test]
async fn a_rewrite_of_a_partitioned_table_names_its_partitions() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE events_p1 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
         CREATE TABLE events_p2 PARTITION OF events FOR VALUES FROM ('2025-02-01') TO ('2025-03-01');",
    )
    .await;
    let findings = run(
        &client,
        &*checks(|config| config.table_rewrites = true),
        "ALTER TABLE events ALTER COLUMN id TYPE bigint;",
    )
    .await;
    let relations: Vec<&str> = findings
        .iter()
        .map(|f| f.data["relation"].as_str().unwrap())
        .collect();
    assert_eq!(relations, ["events_p1", "events_p2"], "{findings:#?}");
    assert!(
        findings[0]
            .message
            .starts_with("events_p1 (partition of events) was rewritten")
    );
}

#[tokio::test]
async fn a_failed_create_index_concurrently_leaves_an_invalid_index_that_is_reported() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE users (id int PRIMARY KEY, email text);
         INSERT INTO users VALUES (1, 'a@example.com'), (2, 'a@example.com');",
    )
    .await;
    let findings = run(
        &client,
        &*checks(|config| config.invalid_indexes = true),
        "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);",
    )
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert_eq!(
        findings[0].data,
        serde_json::json!({"table": "users", "index": "users_email_key", "invalid_before": false})
    );
    assert!(
        findings[0].message.contains("was left invalid"),
        "{}",
        findings[0].message
    );

    // Still there at the next migration on the table: information, not news.
    let findings = run(
        &client,
        &*checks(|config| config.invalid_indexes = true),
        "ALTER TABLE users ADD COLUMN nickname text;",
    )
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Info);
    assert_eq!(findings[0].data["invalid_before"], true);
}

#[tokio::test]
async fn constraints_left_not_valid_are_reported() {
    let db = TestDb::new().await;
    let client = setup(&db, "CREATE TABLE users (id int PRIMARY KEY, email text);").await;
    let findings = run(
        &client,
        &*checks(|config| config.not_valid_constraints = true),
        "ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email LIKE '%@%') NOT VALID;",
    )
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert_eq!(findings[0].data["constraint"], "users_email_check");
    assert_eq!(findings[0].data["kind"], "check");
    assert!(
        findings[0]
            .message
            .contains("ALTER TABLE users VALIDATE CONSTRAINT users_email_check"),
        "{}",
        findings[0].message
    );

    let findings = run(
        &client,
        &*checks(|config| config.not_valid_constraints = true),
        "ALTER TABLE users VALIDATE CONSTRAINT users_email_check;",
    )
    .await;
    assert!(findings.is_empty(), "{findings:#?}");
}

#[tokio::test]
async fn row_counts_of_an_insert_migration_are_exact_below_the_threshold() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE models (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
         INSERT INTO models (name) VALUES ('a'), ('b'), ('c');",
    )
    .await;
    let hook = row_counts(1000);
    let findings = run(
        &client,
        &*hook,
        "INSERT INTO models (name) VALUES ('d'), ('e');",
    )
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        findings[0].data,
        serde_json::json!({"table": "models", "before": 3, "after": 5, "difference": 2, "exact": true})
    );
    assert_eq!(findings[0].message, "models: 3 → 5 rows (+2, exact count)");

    let findings = run(
        &client,
        &*hook,
        "DELETE FROM models WHERE name IN ('a', 'b');",
    )
    .await;
    assert_eq!(findings[0].severity, Severity::Warning, "{findings:#?}");
    assert_eq!(findings[0].data["difference"], -2);
}

#[tokio::test]
async fn row_counts_above_the_threshold_are_estimated_and_say_so() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE events_p1 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
         CREATE TABLE events_p2 PARTITION OF events FOR VALUES FROM ('2025-02-01') TO ('2025-03-01');
         INSERT INTO events SELECT g, '2025-01-01'::date + g % 50 FROM generate_series(1, 2000) g;
         ANALYZE events;",
    )
    .await;
    let hook = row_counts(100);
    let findings = run(
        &client,
        &*hook,
        "INSERT INTO events SELECT g, '2025-02-10' FROM generate_series(1, 500) g;",
    )
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].data["exact"], false);
    assert_eq!(findings[0].data["before"], 2000);
    assert!(
        findings[0].message.ends_with("estimated from statistics)"),
        "{}",
        findings[0].message
    );
    // PostgreSQL 15 and later flush the migration's statistics on request;
    // older servers may lag, and an estimate is allowed to.
    let after = findings[0].data["after"].as_i64().unwrap();
    assert!((2000..=2500).contains(&after), "{findings:#?}");
}

#[tokio::test]
async fn estimates_count_the_writes_of_the_open_migration_transaction() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE events (id int); INSERT INTO events SELECT generate_series(1, 1000);",
    )
    .await;
    // The setup's own statistics reach the shared ones before ANALYZE, so
    // that they are not counted twice: on request from PostgreSQL 15 on.
    // PostgreSQL 14 sends them to its statistics collector when the session
    // goes idle half a second or more after its last report, and the
    // collector takes its time: wait until it counts the setup's rows.
    client
        .batch_execute(
            "DO $$ BEGIN
                 IF current_setting('server_version_num')::int >= 150000 THEN
                     PERFORM pg_stat_force_next_flush();
                 END IF;
             END $$",
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let live: i64 = client
            .query_one("SELECT pg_stat_get_live_tuples('events'::regclass)", &[])
            .await
            .unwrap()
            .get(0);
        if live == 1000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the statistics never counted the setup's 1000 rows ({live} after 30 s)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    client.batch_execute("ANALYZE events").await.unwrap();
    let hook = row_counts(10);
    let findings = run_in_transaction(
        &client,
        &*hook,
        "INSERT INTO events SELECT generate_series(1, 300); DELETE FROM events WHERE id <= 100;",
    )
    .await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        findings[0].data,
        serde_json::json!({"table": "events", "before": 1000, "after": 1100, "difference": 100, "exact": false})
    );
}

#[tokio::test]
async fn a_dropped_table_is_reported_with_the_rows_it_had() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE teams (id int); INSERT INTO teams SELECT generate_series(1, 7);",
    )
    .await;
    let hook = row_counts(HooksConfig::default().row_counts.exact_max_rows);
    let findings = run(&client, &*hook, "DROP TABLE teams;").await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert_eq!(
        findings[0].message,
        "teams: dropped with 7 rows (exact count)"
    );
    assert_eq!(findings[0].data["after"], serde_json::Value::Null);
}

/// A `DROP TABLE` that failed left its table: the after-check reads it
/// rather than take the drop for done.
#[tokio::test]
async fn a_drop_that_failed_reports_no_dropped_table() {
    let db = TestDb::new().await;
    let client = setup(
        &db,
        "CREATE TABLE teams (id int); INSERT INTO teams SELECT generate_series(1, 7);
         CREATE VIEW team_ids AS SELECT id FROM teams;",
    )
    .await;
    let hook = row_counts(HooksConfig::default().row_counts.exact_max_rows);
    let findings = run(&client, &*hook, "DROP TABLE teams;").await;
    assert!(
        findings.iter().all(|f| !f.message.contains("dropped")),
        "{findings:#?}"
    );
    let left: i64 = client
        .query_one("SELECT count(*) FROM teams", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 7);
}

/// Through the engine: findings of every standard hook end up in the report.
#[tokio::test]
async fn the_engine_reports_the_standard_hooks_findings() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!(
        "migrate-hooks-{}-{}",
        std::process::id(),
        db.name()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        (
            "202601010000_users.up.sql",
            "CREATE TABLE users (id int PRIMARY KEY, email text);\nINSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 10) g;\n",
        ),
        ("202601010000_users.down.sql", "DROP TABLE users;\n"),
        (
            "202601020000_widen_users_id.up.sql",
            "ALTER TABLE users ALTER COLUMN id TYPE bigint;\nINSERT INTO users VALUES (11, 'u11'), (12, 'u12');\n",
        ),
        (
            "202601020000_widen_users_id.down.sql",
            "DELETE FROM users WHERE id > 10;\nALTER TABLE users ALTER COLUMN id TYPE int;\n",
        ),
    ];
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    let source = migrate_core::Source::load(&dir).unwrap();
    let database = migrate_core::Database::from_url(db.url()).unwrap();
    let migrator = migrate_hooks::standard_hooks(&HooksConfig::default())
        .into_iter()
        .fold(
            migrate_core::Migrator::new(
                "operational",
                source,
                database,
                migrate_core::Settings::default(),
            )
            .unwrap(),
            |migrator, hook: Arc<dyn Hook>| migrator.with_hook(hook),
        );
    let report = migrator
        .up(&migrate_core::UpOptions::default())
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(report.completed.len(), 2);
    assert!(
        report.completed[0].findings.is_empty(),
        "{:#?}",
        report.completed[0].findings
    );
    let findings: Vec<(&str, &str)> = report.completed[1]
        .findings
        .iter()
        .map(|f| (f.hook.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert_eq!(
        findings[0],
        ("row-counts", "users: 10 → 12 rows (+2, exact count)")
    );
    assert_eq!(findings[1].0, "table-rewrites");
    assert!(
        findings[1].1.starts_with("users was rewritten"),
        "{findings:#?}"
    );
}
