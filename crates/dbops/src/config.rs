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
    /// The migrations folder, relative to the configuration file's project root ([`project_root`]).
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
    /// The allowed-signers file (ssh-keygen's format) of the people whose
    /// SSH signatures may approve a plan or sign a run here, relative to the
    /// project root ([`project_root`]); required when `approvals` is above 0.
    pub allowed_signers: Option<PathBuf>,
    /// Whether `dbops seed` may write seed data (and print API keys) here;
    /// unset, everywhere but an environment named `production`.
    pub allow_seed: Option<bool>,
    /// Whether `--accept-differences` may record a baseline over a schema
    /// that differs from the migrations; unset, as `allow_lint_override`.
    pub allow_baseline_differences: Option<bool>,
}

impl EnvironmentPolicy {
    /// Whether seeding the environment called `name` is allowed.
    pub fn allows_seed(&self, name: &str) -> bool {
        self.allow_seed.unwrap_or(name != "production")
    }
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

/// Where the configuration file is looked for when neither `--config` nor
/// `DBOPS_CONFIG` names one: this path under the working directory or under
/// any of its parents, the nearest winning, as cargo and git find their roots.
pub const DEFAULT_CONFIG: &str = "configs/migrate.toml";

/// The configuration file to use: `explicit` (from `--config` or
/// `DBOPS_CONFIG`) when given, which must exist, else the nearest
/// [`DEFAULT_CONFIG`] walking up from `start`. Errors name where it looked.
pub fn find(explicit: Option<&Path>, start: &Path) -> Result<PathBuf, CliError> {
    if let Some(path) = explicit {
        let path = start.join(path);
        if !path.is_file() {
            return Err(CliError::Config(format!(
                "{}: no such configuration file (from --config or DBOPS_CONFIG)",
                path.display()
            )));
        }
        return Ok(path);
    }
    start
        .ancestors()
        .map(|dir| dir.join(DEFAULT_CONFIG))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            CliError::Config(format!(
                "no {DEFAULT_CONFIG} in {} or any directory above it; \
                 pass --config PATH or set DBOPS_CONFIG",
                start.display()
            ))
        })
}

/// The directory that relative paths inside a configuration file start from:
/// the folder holding `configs/` when the file sits in a folder named
/// `configs` (the repository's layout, so `dir = "migrations/operational"`
/// names `<repo>/migrations/operational`), else the file's own folder.
pub fn project_root(config_path: &Path) -> PathBuf {
    let folder = config_path.parent().unwrap_or(Path::new("."));
    match (folder.file_name(), folder.parent()) {
        (Some(name), Some(parent)) if name == "configs" => parent.to_path_buf(),
        _ => folder.to_path_buf(),
    }
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
        for (name, policy) in &config.environments {
            if policy.approvals > 0 && policy.allowed_signers.is_none() {
                return Err(CliError::Config(format!(
                    "{origin}: environments.{name}: approvals = {} needs allowed_signers, the file of the keys whose signatures count",
                    policy.approvals
                )));
            }
        }
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
    fn seeding_is_refused_in_production_unless_allowed_explicitly() {
        let unset = EnvironmentPolicy::default();
        assert!(!unset.allows_seed("production"));
        assert!(unset.allows_seed("local") && unset.allows_seed("staging"));
        let allowed = EnvironmentPolicy {
            allow_seed: Some(true),
            ..EnvironmentPolicy::default()
        };
        assert!(allowed.allows_seed("production"));
        let refused = EnvironmentPolicy {
            allow_seed: Some(false),
            ..EnvironmentPolicy::default()
        };
        assert!(!refused.allows_seed("local"));
    }

    #[test]
    fn the_nearest_default_config_is_found_walking_up() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let err = find(None, &deep).unwrap_err().to_string();
        assert!(err.contains(&deep.display().to_string()), "{err}");
        assert!(err.contains("--config"), "{err}");

        std::fs::create_dir_all(root.path().join("configs")).unwrap();
        std::fs::write(root.path().join(DEFAULT_CONFIG), "").unwrap();
        assert_eq!(find(None, &deep).unwrap(), root.path().join(DEFAULT_CONFIG));

        let err = find(Some(Path::new("nope.toml")), &deep)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&deep.join("nope.toml").display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn paths_start_from_the_folder_holding_configs_or_the_file_own_folder() {
        assert_eq!(
            project_root(Path::new("/repo/configs/migrate.toml")),
            Path::new("/repo")
        );
        assert_eq!(
            project_root(Path::new("/etc/dbops/migrate.toml")),
            Path::new("/etc/dbops")
        );
        assert_eq!(project_root(Path::new("migrate.toml")), Path::new(""));
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

        let text = "[targets.operational]\ndir = \"m\"\nurl_env = \"DB_URL\"\n[environments.production]\napprovals = 2\n";
        let err = ConfigFile::parse(text, "migrate.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "migrate.toml: environments.production: approvals = 2 needs allowed_signers"
            ),
            "{err}"
        );

        let text = "[targets.operational]\ndir = \"m\"\nurl_env = \"DB_URL\"\n[settings]\nlock_timeout = \"soon\"\n";
        let err = ConfigFile::parse(text, "migrate.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("migrate.toml:5:"), "{err}");
    }
}
