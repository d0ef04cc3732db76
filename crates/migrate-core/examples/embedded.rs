//! A service applying its migrations at start-up with its own connection pool.
//!
//! ```text
//! DB_URL=postgres://postgres@127.0.0.1:5432/app cargo run -p migrate-core --example embedded
//! ```
//!
//! The service keeps one pool for its own queries and hands it to the engine;
//! the engine borrows one connection for the run (the migration lock is held
//! by that session) and returns it to the pool afterwards. Several replicas
//! starting at once is fine: one applies, the others wait for the lock, then
//! find nothing pending.

use std::path::Path;
use std::time::Duration;

use migrate_core::{Database, Migrator, Settings, Source, UpOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DB_URL").map_err(|_| "set DB_URL to the database to migrate")?;
    // Read as libpq reads it (PG* variables, .pgpass, sslmode), with TLS
    // through the same rustls connector dbops uses.
    let config = pgconn::ConnConfig::parse(&url)?;
    let manager = deadpool_postgres::Manager::new(
        config.tokio_postgres_config("embedded migrations"),
        config.tls_connector()?,
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(4)
        .build()?;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/operational");
    let source = Source::load(&dir)?;
    // Replicas that start together wait for each other rather than fail.
    let settings = Settings {
        lock_wait: Duration::from_secs(120),
        ..Settings::default()
    };
    let migrator = Migrator::new(
        "operational",
        source,
        Database::from_pool(pool.clone()),
        settings,
    )?;

    let status = migrator.status().await?;
    if !status.is_healthy() {
        // Partial or drifted: a human must look. Refuse to start rather than guess.
        return Err(format!(
            "schema needs attention: {} partial, {} drifted",
            status.partial.len(),
            status.drifted.len()
        )
        .into());
    }
    match migrator.up(&UpOptions::default()).await {
        Ok(report) => {
            for step in &report.completed {
                println!(
                    "applied {}_{} in {} ms",
                    step.version,
                    step.slug,
                    step.duration.as_millis()
                );
            }
        }
        Err(error) => {
            // `MigrationFailed` lists what this run applied before the failure.
            eprintln!("migrations failed: {error}");
            return Err(error.into());
        }
    }

    // The pool is the service's again.
    let client = pool.get().await?;
    let row = client
        .query_one("SELECT count(*) FROM dbops.operational_schema_history", &[])
        .await?;
    println!("schema has {} migrations applied", row.get::<_, i64>(0));
    Ok(())
}
