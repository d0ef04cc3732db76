//! The real `dbops` binary: `rollup run|check|reconcile|status` on both targets, and their exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

use testdb::TestDb;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs dbops with DB_URL at `db` and ANALYTICS_URL at `analytics`, and a
/// rollup configuration without safety lag, so that events inserted a
/// moment ago are rolled up at once.
fn dbops(db: &str, analytics: &str, args: &[&str]) -> (i32, String, String) {
    let (mut command, _config) = command(db, analytics, args);
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The command [`dbops`] runs, and the folder of its configuration, which
/// must outlive it.
fn command(db: &str, analytics: &str, args: &[&str]) -> (Command, tempfile::TempDir) {
    support::rollup_command(&support::rollup_config_without_lag(), db, analytics, args)
}

async fn with_events() -> TestDb {
    support::with_rollup_events().await
}

#[tokio::test]
async fn the_warehouse_target_runs_checks_and_reconciles_and_a_corruption_exits_15() {
    let db = with_events().await;
    let warehouse = TestDb::new().await;
    let (code, _, stderr) = dbops(
        db.url(),
        warehouse.url(),
        &["rollup", "status", "--target", "warehouse"],
    );
    assert_eq!(code, 13, "no analytics schema yet: {stderr}");
    assert!(
        stderr.contains("run `dbops migrate up --target analytics` first"),
        "{stderr}"
    );

    warehouse
        .apply_up_files(&root().join("migrations/analytics"))
        .await;
    let (code, stdout, stderr) = dbops(
        db.url(),
        warehouse.url(),
        &["rollup", "run", "--target", "warehouse"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(warehouse, full rebuild)"), "{stdout}");
    for command in ["check", "reconcile"] {
        let (code, stdout, stderr) = dbops(
            db.url(),
            warehouse.url(),
            &["rollup", command, "--target", "warehouse"],
        );
        assert_eq!(code, 0, "{command}: {stdout}{stderr}");
    }

    warehouse
        .connect()
        .await
        .batch_execute(
            "UPDATE analytics.usage_hourly_rollups SET cost_micros = cost_micros + 5 \
             WHERE (organization_id, hour_at) = (SELECT organization_id, min(hour_at) FROM analytics.usage_hourly_rollups \
                                                 WHERE organization_id = 2 GROUP BY 1)",
        )
        .await
        .unwrap();
    let (code, stdout, _) = dbops(
        db.url(),
        warehouse.url(),
        &["rollup", "reconcile", "--target", "warehouse"],
    );
    assert_eq!(code, 15, "{stdout}");
    assert!(
        stdout.contains("MISMATCH") && stdout.contains("organization 2: cost_micros"),
        "{stdout}"
    );
    assert!(stdout.contains("1 mismatch(es)"), "{stdout}");
    let (code, stdout, _) = dbops(
        db.url(),
        warehouse.url(),
        &["rollup", "check", "--target", "warehouse", "--json"],
    );
    assert_eq!(code, 15, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["failed"], 1, "{stdout}");

    let (code, stdout, stderr) = dbops(
        db.url(),
        warehouse.url(),
        &["rollup", "status", "--target", "warehouse", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["runs"][0]["status"], "succeeded", "{stdout}");
    assert!(
        status["runs"][0]["hours_covered"].as_i64().unwrap() >= 29,
        "{stdout}"
    );
}

#[tokio::test]
async fn late_events_on_the_local_target_are_rolled_up_by_the_next_run() {
    let db = with_events().await;
    db.apply_up_files(&root().join("migrations/analytics"))
        .await;
    let (code, _, stderr) = dbops(db.url(), db.url(), &["rollup", "run"]);
    assert_eq!(code, 0, "{stderr}");
    db.connect()
        .await
        .batch_execute(
            "INSERT INTO usage_events (organization_id, model_id, request_id, status, input_tokens, output_tokens, \
                                       cost_micros, latency_ms, occurred_at) \
             VALUES (3, 1, gen_random_uuid(), 'ok', 7, 7, 7, 7, date_trunc('hour', now()) - interval '20 hours')",
        )
        .await
        .unwrap();
    let (code, stdout, stderr) = dbops(db.url(), db.url(), &["rollup", "run", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            report["buckets_queued"].as_u64(),
            report["hours_covered"].as_u64()
        ),
        (Some(1), Some(1)),
        "{stdout}"
    );
    let (code, stdout, _) = dbops(db.url(), db.url(), &["rollup", "reconcile"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("0 mismatch(es), 0 pending"), "{stdout}");
}

#[tokio::test]
async fn an_unknown_target_or_a_broken_assertion_file_is_a_configuration_error() {
    let db = with_events().await;
    let (code, _, stderr) = dbops(db.url(), db.url(), &["rollup", "run", "--target", "lake"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("unknown rollup target \"lake\""),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "table = \"analytics.x\"\n[[assertion]]\nname = \"a\"\nkind = \"row\"\nseverity = \"fatal\"\n").unwrap();
    let (code, _, stderr) = dbops(
        db.url(),
        db.url(),
        &["rollup", "check", "--assertions", broken.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("broken.toml") && stderr.contains("line 5"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_poisoned_event_is_quarantined_run_exits_0_and_check_status_and_health_report_it() {
    let db = TestDb::new().await;
    let url = db.url();
    for target in ["operational", "analytics"] {
        let (code, _, stderr) = dbops(url, url, &["migrate", "up", "--target", target]);
        assert_eq!(code, 0, "{target}: {stderr}");
    }
    let client = db.connect().await;
    // An event with api_key_id = -1, stored past the check that refuses it
    // today (as on a database migrated before it), among ordinary ones.
    client
        .batch_execute(
            "ALTER TABLE usage_events DROP CONSTRAINT usage_events_api_key_id_check; \
             INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, input_tokens, \
                                       output_tokens, cost_micros, latency_ms, occurred_at) \
             SELECT 1 + i % 3, CASE WHEN i = 7 THEN -1 ELSE 1 + i % 2 END, 1, gen_random_uuid(), 'ok', 10, 20, 30, 40, \
                    date_trunc('hour', now()) - (i % 5) * interval '1 hour' - interval '1 minute' \
             FROM generate_series(1, 60) AS i",
        )
        .await
        .unwrap();
    let event: i64 = client
        .query_one("SELECT id FROM usage_events WHERE api_key_id = -1", &[])
        .await
        .unwrap()
        .get(0);

    let (code, stdout, stderr) = dbops(url, url, &["rollup", "run"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("1 event(s) quarantined: see `dbops rollup check`"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("usage event {event} of bucket (organization 2,"))
            && stderr.contains("api_key_id -1 is not positive"),
        "the log names the bucket and the event: {stderr}"
    );

    let (code, stdout, _) = dbops(url, url, &["rollup", "check"]);
    assert_eq!(code, 15, "{stdout}");
    assert!(
        stdout.contains("FAIL no_quarantined_events")
            && stdout.contains(&format!("\"event_id\": {event}")),
        "{stdout}"
    );
    let (code, stdout, _) = dbops(url, url, &["rollup", "status"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("1 event(s) quarantined"), "{stdout}");
    let (code, stdout, stderr) = dbops(url, url, &["health"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("ready")
            && stdout.contains("warning: analytics: 1 usage event(s) quarantined by the rollups"),
        "{stdout}"
    );
}

/// Polls `sql` (one boolean) until it is true, for up to 20 seconds.
async fn wait_until(client: &tokio_postgres::Client, sql: &str) {
    for _ in 0..400 {
        if client.query_one(sql, &[]).await.unwrap().get::<_, bool>(0) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("still false after 20 s: {sql}");
}

#[tokio::test]
async fn a_run_killed_with_sigkill_is_marked_abandoned_by_the_next() {
    let db = with_events().await;
    db.apply_up_files(&root().join("migrations/analytics"))
        .await;
    let url = db.url();
    let (code, _, stderr) = dbops(url, url, &["rollup", "run"]);
    assert_eq!(code, 0, "{stderr}");

    // Hold the watermark's row lock, so that the next run records itself as
    // running and then waits; kill it there.
    let mut holder = db.connect().await;
    let lock = holder.transaction().await.unwrap();
    lock.batch_execute("SELECT * FROM analytics.rollup_watermarks FOR UPDATE")
        .await
        .unwrap();
    let (mut command, _config) = command(url, url, &["rollup", "run"]);
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = db.connect().await;
    wait_until(
        &client,
        "SELECT EXISTS (SELECT 1 FROM analytics.rollup_runs r JOIN pg_locks l ON l.pid = r.backend_pid \
         WHERE r.status = 'running' AND NOT l.granted)",
    )
    .await;
    let killed: i64 = client
        .query_one(
            "SELECT id FROM analytics.rollup_runs WHERE status = 'running'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    lock.commit().await.unwrap();
    // Its backend ends once it gets the lock and finds its client gone.
    wait_until(
        &client,
        &format!(
            "SELECT NOT EXISTS (SELECT 1 FROM analytics.rollup_runs r JOIN pg_stat_activity a ON a.pid = r.backend_pid \
             WHERE r.id = {killed})"
        ),
    )
    .await;
    let (code, stdout, _) = dbops(url, url, &["rollup", "status"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("running"),
        "stuck before the next run: {stdout}"
    );

    let (code, stdout, stderr) = dbops(url, url, &["rollup", "run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "run {killed} was left running by a session that ended: marked abandoned"
        )),
        "{stdout}"
    );
    let (_, stdout, _) = dbops(url, url, &["rollup", "status"]);
    assert!(
        stdout.contains("abandoned") && stdout.contains("ended while it was running"),
        "{stdout}"
    );
    assert!(!stdout.contains(" running "), "{stdout}");
}
