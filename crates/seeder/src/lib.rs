//! Deterministic, idempotent seed data for the dbops schema, and the API key hashing that services share.
//!
//! - [`operational::seed_operational`] (`dbops seed operational`): a few
//!   organizations with users, API keys and budgets, and the model registry.
//! - [`analytics::seed_analytics`] (`dbops seed analytics --events N`):
//!   the same at scale plus millions of usage events, loaded with parallel
//!   binary `COPY` straight into the daily partitions.
//! - [`api_key`]: generating, hashing (HMAC-SHA-256 with the
//!   `DBOPS_API_KEY_PEPPER` pepper), verifying and storing API keys; the one
//!   code path that writes key material.
//!
//! The same seed gives the same rows byte for byte (for analytics, with the
//! same settings and window end), because every organization and every chunk
//! of events draws from a random stream of its own. Running a seed again
//! changes nothing: entities are inserted with `ON CONFLICT DO NOTHING` on
//! their natural keys, and the event chunks already loaded are skipped. What
//! was seeded is recorded in `dbops.seed_runs`, and a run with another seed or
//! other settings is refused rather than mixing two data sets.
//!
//! Secrets never reach a log: [`api_key::ApiKeySecret`] and
//! [`api_key::Pepper`] redact themselves in `Debug` output.
#![warn(missing_docs)]

pub mod analytics;
pub mod api_key;
mod error;
mod events;
mod fixtures;
mod marker;
pub mod operational;

pub use error::Error;
