//! Engine settings: timeouts, the lock wait and retries.

use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// How the engine behaves towards the database, whatever the target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `lock_timeout` for every migration statement: how long one statement may
    /// queue behind other sessions' locks before it fails (and is retried).
    #[serde(with = "humantime_serde")]
    pub lock_timeout: Duration,
    /// `statement_timeout` for every migration statement.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// How long a run waits for another runner's migration lock on the same target.
    #[serde(with = "humantime_serde")]
    pub lock_wait: Duration,
    /// Retries of statements that fail on `lock_timeout`, and the backoff between reconnection attempts.
    pub retry: RetryPolicy,
    /// How long a run keeps trying to get its connection back after losing it
    /// (a server restart, a failover, a network cut): it reconnects with
    /// backoff, takes the lock again, reads the history and goes on. Past
    /// this budget the run fails with the last connection error.
    #[serde(with = "humantime_serde")]
    pub reconnect_budget: Duration,
    /// When the migrations' commits are flushed to disk: see [`Durability`].
    pub durability: Durability,
}

/// When the commits of a run are made durable (flushed to the server's WAL on disk).
///
/// Either way a run reports success only once everything it applied is
/// durable: a server crash right after the report loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Each migration commits without waiting for its WAL flush
    /// (`synchronous_commit = off`), and the run ends with a commit that
    /// writes a row and waits for the flush, which covers every commit before
    /// it. The trade-off: a server crash *during* the run can lose migrations
    /// the run already committed (whole migrations, with their history rows
    /// and audit entries, never half of one); the run has not reported them,
    /// and the next run applies them again. Saves one disk flush per migration.
    #[default]
    PerRun,
    /// Each migration's commit waits for its WAL flush
    /// (`synchronous_commit = on`, whatever the server's default).
    PerMigration,
}

impl Durability {
    /// The `synchronous_commit` of a migration's transaction.
    pub(crate) fn synchronous_commit(self) -> &'static str {
        match self {
            Durability::PerRun => "off",
            Durability::PerMigration => "on",
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10 * 60),
            lock_wait: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            reconnect_budget: Duration::from_secs(30),
            durability: Durability::PerRun,
        }
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 1 disables retries.
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The largest backoff ceiling.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How much the ceiling grows with each retry.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1 for the first retry): a
    /// uniformly random duration up to the exponential ceiling, so that
    /// runners that failed together do not retry together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let ceiling = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        let ceiling = ceiling.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(rand::random::<f64>() * ceiling)
    }
}

impl Settings {
    /// Checks the settings' values (deserializing checks only their types).
    ///
    /// # Errors
    /// [`Error::Config`] naming the first invalid setting by its key in the
    /// `[settings]` table, such as `settings.retry.max_attempts`.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |setting: &str, message: &str| Error::Config {
            origin: format!("settings.{setting}"),
            message: message.to_string(),
        };
        if self.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        if !(self.retry.multiplier >= 1.0 && self.retry.multiplier.is_finite()) {
            return Err(invalid(
                "retry.multiplier",
                "must be a finite number of at least 1.0",
            ));
        }
        if self.lock_timeout.is_zero() {
            return Err(invalid(
                "lock_timeout",
                "must be positive: 0 would let a migration queue behind locks forever",
            ));
        }
        if self.statement_timeout.is_zero() {
            return Err(invalid(
                "statement_timeout",
                "must be positive: 0 would turn the limit off",
            ));
        }
        // PostgreSQL takes timeouts in milliseconds, as a 32-bit integer.
        let longest = Duration::from_millis(i32::MAX as u64);
        for (setting, value) in [
            ("lock_timeout", self.lock_timeout),
            ("statement_timeout", self.statement_timeout),
            ("lock_wait", self.lock_wait),
        ] {
            if value > longest {
                return Err(invalid(
                    setting,
                    "must be at most 24 days (2147483647 ms), the longest timeout PostgreSQL accepts",
                ));
            }
        }
        if self.reconnect_budget > Duration::from_secs(24 * 60 * 60) {
            return Err(invalid("reconnect_budget", "must be at most 24 hours"));
        }
        Ok(())
    }
}

/// Formats a duration as PostgreSQL accepts it for a timeout setting (milliseconds).
pub(crate) fn pg_millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_are_named_by_their_key() {
        let check = |settings: Settings, expected: &str| {
            let err = settings.validate().unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
        };
        check(
            Settings {
                retry: RetryPolicy {
                    max_attempts: 0,
                    ..RetryPolicy::default()
                },
                ..Settings::default()
            },
            "settings.retry.max_attempts: ",
        );
        check(
            Settings {
                retry: RetryPolicy {
                    multiplier: f64::NAN,
                    ..RetryPolicy::default()
                },
                ..Settings::default()
            },
            "settings.retry.multiplier: ",
        );
        check(
            Settings {
                lock_timeout: Duration::ZERO,
                ..Settings::default()
            },
            "settings.lock_timeout: ",
        );
        check(
            Settings {
                statement_timeout: Duration::from_secs(99_999_999 * 86_400),
                ..Settings::default()
            },
            "settings.statement_timeout: ",
        );
        check(
            Settings {
                statement_timeout: Duration::ZERO,
                ..Settings::default()
            },
            "settings.statement_timeout: must be positive",
        );
        Settings::default().validate().unwrap();
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let policy = RetryPolicy::default();
        for retry in 1..10 {
            let ceiling = (0.2 * 2f64.powi(retry as i32 - 1)).min(10.0);
            assert!(policy.backoff(retry).as_secs_f64() <= ceiling);
        }
    }
}
