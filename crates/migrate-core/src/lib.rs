//! The dbops migration engine.
//!
//! Versioned PostgreSQL migrations as `YYYYMMDDHHMM_slug.up.sql` /
//! `.down.sql` pairs, applied through [refinery](https://docs.rs/refinery)
//! and extended with what refinery lacks:
//!
//! - down migrations, which remove their history row in the same transaction;
//! - a session-level advisory lock per target, so concurrent runners never
//!   double-apply, and a clear report of who holds it when the wait runs out;
//! - `lock_timeout` / `statement_timeout` on every migration, with retries,
//!   exponential backoff and jitter on lock timeouts and lost connections;
//! - `-- dbops:no-transaction` migrations (for `CREATE INDEX CONCURRENTLY`),
//!   run statement by statement with a run log, so an interruption leaves a
//!   *partial* state that [`Migrator::status`] reports and [`Migrator::up`]
//!   refuses to run past until [`Migrator::repair`] resolves it;
//! - drift detection (changed or missing files, CRLF-insensitive checksums)
//!   and out-of-order refusal;
//! - [`hooks`] around each migration.
//!
//! A service embeds it with its own pool: see [`Migrator`] and
//! `examples/embedded.rs`.
#![warn(missing_docs)]

pub mod approvals;
pub mod audit;
pub mod config;
mod database;
mod error;
pub mod hooks;
mod migrator;
mod redact;
mod refinery_adapter;
mod session;
pub mod source;
pub mod split;
pub mod status;

pub use config::{RetryPolicy, Settings};
pub use database::{Database, connect_url};
pub use error::Error;
pub use migrator::{
    AuditSettings, CompletedStep, DownOptions, DownTo, Migrator, Plan, PlannedStep, RepairAction,
    RepairReport, RunReport, UpOptions,
};
pub use redact::redact_url;
pub use session::BOOKKEEPING_SCHEMA;
pub use source::{Direction, Migration, Source};
pub use status::Status;
