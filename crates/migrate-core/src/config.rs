//! Engine settings and the `configs/migrate.toml` file they usually come from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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
    /// Retries of statements that fail on `lock_timeout` or lose their connection before commit.
    pub retry: RetryPolicy,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10 * 60),
            lock_wait: Duration::from_secs(60),
            retry: RetryPolicy::default(),
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

/// Where one target's migrations and database are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The migrations folder, relative to the configuration file's project root.
    pub dir: PathBuf,
    /// The environment variable holding the database URL.
    pub url_env: String,
    /// Another variable to use when `url_env` is unset.
    #[serde(default)]
    pub fallback_url_env: Option<String>,
}

/// The telemetry sink.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The OTLP endpoint; `OTEL_EXPORTER_OTLP_ENDPOINT` takes precedence. No endpoint, no exporter.
    pub otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`; `OTEL_EXPORTER_OTLP_PROTOCOL` takes precedence.
    pub otlp_protocol: Option<String>,
    /// The `service.name` resource attribute.
    pub service_name: Option<String>,
}

/// What an environment (`--env`) demands before migrations run.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvironmentPolicy {
    /// Distinct approvers, none of them the actor, needed for the exact plan hash.
    pub approvals: u32,
    /// Ask for confirmation on a terminal; without a terminal, `--yes` is required.
    pub confirm: bool,
    /// Whether `--allow-lint-errors` may override error-level lint findings here.
    pub allow_lint_override: bool,
}

/// The contents of `configs/migrate.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The migration targets by name (`operational`, `analytics`).
    pub targets: BTreeMap<String, TargetConfig>,
    /// Timeouts, lock wait and retries.
    #[serde(default)]
    pub settings: Settings,
    /// The telemetry sink.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// `[environments.NAME]` sections: the policy of each deployment environment.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentPolicy>,
    /// The `[hooks]` section, read by `migrate-hooks`.
    #[serde(default)]
    pub hooks: Option<toml::Table>,
}

impl ConfigFile {
    /// Reads and checks a configuration file. Errors name the file, line and setting.
    pub fn load(path: &Path) -> Result<ConfigFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            origin: path.display().to_string(),
            message: format!("cannot read the file: {e}"),
        })?;
        ConfigFile::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ConfigFile, Error> {
        let config: ConfigFile = toml::from_str(text).map_err(|e| Error::Config {
            origin: match e.span() {
                Some(span) => {
                    let (line, column) = crate::split::line_column(text, span.start);
                    format!("{origin}:{line}:{column}")
                }
                None => origin.to_string(),
            },
            message: e.message().to_string(),
        })?;
        config.settings.validate(origin)?;
        Ok(config)
    }

    /// The policy of the named environment.
    pub fn environment(&self, name: &str) -> Result<&EnvironmentPolicy, Error> {
        self.environments.get(name).ok_or_else(|| Error::Config {
            origin: "--env".to_string(),
            message: format!(
                "unknown environment {name:?}; configured environments: {}",
                self.environments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// The named target.
    pub fn target(&self, name: &str) -> Result<&TargetConfig, Error> {
        self.targets.get(name).ok_or_else(|| Error::Config {
            origin: "--target".to_string(),
            message: format!(
                "unknown target {name:?}; configured targets: {}",
                self.targets.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

impl Settings {
    fn validate(&self, origin: &str) -> Result<(), Error> {
        let invalid = |setting: &str, message: &str| Error::Config {
            origin: format!("{origin}: settings.{setting}"),
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
    fn the_repository_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/migrate.toml");
        let config = ConfigFile::load(&path).unwrap();
        assert!(config.targets.contains_key("operational"));
        assert!(config.targets.contains_key("analytics"));
    }

    #[test]
    fn errors_name_the_line_and_setting() {
        let text = "[targets.operational]\ndir = \"m\"\nurl_env = \"DB_URL\"\n[settings]\nlock_timout = \"1s\"\n";
        let err = ConfigFile::parse(text, "migrate.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("migrate.toml:5:1:"), "{err}");
        assert!(err.contains("lock_timout"), "{err}");

        let text = "[targets.operational]\ndir = \"m\"\nurl_env = \"DB_URL\"\n[settings.retry]\nmax_attempts = 0\n";
        let err = ConfigFile::parse(text, "migrate.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("settings.retry.max_attempts"), "{err}");

        let text = "[targets.operational]\ndir = \"m\"\nurl_env = \"DB_URL\"\n[settings]\nlock_timeout = \"soon\"\n";
        let err = ConfigFile::parse(text, "migrate.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("migrate.toml:5:"), "{err}");
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
