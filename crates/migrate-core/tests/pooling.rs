//! The engine on a service's own pool (`Database::from_pool`): the session
//! check before the lock, with a second connection from the pool or alone.

use std::path::Path;
use std::time::{Duration, Instant};

use migrate_core::{Database, Error, Migrator, Settings, Source, UpOptions};
use testdb::{PgBouncer, PoolMode, TestDb};

fn pool(url: &str, max_size: usize) -> deadpool_postgres::Pool {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    deadpool_postgres::Pool::builder(manager)
        .max_size(max_size)
        .build()
        .unwrap()
}

fn migrator(dir: &Path, pool: deadpool_postgres::Pool) -> Migrator {
    std::fs::write(
        dir.join("202501010000_orgs.up.sql"),
        "CREATE TABLE orgs (id bigint PRIMARY KEY);",
    )
    .unwrap();
    std::fs::write(dir.join("202501010000_orgs.down.sql"), "DROP TABLE orgs;").unwrap();
    Migrator::new(
        "operational",
        Source::load(dir).unwrap(),
        Database::from_pool(pool),
        Settings::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_pool_of_one_connection_is_checked_without_a_second_one() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let migrator = migrator(dir.path(), pool(db.url(), 1));
    let started = Instant::now();
    let report = migrator.up(&UpOptions::default()).await.unwrap();
    assert_eq!(report.completed.len(), 1);
    // The check waited for a second connection the pool did not have.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_pool_through_transaction_pooling_is_refused_before_the_lock() {
    let db = TestDb::new().await;
    let bouncer = PgBouncer::start(PoolMode::Transaction);
    let dir = tempfile::tempdir().unwrap();
    let migrator = migrator(dir.path(), pool(&bouncer.url_for(db.name()), 4));
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    assert!(
        matches!(error, Error::Connect(pgconn::Error::SessionNotKept { .. })),
        "{error:?}"
    );
    let exists: bool = db
        .connect()
        .await
        .query_one("SELECT to_regclass('dbops.runs') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "nothing is created before the check");
}
