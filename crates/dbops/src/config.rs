//! The `configs/migrate.toml` file: targets, engine settings, telemetry, environments and hooks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use migrate_core::Settings;
use serde::Deserialize;

use crate::CliError;

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
    /// Timeouts, lock wait and retries: the engine's own settings.
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
    pub fn load(path: &Path) -> Result<ConfigFile, CliError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::Config(format!("{}: cannot read the file: {e}", path.display()))
        })?;
        ConfigFile::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ConfigFile, CliError> {
        let config: ConfigFile = toml::from_str(text).map_err(|e| {
            let place = match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.split('\n').count();
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!("{origin}:{line}:{column}")
                }
                None => origin.to_string(),
            };
            CliError::Config(format!("{place}: {}", e.message()))
        })?;
        config
            .settings
            .validate()
            .map_err(|e| CliError::Config(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// The policy of the named environment.
    pub fn environment(&self, name: &str) -> Result<&EnvironmentPolicy, CliError> {
        self.environments.get(name).ok_or_else(|| {
            CliError::Config(format!(
                "--env: unknown environment {name:?}; configured environments: {}",
                self.environments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// The named target.
    pub fn target(&self, name: &str) -> Result<&TargetConfig, CliError> {
        self.targets.get(name).ok_or_else(|| {
            CliError::Config(format!(
                "--target: unknown target {name:?}; configured targets: {}",
                self.targets.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
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
        assert!(
            err.starts_with("migrate.toml: settings.retry.max_attempts:"),
            "{err}"
        );

        let text = "[targets.operational]\ndir = \"m\"\nurl_env = \"DB_URL\"\n[settings]\nlock_timeout = \"soon\"\n";
        let err = ConfigFile::parse(text, "migrate.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("migrate.toml:5:"), "{err}");
    }
}
