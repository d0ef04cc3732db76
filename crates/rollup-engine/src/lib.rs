//! Hourly and daily usage rollups that stay correct under late events, with data-quality checks and reconciliation.
//!
//! The engine keeps `analytics.usage_hourly_rollups` and
//! `analytics.usage_daily_rollups` (migrations/analytics) equal to what a
//! `GROUP BY` over `usage_events` would give, without recomputing history:
//!
//! - [`run`] reads the events ingested since the last run (a watermark on
//!   `ingested_at`), queues the hours they touched, and recomputes exactly
//!   those hours from the raw events, replacing their rows; then it derives
//!   the affected days from the hourly rows. Runs that find nothing new
//!   change nothing. Two runs never work on the same hour or day at once
//!   (advisory locks), and a crashed run leaves its hours queued.
//! - [`check`] runs the data-quality assertions of
//!   `analytics/tests/hourly_rollup.toml` and returns their findings.
//! - [`reconcile`] compares every (organization, hour) bucket with the raw
//!   events and returns each mismatch.
//! - [`status`] lists recent runs with their durations and flags slow ones.
//!
//! The SQL the engine runs is in `analytics/transforms/` (compiled in), and
//! the targets are described in `analytics/transforms/config.toml`
//! ([`config`]). Every operation takes connected clients: the events are
//! read on the operational database (`source`) and the rollups live on the
//! `rollups` connection, the same database for the `local` target and
//! another one for `warehouse`. The design is explained in docs/analytics.md.
//!
//! Telemetry: each run is a `rollup_run` span, and its end is an event whose
//! fields follow the `tracing-opentelemetry` metrics convention
//! (`monotonic_counter.*`, `histogram.*`), so a subscriber with a metrics
//! layer exports them as metrics. The library installs no subscriber.
#![warn(missing_docs)]

pub mod check;
pub mod config;
mod error;
pub mod histogram;
mod locks;
pub mod reconcile;
pub mod run;
pub mod status;
mod transform;

pub use error::Error;

/// Fails with [`Error::SchemaMissing`] unless the rollups database has the
/// analytics schema of migrations/analytics, up to its latest migration
/// (the quarantine and the runs' backends).
pub(crate) async fn ensure_schema(rollups: &tokio_postgres::Client) -> Result<(), Error> {
    let row = rollups
        .query_one(
            "SELECT to_regclass('analytics.quarantined_events') IS NOT NULL",
            &[],
        )
        .await
        .map_err(Error::db("looking for the analytics schema"))?;
    if row.get::<_, bool>(0) {
        Ok(())
    } else {
        Err(Error::SchemaMissing)
    }
}
