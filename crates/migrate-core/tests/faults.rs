//! The engine against a real PostgreSQL that fails: connections cut during a batch, during
//! `COMMIT` and after it, outages shorter and longer than the reconnect budget, a server crash
//! right after a run, and fleets of runners started together.

use std::path::Path;
use std::time::Duration;

use migrate_core::{
    AuditSettings, Database, DownOptions, DownTo, Error, Migrator, RetryPolicy, Settings, Source,
    UpOptions,
};
use testdb::{Cluster, FaultProxy, TestDb};

/// A simple query that is exactly `COMMIT`: `Q`, its length, the text and a NUL.
const COMMIT_QUERY: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

fn write_migrations(dir: &Path, count: usize) {
    for i in 0..count {
        let version = 202501010000 + i as i64;
        std::fs::write(
            dir.join(format!("{version}_m{i}.up.sql")),
            format!("CREATE TABLE m{i} (id bigint PRIMARY KEY);\nINSERT INTO m{i} VALUES (1);\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{version}_m{i}.down.sql")),
            format!("DROP TABLE m{i};\n"),
        )
        .unwrap();
    }
}

/// Writes the pair `NAME.up.sql` / `NAME.down.sql`.
fn pair(dir: &Path, name: &str, up: &str, down: &str) {
    std::fs::write(dir.join(format!("{name}.up.sql")), up).unwrap();
    std::fs::write(dir.join(format!("{name}.down.sql")), down).unwrap();
}

/// Applies the migrations of `dir` to `db` through `proxy`, with a reconnect budget of 20 s.
async fn up_through(proxy: &FaultProxy, db: &TestDb, dir: &Path) -> migrate_core::RunReport {
    migrator(
        &proxy.url_for(db.url()),
        dir,
        settings(Duration::from_secs(20)),
    )
    .up(&UpOptions::default())
    .await
    .unwrap()
}

fn settings(budget: Duration) -> Settings {
    Settings {
        reconnect_budget: budget,
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(300),
            ..RetryPolicy::default()
        },
        ..Settings::default()
    }
}

fn migrator(url: &str, dir: &Path, settings: Settings) -> Migrator {
    Migrator::new(
        "operational",
        Source::load(dir).unwrap(),
        Database::from_url(url).unwrap(),
        settings,
    )
    .unwrap()
    .with_audit(AuditSettings {
        actor: "faults-test".into(),
        metadata: serde_json::Map::new(),
    })
}

/// Versions in the history, and how many succeeded run-log rows and audit entries each has.
async fn bookkeeping(db: &TestDb) -> Vec<(i64, i64, i64)> {
    bookkeeping_at(db.url()).await
}

async fn bookkeeping_at(url: &str) -> Vec<(i64, i64, i64)> {
    let client = testdb::connect_to(url).await;
    client
        .query(
            "SELECT h.version,
                    (SELECT count(*) FROM dbops.run_log r WHERE r.version = h.version AND r.outcome = 'succeeded'),
                    (SELECT count(*) FROM dbops.audit_log a WHERE a.target_id = h.version::text AND a.action = 'migration.apply')
             FROM dbops.operational_schema_history h ORDER BY h.version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

fn each_once(count: usize) -> Vec<(i64, i64, i64)> {
    (0..count)
        .map(|i| (202501010000 + i as i64, 1, 1))
        .collect()
}

#[tokio::test]
async fn a_connection_cut_during_a_migration_is_ridden_through() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), 5);
    let proxy = FaultProxy::in_front_of(db.url());
    let trigger = proxy.cut_when_client_sends(b"CREATE TABLE m2 ");
    let report = up_through(&proxy, &db, dir.path()).await;
    assert!(trigger.fired());
    assert_eq!(report.completed.len(), 5);
    assert_eq!(bookkeeping(&db).await, each_once(5));
}

#[tokio::test]
async fn a_connection_cut_before_commit_reaches_the_server_is_ridden_through() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), 5);
    let proxy = FaultProxy::in_front_of(db.url());
    let trigger = proxy.cut_when_client_sends(COMMIT_QUERY);
    let report = up_through(&proxy, &db, dir.path()).await;
    assert!(trigger.fired());
    assert_eq!(report.completed.len(), 5);
    assert_eq!(bookkeeping(&db).await, each_once(5));
}

#[tokio::test]
async fn a_commit_whose_answer_is_lost_counts_once() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), 5);
    let proxy = FaultProxy::in_front_of(db.url());
    let trigger = proxy.cut_after_server_replies_to(COMMIT_QUERY);
    let report = up_through(&proxy, &db, dir.path()).await;
    assert!(trigger.fired());
    let versions: Vec<i64> = report.completed.iter().map(|c| c.version).collect();
    assert_eq!(
        versions,
        each_once(5).iter().map(|e| e.0).collect::<Vec<_>>()
    );
    assert!(
        report.done_by_others.is_empty(),
        "{:?}",
        report.done_by_others
    );
    assert_eq!(bookkeeping(&db).await, each_once(5));
}

#[tokio::test]
async fn a_no_transaction_migration_cut_part_way_resumes_after_its_last_statement() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    pair(
        dir.path(),
        "202501010000_t",
        "CREATE TABLE t (id bigint);\nINSERT INTO t SELECT generate_series(1, 1000);\n",
        "DROP TABLE t;\n",
    );
    // Statement 1 is not safe to run twice: a rerun from the top would fail.
    pair(
        dir.path(),
        "202501010100_t_idx",
        "-- dbops:no-transaction\nCREATE TABLE side (id bigint);\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n",
        "-- dbops:no-transaction\nDROP INDEX CONCURRENTLY t_id_idx;\nDROP TABLE side;\n",
    );
    let proxy = FaultProxy::in_front_of(db.url());
    let trigger = proxy.cut_when_client_sends(b"CREATE INDEX CONCURRENTLY t_id_idx");
    let report = up_through(&proxy, &db, dir.path()).await;
    assert!(trigger.fired());
    assert_eq!(report.completed.len(), 2);
    let client = db.connect().await;
    let rows = client
        .query(
            "SELECT outcome, statements_done FROM dbops.run_log WHERE version = 202501010100",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, [("succeeded".to_string(), 2)]);
}

#[tokio::test]
async fn a_statement_that_finished_on_the_server_after_the_cut_is_not_run_again() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    pair(
        dir.path(),
        "202501010000_t",
        "CREATE TABLE t (id bigint);\n",
        "DROP TABLE t;\n",
    );
    // Neither statement is safe to run twice.
    pair(
        dir.path(),
        "202501010100_t_idx",
        "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\nCREATE TABLE side (id bigint);\n",
        "-- dbops:no-transaction\nDROP TABLE side;\nDROP INDEX CONCURRENTLY t_id_idx;\n",
    );
    let proxy = FaultProxy::in_front_of(db.url());
    // The server builds the index; its answer never reaches the run.
    let trigger = proxy.cut_after_server_replies_to(b"CREATE INDEX CONCURRENTLY t_id_idx");
    let report = up_through(&proxy, &db, dir.path()).await;
    assert!(trigger.fired());
    assert_eq!(report.completed.len(), 2);
    let client = db.connect().await;
    let valid: bool = client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id_idx'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
}

/// Writes `count` migrations, of which number `slow` sleeps a second first,
/// and runs `up` through a proxy that goes dark for `outage` half a second
/// into the run, with a reconnect budget of `budget`.
async fn up_through_an_outage(
    db: &TestDb,
    dir: &Path,
    count: usize,
    slow: usize,
    outage: Duration,
    budget: Duration,
) -> (Result<migrate_core::RunReport, Error>, usize) {
    write_migrations(dir, count);
    let version = 202501010000 + slow as i64;
    std::fs::write(
        dir.join(format!("{version}_m{slow}.up.sql")),
        format!("SELECT pg_sleep(1);\nCREATE TABLE m{slow} (id bigint PRIMARY KEY);\nINSERT INTO m{slow} VALUES (1);\n"),
    )
    .unwrap();
    let proxy = std::sync::Arc::new(FaultProxy::in_front_of(db.url()));
    let url = proxy.url_for(db.url());
    let run = tokio::spawn({
        let dir = dir.to_path_buf();
        async move {
            migrator(&url, &dir, settings(budget))
                .up(&UpOptions::default())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let blackout = std::sync::Arc::clone(&proxy);
    tokio::task::spawn_blocking(move || blackout.blackout(outage))
        .await
        .unwrap();
    (run.await.unwrap(), proxy.refused_connections())
}

#[tokio::test]
async fn a_two_second_blackout_is_ridden_through() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (result, refused) = up_through_an_outage(
        &db,
        dir.path(),
        6,
        3,
        Duration::from_secs(2),
        Duration::from_secs(20),
    )
    .await;
    let report = result.unwrap();
    assert!(
        refused > 0,
        "the run tried to reconnect during the blackout"
    );
    assert_eq!(report.completed.len(), 6);
    assert_eq!(bookkeeping(&db).await, each_once(6));
}

#[tokio::test]
async fn an_outage_longer_than_the_budget_fails_naming_the_last_error() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = up_through_an_outage(
        &db,
        dir.path(),
        4,
        2,
        Duration::from_secs(5),
        Duration::from_secs(1),
    )
    .await;
    let error = result.unwrap_err();
    match &error {
        Error::ConnectionLost {
            applied_before,
            last_error,
            ..
        } => {
            assert_eq!(applied_before, &[202501010000, 202501010001], "{error}");
            assert!(!last_error.is_empty());
        }
        other => panic!("expected ConnectionLost, got {other}"),
    }
    // What the history says holds: two applied, and the next run finishes the job.
    assert_eq!(bookkeeping(&db).await, each_once(2));
    migrator(db.url(), dir.path(), settings(Duration::from_secs(5)))
        .up(&UpOptions::default())
        .await
        .unwrap();
    assert_eq!(bookkeeping(&db).await, each_once(4));
}

#[tokio::test]
async fn a_reported_run_survives_a_server_crash_right_after_it() {
    let mut cluster = tokio::task::spawn_blocking(Cluster::start_new)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), 30);
    for trial in 0..2 {
        let url = cluster.url();
        let client = testdb::connect_to(&url).await;
        let name = format!("crash_trial_{trial}");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let db_url = format!("{}/{name}", url.rsplit_once('/').unwrap().0);
        let report = migrator(&db_url, dir.path(), settings(Duration::from_secs(5)))
            .up(&UpOptions::default())
            .await
            .unwrap();
        assert_eq!(report.completed.len(), 30);
        cluster = tokio::task::spawn_blocking(move || {
            cluster.stop_immediate();
            cluster.start();
            cluster
        })
        .await
        .unwrap();
        let client = testdb::connect_to(&db_url).await;
        let applied: i64 = client
            .query_one("SELECT count(*) FROM dbops.operational_schema_history", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            applied, 30,
            "trial {trial}: a migration reported applied was lost in the crash"
        );
        client.batch_execute("SELECT * FROM m29").await.unwrap();
    }
}

#[tokio::test]
async fn a_server_crash_and_restart_mid_run_is_ridden_through() {
    let mut cluster = tokio::task::spawn_blocking(Cluster::start_new)
        .await
        .unwrap();
    let client = testdb::connect_to(&cluster.url()).await;
    client
        .batch_execute("CREATE DATABASE crash_mid_run")
        .await
        .unwrap();
    drop(client);
    let url = format!(
        "{}/crash_mid_run",
        cluster.url().rsplit_once('/').unwrap().0
    );
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), 6);
    std::fs::write(
        dir.path().join("202501010003_m3.up.sql"),
        "SELECT pg_sleep(1);\nCREATE TABLE m3 (id bigint PRIMARY KEY);\nINSERT INTO m3 VALUES (1);\n",
    )
    .unwrap();
    let run = tokio::spawn({
        let (url, dir) = (url.clone(), dir.path().to_path_buf());
        async move {
            migrator(&url, &dir, settings(Duration::from_secs(30)))
                .up(&UpOptions::default())
                .await
        }
    });
    // Migrations 0 to 2 are committed (without waiting for their flush, by
    // default) when the server crashes during migration 3, and comes back a
    // second later.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop_immediate();
        std::thread::sleep(Duration::from_secs(1));
        cluster.start();
        cluster
    })
    .await
    .unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.completed.len(), 6, "{report:?}");
    assert_eq!(bookkeeping_at(&url).await, each_once(6));
    drop(cluster);
}

#[tokio::test]
async fn a_fleet_started_together_applies_each_migration_once_and_all_succeed() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), 10);
    // Each runner plans before the lock, as the CLI does, and expects that plan.
    let plan = migrator(db.url(), dir.path(), Settings::default())
        .plan_up(&UpOptions::default())
        .await
        .unwrap();
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let (url, dir, plan) = (db.url().to_string(), dir.path().to_path_buf(), plan.clone());
            tokio::spawn(async move {
                migrator(&url, &dir, Settings::default())
                    .up(&UpOptions {
                        expected_plan: Some(plan),
                        ..UpOptions::default()
                    })
                    .await
            })
        })
        .collect();
    let mut applied = 0;
    let mut waited = 0;
    for run in runs {
        let report = run.await.unwrap().unwrap();
        applied += report.completed.len();
        if !report.done_by_others.is_empty() {
            waited += 1;
            assert!(report.done_by_others.iter().all(|d| d.runner.is_some()));
        }
    }
    assert_eq!(applied, 10);
    assert_eq!(waited, 7);
    assert_eq!(bookkeeping(&db).await, each_once(10));

    // Eight rollbacks of one step, planned together: one rolls back, the others find it done.
    let down = migrator(db.url(), dir.path(), Settings::default())
        .plan_down(&DownTo::Steps(1).into())
        .await
        .unwrap();
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let (url, dir, plan) = (db.url().to_string(), dir.path().to_path_buf(), down.clone());
            tokio::spawn(async move {
                migrator(&url, &dir, Settings::default())
                    .down(&DownOptions {
                        to: DownTo::Steps(1),
                        expected_plan: Some(plan),
                    })
                    .await
            })
        })
        .collect();
    let mut rolled_back = 0;
    for run in runs {
        rolled_back += run.await.unwrap().unwrap().completed.len();
    }
    assert_eq!(rolled_back, 1);
    assert_eq!(bookkeeping(&db).await.len(), 9);
}
