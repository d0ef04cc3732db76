//! ClickHouse migrations against the real two-shard cluster of `cargo xtask clickhouse`.

mod support;

use std::path::{Path, PathBuf};

use migrate_core::{Direction, Source};
use rollup_clickhouse::migrate::{self, LOCK};
use rollup_clickhouse::{ClickHouse, Error, Settings};
use support::{cluster, drop_database};
use testdb::TestDb;
use url::Url;

fn project_migrations() -> Source {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/clickhouse");
    Source::load(&dir).unwrap()
}

async fn tsv(ch: &ClickHouse, node: usize, sql: &str) -> String {
    ch.query(node, sql, "a test query").await.unwrap()
}

#[tokio::test]
async fn up_creates_sharded_replacing_tables_on_every_server_and_down_removes_them() {
    let db = TestDb::new().await;
    let lock_db = db.connect().await;
    let ch = cluster(db.name());
    let source = project_migrations();
    let version = source.migrations()[0].version;

    let steps = migrate::up(&ch, &lock_db, &source).await.unwrap();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_ne!(steps[0].node, steps[1].node);
    assert!(steps.iter().all(|s| s.direction == Direction::Up));
    assert_eq!(
        migrate::applied(&ch).await.unwrap(),
        vec![vec![version], vec![version]]
    );
    // Applied already: nothing to do.
    assert_eq!(migrate::up(&ch, &lock_db, &source).await.unwrap(), vec![]);

    // Rows inserted through the Distributed table land on the shard of
    // their organization, and a newer version of a row replaces the older
    // one for readers (FINAL), on the shard that holds both.
    let mut values = Vec::new();
    for organization in 1..=20 {
        values.push(format!(
            "('2026-12-01 10:00:00', {organization}, 0, 7, {organization}, 0, 1, 1, 1, 5, 5, [4], [{organization}], 1)"
        ));
    }
    values.push(
        "('2026-12-01 10:00:00', 1, 0, 7, 3, 1, 1, 1, 1, 15, 9, [4, 6], [2, 1], 2)".to_owned(),
    );
    ch.query(
        0,
        &format!(
            "INSERT INTO usage_hourly_rollups VALUES {}",
            values.join(", ")
        ),
        "inserting rows",
    )
    .await
    .unwrap();
    let shard_orgs = [
        tsv(&ch, 0, "SELECT DISTINCT organization_id FROM usage_hourly_rollups_local ORDER BY organization_id").await,
        tsv(&ch, 1, "SELECT DISTINCT organization_id FROM usage_hourly_rollups_local ORDER BY organization_id").await,
    ];
    let counts: Vec<usize> = shard_orgs.iter().map(|o| o.lines().count()).collect();
    assert!(counts[0] > 0 && counts[1] > 0, "{shard_orgs:?}");
    assert_eq!(
        counts[0] + counts[1],
        20,
        "each organization on one shard: {shard_orgs:?}"
    );
    let final_rows = tsv(
        &ch,
        1,
        "SELECT organization_id, hour_at, api_key_id, model_id, request_count, latency_bins, latency_bin_counts, version \
         FROM usage_hourly_rollups FINAL WHERE organization_id <= 2 ORDER BY organization_id FORMAT TabSeparated",
    )
    .await;
    assert_eq!(
        final_rows,
        "1\t2026-12-01 10:00:00\t0\t7\t3\t[4,6]\t[2,1]\t2\n2\t2026-12-01 10:00:00\t0\t7\t2\t[4]\t[2]\t1\n"
    );
    assert_eq!(
        tsv(&ch, 0, "SELECT count() FROM usage_hourly_rollups FINAL").await,
        "20\n"
    );

    let steps = migrate::down(&ch, &lock_db, &source, 0).await.unwrap();
    assert_eq!(
        steps.iter().map(|s| s.direction).collect::<Vec<_>>(),
        vec![Direction::Down, Direction::Down]
    );
    for node in 0..2 {
        assert_eq!(
            tsv(&ch, node, "EXISTS TABLE usage_hourly_rollups_local").await,
            "0\n"
        );
    }
    assert_eq!(
        migrate::applied(&ch).await.unwrap(),
        vec![Vec::<i64>::new(), Vec::new()]
    );
    // And up again after down.
    assert_eq!(migrate::up(&ch, &lock_db, &source).await.unwrap().len(), 2);
    drop_database(&ch).await;
}

#[tokio::test]
async fn a_run_holding_the_postgres_lock_keeps_others_out() {
    let db = TestDb::new().await;
    let lock_db = db.connect().await;
    let other = db.connect().await;
    let ch = cluster(db.name());
    let source = project_migrations();
    other
        .execute("SELECT pg_advisory_lock($1, $2)", &[&LOCK.0, &LOCK.1])
        .await
        .unwrap();
    let error = migrate::up(&ch, &lock_db, &source).await.unwrap_err();
    assert!(matches!(error, Error::Locked), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("another ClickHouse migration run holds the lock"),
        "{error}"
    );
    // Nothing was created: not even the database.
    assert_eq!(
        migrate::applied(&ch).await.unwrap(),
        vec![Vec::<i64>::new(), Vec::new()]
    );
    other
        .execute("SELECT pg_advisory_unlock($1, $2)", &[&LOCK.0, &LOCK.1])
        .await
        .unwrap();
    assert_eq!(migrate::up(&ch, &lock_db, &source).await.unwrap().len(), 2);
    // The run released its lock: another session can take it.
    let free: bool = other
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK.0, &LOCK.1])
        .await
        .unwrap()
        .get(0);
    assert!(free);
    drop_database(&ch).await;
}

fn write(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, sql).unwrap();
    path
}

/// Writes a migration that creates tables `a` and `b` with these column
/// types, and runs `up` with it.
async fn up_with_types(
    ch: &ClickHouse,
    lock_db: &tokio_postgres::Client,
    dir: &Path,
    a: &str,
    b: &str,
) -> Result<Vec<migrate::Step>, Error> {
    write(
        dir,
        "202601010000_t.up.sql",
        &format!(
            "CREATE TABLE IF NOT EXISTS a (x {a}) ENGINE = Memory;\n\
             CREATE TABLE IF NOT EXISTS b (x {b}) ENGINE = Memory;\n"
        ),
    );
    write(
        dir,
        "202601010000_t.down.sql",
        "DROP TABLE IF EXISTS b;\nDROP TABLE IF EXISTS a;\n",
    );
    migrate::up(ch, lock_db, &Source::load(dir).unwrap()).await
}

#[tokio::test]
async fn a_failed_statement_is_named_not_recorded_and_the_fixed_file_runs_again() {
    let db = TestDb::new().await;
    let lock_db = db.connect().await;
    let ch = cluster(db.name());
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("202601010000_t.up.sql");
    let error = up_with_types(&ch, &lock_db, dir.path(), "UInt8", "NoSuchType")
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "{}:2: ClickHouse at {} refused the statement: Code: 50",
            up.display(),
            ch.node_name(0)
        )),
        "{message}"
    );
    // The first statement stays (no transactions), the migration is not
    // recorded, and the second server was not touched.
    assert_eq!(tsv(&ch, 0, "EXISTS TABLE a").await, "1\n");
    assert_eq!(
        migrate::applied(&ch).await.unwrap(),
        vec![Vec::<i64>::new(), Vec::new()]
    );

    // Fixed, the file runs again from the top on both servers.
    let steps = up_with_types(&ch, &lock_db, dir.path(), "UInt8", "UInt16")
        .await
        .unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(
        migrate::applied(&ch).await.unwrap(),
        vec![vec![202601010000], vec![202601010000]]
    );

    // Changed after it was applied: refused, naming the migration.
    let error = up_with_types(&ch, &lock_db, dir.path(), "UInt32", "UInt16")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ChecksumMismatch { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with(&format!(
            "migration 202601010000_t applied on ClickHouse at {} has changed since",
            ch.node_name(0)
        )),
        "{error}"
    );
    drop_database(&ch).await;
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ch = ClickHouse::new(Settings {
        urls: vec![Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()],
        user: "default".into(),
        password: Some("s3cret".into()),
        database: "dbops_analytics".into(),
        cluster: "dbops".into(),
    })
    .unwrap();
    let error = migrate::applied(&ch).await.unwrap_err();
    assert!(matches!(error, Error::Http { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "cannot reach ClickHouse at http://127.0.0.1:{port} while looking for the history table"
        )
    );
}
