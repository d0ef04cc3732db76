//! `configs/lint.toml`: rule severities, naming exceptions, sensitive-field words, the partition horizon.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use catalog::classification::ClassificationMap;
use serde::Deserialize;

use crate::Error;
use crate::violation::Severity;

/// The baseline file's name next to the config file, unless `baseline` names another.
pub(crate) const DEFAULT_BASELINE: &str = "lint-baseline.toml";

/// What a rule's findings count as, as set in `[rules]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Reported, fails the run.
    Error,
    /// Reported, does not fail the run.
    Warning,
    /// Not checked.
    Off,
}

/// The linter's settings. [`Config::default`] is the project's conventions
/// with no data-classification map; [`Config::load`] reads `configs/lint.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-rule level overrides, by rule ID. Rules not listed keep their default severity.
    pub levels: BTreeMap<String, Level>,
    /// Schemas whose objects are never linted (dbops's own bookkeeping).
    pub ignored_schemas: Vec<String>,
    /// Table names allowed to be singular: names ending with one of these suffixes (`_log`).
    pub singular_table_suffixes: Vec<String>,
    /// Tables keyed by their natural key instead of a surrogate `id`, by
    /// display name (`analytics.usage_hourly_rollups`): `naming-primary-key`
    /// checks only their primary key's name. The same exemption on files and
    /// on the live schema, where an ignore comment cannot reach.
    pub natural_key_tables: Vec<String>,
    /// Words that mark a column as holding a plaintext secret when its type is textual.
    pub secret_words: Vec<String>,
    /// How far ahead daily partitions must exist (`--db`).
    pub partition_horizon: Duration,
    /// How far in the future a migration version may lie before it is reported
    /// (versions are UTC `YYYYMMDDHHMM`; this absorbs clock skew).
    pub future_version_tolerance: Duration,
    /// The data-classification map, when one is configured.
    pub classification: Option<ClassificationMap>,
    /// The lint baseline file ([`crate::Baseline`]): `baseline` in the
    /// config, relative to it, by default `lint-baseline.toml` next to it.
    /// `None` for [`Config::default`], which has no file to be next to.
    pub baseline: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            levels: BTreeMap::new(),
            ignored_schemas: vec!["dbops".to_owned()],
            singular_table_suffixes: vec!["_log".to_owned()],
            natural_key_tables: Vec::new(),
            secret_words: ["password", "secret", "token", "api_key"]
                .map(str::to_owned)
                .to_vec(),
            partition_horizon: Duration::from_secs(7 * 86_400),
            future_version_tolerance: Duration::from_secs(3_600),
            classification: None,
            baseline: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    rules: BTreeMap<String, Level>,
    #[serde(default)]
    ignored_schemas: Option<Vec<String>>,
    #[serde(default)]
    baseline: Option<PathBuf>,
    #[serde(default)]
    naming: RawNaming,
    #[serde(default)]
    sensitive: RawSensitive,
    #[serde(default)]
    partitions: RawPartitions,
    #[serde(default)]
    migrations: RawMigrations,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNaming {
    singular_table_suffixes: Option<Vec<String>>,
    natural_key_tables: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSensitive {
    classification: Option<PathBuf>,
    secret_words: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartitions {
    #[serde(default, with = "humantime_serde::option")]
    horizon: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMigrations {
    #[serde(default, with = "humantime_serde::option")]
    future_version_tolerance: Option<Duration>,
}

impl Config {
    /// Reads `path` (normally `configs/lint.toml`) and the data-classification map it names,
    /// resolved relative to the config file's directory.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let raw: RawConfig = toml::from_str(text).map_err(|source| Error::Config {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        if let Some(unknown) = raw.rules.keys().find(|id| crate::rules::find(id).is_none()) {
            return Err(Error::UnknownRule {
                path: path.to_owned(),
                rule: unknown.clone(),
            });
        }
        let defaults = Config::default();
        let folder = path.parent().unwrap_or(Path::new("."));
        let baseline = folder.join(
            raw.baseline
                .unwrap_or_else(|| PathBuf::from(DEFAULT_BASELINE)),
        );
        let classification = match raw.sensitive.classification {
            Some(map) => {
                let map = path.parent().unwrap_or(Path::new(".")).join(map);
                Some(
                    ClassificationMap::load(&map)
                        .map_err(|source| Error::Classification { path: map, source })?,
                )
            }
            None => None,
        };
        Ok(Config {
            levels: raw.rules,
            ignored_schemas: raw.ignored_schemas.unwrap_or(defaults.ignored_schemas),
            singular_table_suffixes: raw
                .naming
                .singular_table_suffixes
                .unwrap_or(defaults.singular_table_suffixes),
            natural_key_tables: raw
                .naming
                .natural_key_tables
                .unwrap_or(defaults.natural_key_tables),
            secret_words: raw.sensitive.secret_words.unwrap_or(defaults.secret_words),
            partition_horizon: raw.partitions.horizon.unwrap_or(defaults.partition_horizon),
            future_version_tolerance: raw
                .migrations
                .future_version_tolerance
                .unwrap_or(defaults.future_version_tolerance),
            classification,
            baseline: Some(baseline),
        })
    }

    /// The severity a rule's findings get, or `None` when the rule is off.
    pub(crate) fn severity(&self, rule: &crate::rules::RuleInfo) -> Option<Severity> {
        match self.levels.get(rule.id) {
            Some(Level::Off) => None,
            Some(Level::Error) => Some(Severity::Error),
            Some(Level::Warning) => Some(Severity::Warning),
            None => Some(rule.severity),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_rules_and_settings() {
        let err = Config::parse(
            "[rules]\nno-such-rule = \"off\"\n",
            Path::new("configs/lint.toml"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "configs/lint.toml: unknown rule `no-such-rule` in [rules]"
        );
        let err = Config::parse("[partitions]\nhorizon = \"soon\"\n", Path::new("lint.toml"))
            .unwrap_err();
        assert_eq!(err.to_string(), "lint.toml: invalid settings");
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause.as_deref().is_some_and(|c| c.contains("horizon")),
            "{cause:?}"
        );
    }

    #[test]
    fn reads_levels_and_durations() {
        let config = Config::parse(
            "[rules]\ndrop-column = \"warning\"\n[partitions]\nhorizon = \"14d\"\n",
            Path::new("l.toml"),
        )
        .unwrap();
        assert_eq!(config.levels["drop-column"], Level::Warning);
        assert_eq!(config.partition_horizon, Duration::from_secs(14 * 86_400));
        assert_eq!(config.baseline, Some(PathBuf::from("lint-baseline.toml")));
        let config = Config::parse(
            "baseline = \"../accepted.toml\"\n",
            Path::new("configs/lint.toml"),
        )
        .unwrap();
        assert_eq!(
            config.baseline,
            Some(PathBuf::from("configs/../accepted.toml"))
        );
    }
}
