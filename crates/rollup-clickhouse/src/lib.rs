//! The `clickhouse` target of the usage rollups: a sharded ClickHouse cluster, spoken to over HTTP.
//!
//! The rollup tables live on every server of a ClickHouse cluster: each
//! server keeps its shard in `*_local` `ReplacingMergeTree` tables, and
//! `Distributed` tables over them route rows by organization
//! (migrations/clickhouse). This crate holds
//!
//! - [`ClickHouse`]: a client of the cluster's HTTP interface (plain HTTP on
//!   loopback, HTTPS with rustls for a managed service), built from
//!   [`Settings`];
//! - [`check`]: the data-quality assertions, in ClickHouse's SQL, on
//!   one version per key;
//! - [`migrate`]: the schema migrations of `migrations/clickhouse/`, run
//!   statement by statement on every server with a history table in
//!   ClickHouse and the run's lock held in PostgreSQL, since ClickHouse has
//!   neither transactions nor advisory locks;
//! - [`buckets`]: rewriting the (organization, hour) buckets late events
//!   touched, from the events in PostgreSQL, as complete rows carrying the
//!   run's version, and the daily rows of their days;
//! - [`run`]: a run of the target, driven by its own watermark on the
//!   events, with its bookkeeping in PostgreSQL;
//! - [`queries`]: the three analytics queries of `analytics/queries/`, in
//!   their ClickHouse form;
//! - [`totals`]: every (organization, hour) whose totals on ClickHouse
//!   differ from the events in PostgreSQL.
//!
//! The design is explained in docs/analytics.md and docs/ARCHITECTURE.md.
#![warn(missing_docs)]

pub mod buckets;
pub mod check;
mod client;
mod error;
pub mod migrate;
mod prune;
pub mod queries;
pub mod run;
pub mod totals;
mod transforms;

pub use client::{ClickHouse, Settings};
pub use error::Error;
