//! The standard checks dbops runs around each migration, as one
//! [`migrate_core::hooks::Hook`].
//!
//! Before a migration, the blocking-sessions check looks for sessions that
//! hold or wait for locks on the tables it touches, and for transactions
//! open too long, and waits, warns or refuses. After it, the row-counts check
//! reports how many rows each touched table gained or lost, table-rewrites
//! the tables whose storage was replaced, invalid-indexes and
//! not-valid-constraints what was left half done, and long-running a
//! migration over the long-running threshold. Which tables a migration
//! touches is read from its SQL with squawk's parser ([`Touched`]), once per
//! migration.
//!
//! The checks share one catalog read before each migration and one after it,
//! each a single statement prepared once per connection that covers every
//! touched table; a migration that touches only tables it creates reads
//! nothing (unless it can leave an invalid index or a NOT VALID constraint
//! on them, which the read after it looks for).
//!
//! Findings are data: the engine logs them, records them on the migration's
//! span and keeps them in its report. Each names the check that made it.
//!
//! ```no_run
//! # fn example(migrator: migrate_core::Migrator, hooks: Option<&toml::Table>) -> Result<(), migrate_hooks::Error> {
//! let config = match hooks {
//!     Some(table) => migrate_hooks::HooksConfig::from_table(table)?,
//!     None => migrate_hooks::HooksConfig::default(),
//! };
//! let migrator = migrate_hooks::standard_hooks(&config)
//!     .into_iter()
//!     .fold(migrator, |migrator, hook| migrator.with_hook(hook));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod blocking_sessions;
mod catalog;
mod config;
pub mod data_loss;
mod error;
mod invalid_indexes;
mod long_running;
mod not_valid_constraints;
mod row_counts;
mod script;
mod standard_checks;
mod table_rewrites;
mod tables;

use std::sync::Arc;

use migrate_core::hooks::Hook;

pub use config::{
    BlockingSessionsConfig, HooksConfig, LongRunningConfig, OnBlocked, RowCountsConfig,
    StillBlocked,
};
pub use error::Error;
pub use tables::{Leftovers, TableName, Touched};

/// The standard checks the configuration enables, as one hook named
/// `standard-checks` (none when the configuration enables no check).
///
/// Build it once per run: the warning that the migration's role cannot see
/// other roles' transactions is given once per hook.
pub fn standard_hooks(config: &HooksConfig) -> Vec<Arc<dyn Hook>> {
    standard_checks::StandardChecks::new(config)
        .map(|checks| Arc::new(checks) as Arc<dyn Hook>)
        .into_iter()
        .collect()
}
