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
    /// The data-quality assertions of the `clickhouse` targets, in
    /// ClickHouse's SQL (`[check] clickhouse_assertions`), resolved the same
    /// way; `None` when the file sets none.
    pub clickhouse_assertions: Option<PathBuf>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// What the target is for, shown by `status`.
    pub description: String,
    /// Which database holds the rollups.
    pub rollups_database: RollupsDatabase,
    /// How to reach the cluster, for a target whose rollups database is
    /// [`RollupsDatabase::ClickHouse`] (and only then).
    pub clickhouse: Option<ClickHouseTarget>,
}

/// The keys of a `[targets.<name>]` table whose `rollups_database` is
/// `"clickhouse"`. The file names environment variables, never secrets: the
/// caller reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseTarget {
    /// `urls`: the servers' HTTP(S) URLs, one per shard; when empty, they
    /// come from the variable [`ClickHouseTarget::urls_env`].
    pub urls: Vec<String>,
    /// `urls_env`: the environment variable holding the comma-separated URLs
    /// when `urls` is not set (default `CLICKHOUSE_URLS`).
    pub urls_env: String,
    /// `user` (default `default`).
    pub user: String,
    /// `password_env`: the environment variable holding the user's
    /// password, if the user has one.
    pub password_env: Option<String>,
    /// `database`: the ClickHouse database of the rollup tables.
    pub database: String,
    /// `cluster`: the `remote_servers` cluster of the `Distributed` tables.
    pub cluster: String,
}

/// The default of `urls_env`.
pub const CLICKHOUSE_URLS_ENV: &str = "CLICKHOUSE_URLS";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    description: String,
    rollups_database: RollupsDatabase,
    urls: Option<Vec<String>>,
    urls_env: Option<String>,
    user: Option<String>,
    password_env: Option<String>,
    database: Option<String>,
    cluster: Option<String>,
}

impl RawTarget {
    /// The target, or the key that is wrong and why.
    fn validate(self) -> Result<TargetConfig, (&'static str, String)> {
        let clickhouse = if self.rollups_database == RollupsDatabase::ClickHouse {
            let required = |key: &'static str, value: Option<String>| {
                value.filter(|v| !v.is_empty()).ok_or((
                    key,
                    "is required for rollups_database = \"clickhouse\"".to_owned(),
                ))
            };
            let urls = self.urls.unwrap_or_default();
            if !urls.is_empty() && self.urls_env.is_some() {
                return Err(("urls", "give urls or urls_env, not both".to_owned()));
            }
            let urls_env = self
                .urls_env
                .unwrap_or_else(|| CLICKHOUSE_URLS_ENV.to_owned());
            for (key, name) in [
                ("urls_env", Some(&urls_env)),
                ("password_env", self.password_env.as_ref()),
            ] {
                if let Some(name) = name.filter(|name| !is_variable_name(name)) {
                    return Err((
                        key,
                        format!(
                            "{name:?} is not an environment variable name (letters, digits and _)"
                        ),
                    ));
                }
            }
            Some(ClickHouseTarget {
                urls,
                urls_env,
                user: self.user.unwrap_or_else(|| "default".to_owned()),
                password_env: self.password_env,
                database: required("database", self.database)?,
                cluster: required("cluster", self.cluster)?,
            })
        } else {
            let keys = [
                ("urls", self.urls.is_some()),
                ("urls_env", self.urls_env.is_some()),
                ("user", self.user.is_some()),
                ("password_env", self.password_env.is_some()),
                ("database", self.database.is_some()),
                ("cluster", self.cluster.is_some()),
            ];
            if let Some((key, _)) = keys.iter().find(|(_, set)| *set) {
                return Err((
                    key,
                    "is only for rollups_database = \"clickhouse\"".to_owned(),
                ));
            }
            None
        };
        Ok(TargetConfig {
            description: self.description,
            rollups_database: self.rollups_database,
            clickhouse,
        })
    }
}

fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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
    /// A ClickHouse cluster (the `rollup-clickhouse` crate), configured by
    /// the target's [`ClickHouseTarget`] keys; the runs' bookkeeping stays in
    /// the analytics database.
    #[serde(rename = "clickhouse")]
    ClickHouse,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    engine: Option<EngineSettings>,
    targets: BTreeMap<String, RawTarget>,
    check: RawCheck,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    assertions: PathBuf,
    clickhouse_assertions: Option<PathBuf>,
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
        let mut targets = BTreeMap::new();
        for (name, target) in raw.targets {
            if name.is_empty() || name.len() > 100 {
                return Err(invalid(
                    &format!("targets.{name}"),
                    "names are 1 to 100 characters",
                ));
            }
            let target = target
                .validate()
                .map_err(|(key, message)| invalid(&format!("targets.{name}.{key}"), &message))?;
            targets.insert(name, target);
        }
        let base = path.parent().unwrap_or(Path::new(""));
        Ok(Config {
            engine,
            targets,
            assertions: normalize(&base.join(raw.check.assertions)),
            clickhouse_assertions: raw
                .check
                .clickhouse_assertions
                .map(|file| normalize(&base.join(file))),
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
    fn clickhouse_targets_name_variables_and_their_bad_keys() {
        let config = parse(include_str!("../../../analytics/transforms/config.toml")).unwrap();
        let target = config.target("clickhouse").unwrap();
        assert_eq!(target.rollups_database, RollupsDatabase::ClickHouse);
        let clickhouse = target.clickhouse.as_ref().unwrap();
        assert_eq!(clickhouse.urls_env, CLICKHOUSE_URLS_ENV);
        assert!(clickhouse.urls.is_empty());
        assert_eq!(
            (
                clickhouse.user.as_str(),
                clickhouse.database.as_str(),
                clickhouse.cluster.as_str()
            ),
            ("default", "dbops_analytics", "dbops")
        );
        assert_eq!(config.target("local").unwrap().clickhouse, None);
        let error = |target: &str| {
            parse(&format!(
                "[targets.ch]\ndescription = \"x\"\n{target}\n[check]\nassertions = \"a.toml\"\n"
            ))
            .unwrap_err()
            .to_string()
        };
        let prefix = "invalid analytics/transforms/config.toml: targets.ch.";
        assert_eq!(
            error("rollups_database = \"clickhouse\"\ncluster = \"dbops\""),
            format!("{prefix}database: is required for rollups_database = \"clickhouse\"")
        );
        assert_eq!(
            error("rollups_database = \"clickhouse\"\ndatabase = \"d\"\ncluster = \"\""),
            format!("{prefix}cluster: is required for rollups_database = \"clickhouse\"")
        );
        assert_eq!(
            error(
                "rollups_database = \"clickhouse\"\ndatabase = \"d\"\ncluster = \"c\"\npassword_env = \"MY PASSWORD\""
            ),
            format!(
                "{prefix}password_env: \"MY PASSWORD\" is not an environment variable name (letters, digits and _)"
            )
        );
        assert_eq!(
            error(
                "rollups_database = \"clickhouse\"\ndatabase = \"d\"\ncluster = \"c\"\nurls = [\"http://a\"]\nurls_env = \"U\""
            ),
            format!("{prefix}urls: give urls or urls_env, not both")
        );
        assert_eq!(
            error("rollups_database = \"analytics\"\ncluster = \"c\""),
            format!("{prefix}cluster: is only for rollups_database = \"clickhouse\"")
        );
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
