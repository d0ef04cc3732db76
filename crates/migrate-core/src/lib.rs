//! The dbops migration engine.
//!
//! Versioned PostgreSQL migrations as `YYYYMMDDHHMM_slug.up.sql` /
//! `.down.sql` pairs, recorded in refinery's history format, with what
//! refinery lacks:
//!
//! - down migrations, which remove their history row in the same transaction;
//! - a session-level advisory lock per target, so concurrent runners never
//!   double-apply, and a runner that waited reports the steps another one did;
//! - `lock_timeout` / `statement_timeout` on every migration, with retries,
//!   exponential backoff and jitter on lock waits;
//! - a lost connection got back within a budget: reconnect, lock again, read
//!   the history, go on;
//! - a run reports success only once what it applied is durable;
//! - `-- dbops:no-transaction` migrations (for `CREATE INDEX CONCURRENTLY`),
//!   run statement by statement with their progress in a run log, so an
//!   interruption leaves a *partial* state that [`Migrator::status`] reports,
//!   [`Migrator::up`] refuses to run past, and [`Migrator::repair`] resumes;
//! - drift detection (changed or missing files, CRLF-insensitive checksums)
//!   and out-of-order refusal;
//! - [`hooks`] around each migration, and an audit entry for each;
//! - adopting a database built without dbops: a verified baseline
//!   ([`Migrator::baseline`]) that records history only once a scratch build
//!   of the files matches the live catalog, and a first run that refuses to
//!   start over objects already there.
//!
//! A service embeds it with its own pool: see [`Migrator`] and
//! `examples/embedded.rs`.
#![warn(missing_docs)]

mod apply;
pub mod approvals;
pub mod audit;
mod baseline;
mod blockers;
pub mod config;
mod database;
mod error;
mod history;
pub mod hooks;
mod in_flight;
mod migrator;
mod plan;
mod redact;
mod run_log;
pub mod scaffold;
mod schemas;
mod session;
pub mod signers;
pub mod source;
pub mod split;
pub mod status;

pub use baseline::{BaselineOptions, BaselineReport, describe_difference};
pub use config::{Durability, RetryPolicy, Settings};
pub use database::{Database, connect_url};
pub use error::{Error, chain as error_chain};
pub use history::BOOKKEEPING_SCHEMA;
pub use in_flight::InFlight;
pub use migrator::{
    AuditSettings, CompletedStep, DoneByOther, Migrator, RepairAction, RepairReport, RunReport,
};
pub use plan::{DownOptions, DownTo, Plan, PlannedStep, UpOptions};
pub use redact::redact_url;
pub use source::{Direction, Migration, Source};
pub use status::Status;
