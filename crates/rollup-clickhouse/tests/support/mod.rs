//! What the tests share: a client of the two-shard cluster of `cargo xtask clickhouse`.

use rollup_clickhouse::{ClickHouse, Settings};
use url::Url;

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
