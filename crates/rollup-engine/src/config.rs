//! `analytics/transforms/config.toml`: the engine's settings and the rollup targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// The default location of the configuration, relative to the workspace root.
pub const DEFAULT_PATH: &str = "analytics/transforms/config.toml";

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How runs behave.
    pub engine: EngineSettings,
    /// The targets by name (`local`, `warehouse`).
    pub targets: BTreeMap<String, TargetConfig>,
    /// The data-quality assertions file run by `check`, resolved against the
    /// configuration file's directory.
    pub assertions: PathBuf,
    path: PathBuf,
}

/// How runs behave: the `[engine]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// How far behind the source database's clock the watermark stays, on top
    /// of the guard on open transactions (see [`crate::run`]). It covers
    /// writers the engine cannot see in `pg_stat_activity`.
    #[serde(with = "humantime_serde")]
    pub safety_lag: Duration,
    /// The most (organization, hour) buckets one transaction of an
    /// incremental run recomputes; it also bounds the advisory locks a
    /// transaction holds.
    pub max_batch_buckets: u32,
    /// A run that takes longer than this per hour of data it covered is
    /// flagged as slow by `status`.
    #[serde(with = "humantime_serde")]
    pub slow_run_per_hour: Duration,
    /// Memory, in MiB, a full rebuild may use to sum daily rows while the
    /// hourly rows pass through the engine; beyond it, the days are derived
    /// from the written hourly rows with `daily_rollup.sql` (slower, same rows).
    #[serde(default = "default_rebuild_memory_mib")]
    pub rebuild_memory_mib: u32,
    /// What a run does when its role on the operational database lacks
    /// `pg_read_all_stats` and so cannot see other roles' open transactions,
    /// which the watermark then covers only by the safety lag.
    #[serde(default)]
    pub missing_read_all_stats: MissingGrant,
}

/// What a run does when a grant it needs to see everything is missing:
/// `engine.missing_read_all_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingGrant {
    /// Log a warning naming the grant and go on (the default).
    #[default]
    Warn,
    /// Fail before doing anything, naming the grant.
    Refuse,
}

fn default_rebuild_memory_mib() -> u32 {
    256
}

impl Default for EngineSettings {
    fn default() -> EngineSettings {
        EngineSettings {
            safety_lag: Duration::from_secs(60),
            max_batch_buckets: 1000,
            slow_run_per_hour: Duration::from_secs(5 * 60),
            rebuild_memory_mib: default_rebuild_memory_mib(),
            missing_read_all_stats: MissingGrant::Warn,
        }
    }
}

/// One `[targets.<name>]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// What the target is for, shown by `status`.
    pub description: String,
    /// Which database holds the rollups.
    pub rollups_database: RollupsDatabase,
}

/// The database that holds a target's rollups. The events are always read
/// from the operational database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollupsDatabase {
    /// The operational database itself (`DB_URL`).
    Operational,
    /// The analytics database (`ANALYTICS_URL`, which defaults to `DB_URL`);
    /// the hourly rows are computed on the operational side and moved with
    /// binary `COPY`.
    Analytics,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    engine: Option<EngineSettings>,
    targets: BTreeMap<String, TargetConfig>,
    check: RawCheck,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    assertions: PathBuf,
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` names it in errors and anchors the
    /// relative assertions path.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let raw: RawConfig = toml::from_str(text).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let invalid = |item: &str, message: &str| Error::Invalid {
            path: path.to_owned(),
            item: item.to_owned(),
            message: message.to_owned(),
        };
        let engine = raw.engine.unwrap_or_default();
        if engine.max_batch_buckets == 0 || engine.max_batch_buckets > 10_000 {
            return Err(invalid(
                "engine.max_batch_buckets",
                "must be between 1 and 10000",
            ));
        }
        if engine.slow_run_per_hour.is_zero() {
            return Err(invalid(
                "engine.slow_run_per_hour",
                "must be longer than zero",
            ));
        }
        if raw.targets.is_empty() {
            return Err(invalid("targets", "at least one target must be defined"));
        }
        for name in raw.targets.keys() {
            if name.is_empty() || name.len() > 100 {
                return Err(invalid(
                    &format!("targets.{name}"),
                    "names are 1 to 100 characters",
                ));
            }
        }
        let base = path.parent().unwrap_or(Path::new(""));
        Ok(Config {
            engine,
            targets: raw.targets,
            assertions: normalize(&base.join(raw.check.assertions)),
            path: path.to_owned(),
        })
    }

    /// The target called `name`.
    pub fn target(&self, name: &str) -> Result<&TargetConfig, Error> {
        self.targets.get(name).ok_or_else(|| Error::UnknownTarget {
            name: name.to_owned(),
            path: self.path.display().to_string(),
            known: self.targets.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The file the configuration was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes `.` and `dir/..` pairs from a path, without touching the file
/// system, so that messages name `analytics/tests/x.toml` rather than
/// `analytics/transforms/../tests/x.toml`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut parts: Vec<Component<'_>> = Vec::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(parts.last(), Some(Component::Normal(_))) => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("analytics/transforms/config.toml"))
    }

    #[test]
    fn the_shipped_configuration_is_valid() {
        let text = include_str!("../../../analytics/transforms/config.toml");
        let config = parse(text).unwrap();
        assert_eq!(
            config.target("local").unwrap().rollups_database,
            RollupsDatabase::Operational
        );
        assert_eq!(
            config.target("warehouse").unwrap().rollups_database,
            RollupsDatabase::Analytics
        );
        assert_eq!(
            config.assertions,
            Path::new("analytics/tests/hourly_rollup.toml")
        );
        assert_eq!(normalize(Path::new("../a/./b/../c")), Path::new("../a/c"));
        assert_eq!(config.engine.slow_run_per_hour, Duration::from_secs(300));
    }

    #[test]
    fn errors_name_the_file_and_the_setting() {
        let error = parse(
            "[engine]\nsafety_lag = \"1m\"\nmax_batch_buckets = 0\nslow_run_per_hour = \"5m\"\n\
             [targets.local]\ndescription = \"x\"\nrollups_database = \"operational\"\n\
             [check]\nassertions = \"a.toml\"\n",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid analytics/transforms/config.toml: engine.max_batch_buckets: must be between 1 and 10000"
        );

        let error = parse(
            "[targets.local]\ndescription = \"x\"\nrollups_database = \"elsewhere\"\n\
             [check]\nassertions = \"a.toml\"\n",
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(
                "invalid analytics/transforms/config.toml: TOML parse error at line 3"
            ),
            "{message}"
        );
        assert!(message.contains("unknown variant `elsewhere`"), "{message}");
    }

    #[test]
    fn missing_read_all_stats_is_warn_unless_set_to_refuse() {
        let with = |value: &str| {
            parse(&format!(
                "[engine]\nsafety_lag = \"1m\"\nmax_batch_buckets = 10\nslow_run_per_hour = \"5m\"\n{value}\n\
                 [targets.local]\ndescription = \"x\"\nrollups_database = \"operational\"\n\
                 [check]\nassertions = \"a.toml\"\n"
            ))
        };
        let unset = with("").unwrap();
        assert_eq!(unset.engine.missing_read_all_stats, MissingGrant::Warn);
        let refuse = with("missing_read_all_stats = \"refuse\"").unwrap();
        assert_eq!(refuse.engine.missing_read_all_stats, MissingGrant::Refuse);
        let message = with("missing_read_all_stats = \"ignore\"")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("unknown variant `ignore`, expected `warn` or `refuse`"),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_target_lists_the_known_ones() {
        let config = parse(
            "[targets.local]\ndescription = \"x\"\nrollups_database = \"operational\"\n\
             [check]\nassertions = \"a.toml\"\n",
        )
        .unwrap();
        assert_eq!(
            config.target("lake").unwrap_err().to_string(),
            "unknown rollup target \"lake\"; analytics/transforms/config.toml defines local"
        );
    }
}
