//! What the tests share: a client of the two-shard cluster of `cargo xtask clickhouse`, and
//! a test's PostgreSQL and ClickHouse schemas.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::Path;

use migrate_core::Source;
use rollup_clickhouse::{ClickHouse, Settings, migrate};
use testdb::TestDb;
use tokio_postgres::Client;
use url::Url;

/// The workspace's root.
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The operational schema and the rollups' bookkeeping (rollup_runs,
/// rollup_watermarks) on PostgreSQL, and the ClickHouse schema in a database
/// of the test's own on the cluster.
pub async fn setup() -> (TestDb, Client, ClickHouse) {
    let db = TestDb::new().await;
    db.apply_up_files(&root().join("migrations/operational"))
        .await;
    db.apply_up_files(&root().join("migrations/analytics"))
        .await;
    let source = db.connect().await;
    let ch = cluster(db.name());
    let migrations = Source::load(&root().join("migrations/clickhouse")).unwrap();
    migrate::up(&ch, &source, &migrations).await.unwrap();
    (db, source, ch)
}

/// The environment variable `cargo xtask ci` sets from `cargo xtask clickhouse`.
const URLS_ENV: &str = "CLICKHOUSE_URLS";

/// A client of the cluster, working in `database` (a test's own).
pub fn cluster(database: &str) -> ClickHouse {
    let urls = std::env::var(URLS_ENV).unwrap_or_else(|_| {
        panic!(
            "{URLS_ENV} is unset: start the two-shard cluster with `cargo xtask clickhouse` \
             and export {URLS_ENV}=<the URLs it printed>"
        )
    });
    let urls: Vec<Url> = urls
        .split(',')
        .map(|url| Url::parse(url.trim()).unwrap())
        .collect();
    assert_eq!(urls.len(), 2, "{URLS_ENV} names two shards");
    ClickHouse::new(Settings {
        urls,
        user: "default".into(),
        password: None,
        database: database.to_owned(),
        cluster: "dbops".into(),
    })
    .unwrap()
}

/// Drops the test's database on every server.
pub async fn drop_database(ch: &ClickHouse) {
    for node in 0..ch.nodes() {
        ch.query(
            node,
            &format!("DROP DATABASE IF EXISTS {}", ch.settings().database),
            "dropping the test database",
        )
        .await
        .unwrap();
    }
}
