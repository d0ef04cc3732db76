//! The `[hooks]` section of `configs/migrate.toml`, typed.
//!
//! Read by hand rather than through serde so that every error names the
//! full setting (`hooks.blocking_sessions.max_wait`) and what it expects.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::Error;

/// The settings of the standard hooks. Every setting has a default, so an
/// absent section means the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HooksConfig {
    /// `hooks.enabled`: false turns every standard hook off.
    pub enabled: bool,
    /// `[hooks.blocking_sessions]`.
    pub blocking_sessions: BlockingSessionsConfig,
    /// `[hooks.row_counts]`.
    pub row_counts: RowCountsConfig,
    /// `[hooks.table_rewrites]`: `enabled` only.
    pub table_rewrites: bool,
    /// `[hooks.invalid_indexes]`: `enabled` only.
    pub invalid_indexes: bool,
    /// `[hooks.not_valid_constraints]`: `enabled` only.
    pub not_valid_constraints: bool,
    /// `[hooks.long_running]`.
    pub long_running: LongRunningConfig,
}

/// What the blocking-sessions check does when it finds blockers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBlocked {
    /// Poll until they are gone, up to `max_wait`; then do `when_still_blocked`.
    Wait,
    /// Report them as a warning and run the migration.
    Warn,
    /// Refuse to run the migration.
    Refuse,
}

/// What the blocking-sessions check does when `max_wait` passes with blockers left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StillBlocked {
    /// Report them as a warning and run the migration.
    Warn,
    /// Refuse to run the migration.
    Refuse,
}

/// `[hooks.blocking_sessions]`: sessions holding or waiting for locks on the
/// tables a migration touches, and transactions open too long.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockingSessionsConfig {
    /// `enabled`.
    pub enabled: bool,
    /// `action`: `"wait"`, `"warn"` or `"refuse"`.
    pub action: OnBlocked,
    /// `max_wait`: how long `wait` polls.
    pub max_wait: Duration,
    /// `poll_interval`: the pause between two looks while waiting.
    pub poll_interval: Duration,
    /// `when_still_blocked`: `"warn"` or `"refuse"`, after `max_wait`.
    pub when_still_blocked: StillBlocked,
    /// `long_transaction`: a transaction of another session open longer than
    /// this counts as blocking.
    pub long_transaction: Duration,
    /// `short_transaction`: lock holders whose transaction began less than
    /// this ago do not count. On a busy table some short transaction always
    /// holds a lock; it ends long before the migration's `lock_timeout`.
    pub short_transaction: Duration,
}

/// `[hooks.row_counts]`: row counts of the touched tables before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct RowCountsConfig {
    /// `enabled`.
    pub enabled: bool,
    /// `exact_max_rows`: tables estimated at no more rows than this are
    /// counted with `count(*)`; larger ones are estimated from statistics.
    pub exact_max_rows: u64,
}

/// `[hooks.long_running]`: the migration's duration against a threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRunningConfig {
    /// `enabled`.
    pub enabled: bool,
    /// `threshold`: a migration running longer than this is reported.
    pub threshold: Duration,
}

impl Default for HooksConfig {
    fn default() -> HooksConfig {
        HooksConfig {
            enabled: true,
            blocking_sessions: BlockingSessionsConfig {
                enabled: true,
                action: OnBlocked::Wait,
                max_wait: Duration::from_secs(30),
                poll_interval: Duration::from_millis(500),
                when_still_blocked: StillBlocked::Refuse,
                long_transaction: Duration::from_secs(5 * 60),
                short_transaction: Duration::from_secs(1),
            },
            row_counts: RowCountsConfig {
                enabled: true,
                exact_max_rows: 100_000,
            },
            table_rewrites: true,
            invalid_indexes: true,
            not_valid_constraints: true,
            long_running: LongRunningConfig {
                enabled: true,
                threshold: Duration::from_secs(10 * 60),
            },
        }
    }
}

impl HooksConfig {
    /// Reads the `[hooks]` section as `toml` parsed it. Unknown settings are
    /// errors, so that a typo does not silently leave a default in place.
    pub fn from_table(table: &toml::Table) -> Result<HooksConfig, Error> {
        let defaults = HooksConfig::default();
        let mut hooks = Section::new("hooks".to_string(), Some(table));
        let enabled = hooks.bool("enabled", defaults.enabled)?;

        let mut section = hooks.section("blocking_sessions")?;
        let d = &defaults.blocking_sessions;
        let blocking_sessions = BlockingSessionsConfig {
            enabled: section.bool("enabled", d.enabled)?,
            action: section.choice(
                "action",
                d.action,
                &[
                    ("wait", OnBlocked::Wait),
                    ("warn", OnBlocked::Warn),
                    ("refuse", OnBlocked::Refuse),
                ],
            )?,
            max_wait: section.duration("max_wait", d.max_wait)?,
            poll_interval: section.positive_duration("poll_interval", d.poll_interval)?,
            when_still_blocked: section.choice(
                "when_still_blocked",
                d.when_still_blocked,
                &[
                    ("warn", StillBlocked::Warn),
                    ("refuse", StillBlocked::Refuse),
                ],
            )?,
            long_transaction: section.positive_duration("long_transaction", d.long_transaction)?,
            short_transaction: section.duration("short_transaction", d.short_transaction)?,
        };
        section.finish()?;

        let mut section = hooks.section("row_counts")?;
        let row_counts = RowCountsConfig {
            enabled: section.bool("enabled", defaults.row_counts.enabled)?,
            exact_max_rows: section.count("exact_max_rows", defaults.row_counts.exact_max_rows)?,
        };
        section.finish()?;

        let mut toggle = |name: &str, default: bool| -> Result<bool, Error> {
            let mut section = hooks.section(name)?;
            let enabled = section.bool("enabled", default)?;
            section.finish()?;
            Ok(enabled)
        };
        let table_rewrites = toggle("table_rewrites", defaults.table_rewrites)?;
        let invalid_indexes = toggle("invalid_indexes", defaults.invalid_indexes)?;
        let not_valid_constraints =
            toggle("not_valid_constraints", defaults.not_valid_constraints)?;

        let mut section = hooks.section("long_running")?;
        let long_running = LongRunningConfig {
            enabled: section.bool("enabled", defaults.long_running.enabled)?,
            threshold: section.positive_duration("threshold", defaults.long_running.threshold)?,
        };
        section.finish()?;
        hooks.finish()?;

        Ok(HooksConfig {
            enabled,
            blocking_sessions,
            row_counts,
            table_rewrites,
            invalid_indexes,
            not_valid_constraints,
            long_running,
        })
    }
}

/// One table of settings being read, remembering which keys were read so
/// that [`Section::finish`] can reject the others.
struct Section<'a> {
    path: String,
    table: Option<&'a toml::Table>,
    read: BTreeSet<String>,
}

impl<'a> Section<'a> {
    fn new(path: String, table: Option<&'a toml::Table>) -> Section<'a> {
        Section {
            path,
            table,
            read: BTreeSet::new(),
        }
    }

    fn invalid(&self, key: &str, message: String) -> Error {
        Error::Config {
            setting: format!("{}.{key}", self.path),
            message,
        }
    }

    fn get(&mut self, key: &str) -> Option<&'a toml::Value> {
        self.read.insert(key.to_string());
        self.table.and_then(|table| table.get(key))
    }

    fn section(&mut self, key: &str) -> Result<Section<'a>, Error> {
        let path = format!("{}.{key}", self.path);
        match self.get(key) {
            None => Ok(Section::new(path, None)),
            Some(toml::Value::Table(table)) => Ok(Section::new(path, Some(table))),
            Some(other) => Err(self.invalid(
                key,
                format!("expected a table of settings, found {}", other.type_str()),
            )),
        }
    }

    fn bool(&mut self, key: &str, default: bool) -> Result<bool, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::Boolean(value)) => Ok(*value),
            Some(other) => Err(self.invalid(
                key,
                format!("expected true or false, found {}", other.type_str()),
            )),
        }
    }

    fn count(&mut self, key: &str, default: u64) -> Result<u64, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(value)) => u64::try_from(*value).map_err(|_| {
                self.invalid(
                    key,
                    format!("expected a number of at least 0, found {value}"),
                )
            }),
            Some(other) => Err(self.invalid(
                key,
                format!("expected a whole number, found {}", other.type_str()),
            )),
        }
    }

    fn duration(&mut self, key: &str, default: Duration) -> Result<Duration, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::String(text)) => humantime::parse_duration(text).map_err(|e| {
                self.invalid(
                    key,
                    format!(
                        "expected a duration such as \"30s\" or \"10min\", found {text:?} ({e})"
                    ),
                )
            }),
            Some(other) => Err(self.invalid(
                key,
                format!(
                    "expected a duration string such as \"30s\", found {}",
                    other.type_str()
                ),
            )),
        }
    }

    fn positive_duration(&mut self, key: &str, default: Duration) -> Result<Duration, Error> {
        let duration = self.duration(key, default)?;
        if duration.is_zero() {
            return Err(self.invalid(key, "must be longer than 0s".to_string()));
        }
        Ok(duration)
    }

    fn choice<T: Copy>(
        &mut self,
        key: &str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, Error> {
        let names = || {
            choices
                .iter()
                .map(|(name, _)| format!("\"{name}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.get(key) {
            None => Ok(default),
            Some(toml::Value::String(text)) => choices
                .iter()
                .find(|(name, _)| name == text)
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    self.invalid(key, format!("expected one of {}, found {text:?}", names()))
                }),
            Some(other) => Err(self.invalid(
                key,
                format!("expected one of {}, found {}", names(), other.type_str()),
            )),
        }
    }

    fn finish(self) -> Result<(), Error> {
        let Some(table) = self.table else {
            return Ok(());
        };
        match table.keys().find(|key| !self.read.contains(*key)) {
            None => Ok(()),
            Some(key) => {
                let known: Vec<&str> = self.read.iter().map(String::as_str).collect();
                Err(self.invalid(
                    key,
                    format!(
                        "unknown setting; the settings here are: {}",
                        known.join(", ")
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HooksConfig, Error> {
        let table: toml::Table = toml::from_str(text).expect("valid TOML");
        let hooks = table
            .get("hooks")
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default();
        HooksConfig::from_table(&hooks)
    }

    fn check_error(text: &str, expected: &str) {
        let error = parse(text).unwrap_err().to_string();
        assert_eq!(error, expected);
    }

    #[test]
    fn the_repository_config_spells_out_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/migrate.toml");
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(parse(&text).unwrap(), HooksConfig::default());
    }

    #[test]
    fn an_empty_section_means_the_defaults() {
        assert_eq!(parse("[hooks]").unwrap(), HooksConfig::default());
    }

    #[test]
    fn settings_are_read() {
        let config = parse(
            "[hooks.blocking_sessions]\naction = \"refuse\"\nmax_wait = \"2s\"\nlong_transaction = \"1min\"\n\
             [hooks.row_counts]\nexact_max_rows = 10\n[hooks.table_rewrites]\nenabled = false\n\
             [hooks.long_running]\nthreshold = \"90s\"\n",
        )
        .unwrap();
        assert_eq!(config.blocking_sessions.action, OnBlocked::Refuse);
        assert_eq!(config.blocking_sessions.max_wait, Duration::from_secs(2));
        assert_eq!(
            config.blocking_sessions.long_transaction,
            Duration::from_secs(60)
        );
        assert_eq!(config.row_counts.exact_max_rows, 10);
        assert!(!config.table_rewrites);
        assert!(config.invalid_indexes);
        assert_eq!(config.long_running.threshold, Duration::from_secs(90));
    }

    #[test]
    fn errors_name_the_setting() {
        check_error(
            "[hooks.blocking_sessions]\nmax_wiat = \"2s\"",
            "hooks.blocking_sessions.max_wiat: unknown setting; the settings here are: \
             action, enabled, long_transaction, max_wait, poll_interval, short_transaction, when_still_blocked",
        );
        check_error(
            "[hooks.blocking_sessions]\naction = \"ask\"",
            "hooks.blocking_sessions.action: expected one of \"wait\", \"warn\", \"refuse\", found \"ask\"",
        );
        check_error(
            "[hooks.long_running]\nthreshold = \"soon\"",
            "hooks.long_running.threshold: expected a duration such as \"30s\" or \"10min\", \
             found \"soon\" (expected number at 0)",
        );
        check_error(
            "[hooks.row_counts]\nexact_max_rows = -1",
            "hooks.row_counts.exact_max_rows: expected a number of at least 0, found -1",
        );
        check_error(
            "[hooks]\ninvalid_indexes = true",
            "hooks.invalid_indexes: expected a table of settings, found boolean",
        );
        check_error(
            "[hooks.blocking_sessions]\npoll_interval = \"0s\"",
            "hooks.blocking_sessions.poll_interval: must be longer than 0s",
        );
        check_error(
            "[hooks]\nenabeld = false",
            "hooks.enabeld: unknown setting; the settings here are: blocking_sessions, enabled, \
             invalid_indexes, long_running, not_valid_constraints, row_counts, table_rewrites",
        );
    }
}
