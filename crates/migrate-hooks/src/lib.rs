//! The standard checks dbops runs around each migration, as
//! [`migrate_core::hooks::Hook`]s.
//!
//! Before a migration, [`BlockingSessions`] looks for sessions that hold or
//! wait for locks on the tables it touches, and for transactions open too
//! long, and waits, warns or refuses. After it, [`RowCounts`] reports how
//! many rows each touched table gained or lost, [`TableRewrites`] the tables
//! whose storage was replaced, [`InvalidIndexes`] and [`NotValidConstraints`]
//! what was left half done, and [`LongRunning`] a migration over the
//! long-running threshold. Which tables a migration touches is read from its
//! SQL with squawk's parser ([`Touched`]).
//!
//! Findings are data: the engine logs them, records them on the migration's
//! span and keeps them in its report.
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
mod config;
pub mod data_loss;
mod error;
mod invalid_indexes;
mod leftover_check;
mod long_running;
mod not_valid_constraints;
mod reading;
mod relations;
mod row_counts;
mod table_rewrites;
mod tables;

use std::sync::Arc;

use migrate_core::hooks::Hook;

pub use blocking_sessions::BlockingSessions;
pub use config::{
    BlockingSessionsConfig, HooksConfig, LongRunningConfig, OnBlocked, RowCountsConfig,
    StillBlocked,
};
pub use error::Error;
pub use invalid_indexes::InvalidIndexes;
pub use long_running::LongRunning;
pub use not_valid_constraints::NotValidConstraints;
pub use row_counts::RowCounts;
pub use table_rewrites::TableRewrites;
pub use tables::{Leftovers, TableName, Touched};

/// The standard hooks the configuration enables, in the order they run.
///
/// They share what they read from each script: every script is parsed once
/// per run, ahead of it (see [`Hook::look_ahead`]), not once per hook.
pub fn standard_hooks(config: &HooksConfig) -> Vec<Arc<dyn Hook>> {
    let mut hooks: Vec<Arc<dyn Hook>> = Vec::new();
    if !config.enabled {
        return hooks;
    }
    let readings = Arc::new(reading::Readings::default());
    if config.blocking_sessions.enabled {
        let mut hook = BlockingSessions::new(config.blocking_sessions.clone());
        hook.readings = Arc::clone(&readings);
        hooks.push(Arc::new(hook));
    }
    if config.row_counts.enabled {
        let mut hook = RowCounts::new(config.row_counts.clone());
        hook.readings = Arc::clone(&readings);
        hooks.push(Arc::new(hook));
    }
    if config.table_rewrites {
        hooks.push(Arc::new(TableRewrites {
            readings: Arc::clone(&readings),
        }));
    }
    if config.invalid_indexes {
        hooks.push(Arc::new(InvalidIndexes {
            readings: Arc::clone(&readings),
        }));
    }
    if config.not_valid_constraints {
        hooks.push(Arc::new(NotValidConstraints { readings }));
    }
    if config.long_running.enabled {
        hooks.push(Arc::new(LongRunning::new(config.long_running.threshold)));
    }
    hooks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_chooses_the_hooks() {
        let names = |config: &HooksConfig| -> Vec<String> {
            standard_hooks(config)
                .iter()
                .map(|hook| hook.name().to_string())
                .collect()
        };
        let mut config = HooksConfig::default();
        assert_eq!(
            names(&config),
            [
                "blocking-sessions",
                "row-counts",
                "table-rewrites",
                "invalid-indexes",
                "not-valid-constraints",
                "long-running"
            ]
        );
        config.row_counts.enabled = false;
        config.table_rewrites = false;
        assert_eq!(names(&config).len(), 4);
        config.enabled = false;
        assert!(names(&config).is_empty());
    }
}
