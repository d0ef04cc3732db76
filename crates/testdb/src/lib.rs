//! Throwaway PostgreSQL databases for tests, after the `#[sqlx::test]` convention.
//!
//! Every test calls [`TestDb::new`] and gets a database of its own, created on
//! the server named by `DB_URL` (which `cargo xtask pg` and `cargo xtask ci`
//! provide). Tests therefore run in parallel without seeing each other's
//! objects. The database is dropped when the [`TestDb`] is dropped, unless the
//! test is panicking: a failed test leaves its database behind, named in the
//! panic output, for a look with `psql`.
#![warn(missing_docs)]

mod cluster;
mod pgbouncer;
mod proxy;

pub use cluster::{Cluster, ClusterSetup};
pub use pgbouncer::{PgBouncer, PoolMode};
pub use proxy::{FaultProxy, Trigger};

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::Client;

/// The environment variable naming the server (any database on it) to create
/// test databases on.
pub const URL_ENV: &str = "DB_URL";

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDb {
    /// Creates a fresh, empty database with a unique name.
    ///
    /// # Panics
    /// When `DB_URL` is unset or the server cannot be reached: a test that
    /// needs PostgreSQL cannot do anything useful without one.
    pub async fn new() -> TestDb {
        let admin_url = server_url();
        let name = unique_name();
        let admin = connect_to(&admin_url).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        TestDb {
            name,
            url,
            admin_url,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection URL for the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A URL with the same server and credentials, for another database.
    pub fn url_for(&self, database: &str) -> String {
        with_database(&self.admin_url, database)
    }

    /// Opens a new connection to the database.
    pub async fn connect(&self) -> Client {
        connect_to(&self.url).await
    }

    /// Runs every `*.up.sql` file of `dir` in file-name order, each in one
    /// simple-query batch. A fixture loader for tests that need a schema but
    /// are not testing the migration engine itself.
    pub async fn apply_up_files(&self, dir: &Path) {
        apply_up_files_to(&self.connect().await, dir).await;
    }
}

/// Runs every `*.up.sql` file of `dir` in file-name order on `client`, each
/// in one simple-query batch: [`TestDb::apply_up_files`] for a database of a
/// [`Cluster`].
///
/// # Panics
/// When a file cannot be read or fails.
pub async fn apply_up_files_to(client: &Client, dir: &Path) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".up.sql"))
        .collect();
    files.sort();
    for file in files {
        let sql = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("applying {}: {e:?}", file.display()));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "testdb: kept database {} for inspection: {}",
                self.name, self.url
            );
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a Tokio runtime, where blocking on another
        // runtime is not allowed: do the work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a Tokio runtime");
            runtime.block_on(async {
                let admin = connect_to(&admin_url).await;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("testdb: could not drop {}: {e}", self.name);
        }
    }
}

/// The server URL tests run against.
///
/// # Panics
/// When `DB_URL` is not set.
pub fn server_url() -> String {
    std::env::var(URL_ENV).unwrap_or_else(|_| {
        panic!("{URL_ENV} is not set: run the tests through `cargo xtask ci`, or export the URL that `cargo xtask pg` prints")
    })
}

/// Connects to `url`, for a test that has a server of its own (a [`Cluster`]).
///
/// Through pgconn, as the product connects: the URL's sslmode and the `PG*`
/// variables count, so the suite runs against a TLS-only server too.
///
/// # Panics
/// When the server cannot be reached.
pub async fn connect_to(url: &str) -> Client {
    let config = pgconn::ConnConfig::parse(url)
        .unwrap_or_else(|e| panic!("the test server's URL ({URL_ENV}): {e}"));
    let (client, _connection) = pgconn::connect(&config, "dbops tests")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connecting to the test server ({URL_ENV}): {}",
                std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(": ")
            )
        });
    client
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "dbops_test_{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Replaces the database name (the URL's path) of a `postgres://` URL.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_and_keeps_the_query() {
        assert_eq!(
            with_database("postgres://u:p@h:5/postgres", "x"),
            "postgres://u:p@h:5/x"
        );
        assert_eq!(with_database("postgres://h:5", "x"), "postgres://h:5/x");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
