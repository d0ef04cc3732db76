//! The data-classification map (`configs/data-classification.toml`): what each column holds, how it is protected and how long it is kept.
//!
//! ```toml
//! [tables.users]
//! retention = "forever"              # the table's default: "forever" or a duration like "400d", "7y"
//! [tables.users.columns]
//! id = { class = "internal", protection = "none" }
//! email = { class = "pii", protection = "none", retention = "730d" }
//! ```
//!
//! Tables outside `public` are keyed `"schema.table"`. Parsing checks every
//! setting and names the file, line, table, column and setting of the first
//! bad one; [`ClassificationMap::apply`] then joins the map onto a live
//! [`Schema`] and reports the columns the map and the database disagree on.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::Error;
use crate::model::Schema;

/// The parsed map: table display name to its classification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassificationMap {
    /// Tables by display name (`users`, `analytics.daily_usage`).
    pub tables: BTreeMap<String, TableClassification>,
}

/// The classification of one table's columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableClassification {
    /// How long rows are kept unless a column says otherwise.
    pub retention: Retention,
    /// Columns by name, each with its retention resolved (its own, or the table's).
    pub columns: BTreeMap<String, ColumnClassification>,
}

/// What one column holds and how it is handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnClassification {
    /// The sensitivity class.
    pub class: DataClass,
    /// How the value is protected at rest.
    pub protection: Protection,
    /// How long the value is kept: the column's own setting or the table's default.
    pub retention: Retention,
}

/// The sensitivity of a column's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    /// Fine to publish.
    Public,
    /// Internal to the platform, harmless if leaked.
    Internal,
    /// Business-sensitive: usage, spend, configuration.
    Confidential,
    /// Personal data about a person.
    Pii,
    /// Credentials or key material.
    Secret,
}

impl DataClass {
    const ALL: [(&'static str, DataClass); 5] = [
        ("public", DataClass::Public),
        ("internal", DataClass::Internal),
        ("confidential", DataClass::Confidential),
        ("pii", DataClass::Pii),
        ("secret", DataClass::Secret),
    ];

    /// The spelling used in the map, e.g. `pii`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, class)| *class == self)
            .map_or("", |(name, _)| name)
    }
}

impl fmt::Display for DataClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a column's value is protected at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// Stored as given.
    None,
    /// Only a (keyed) hash is stored.
    Hash,
    /// Stored encrypted.
    Encrypt,
}

impl Protection {
    const ALL: [(&'static str, Protection); 3] = [
        ("none", Protection::None),
        ("hash", Protection::Hash),
        ("encrypt", Protection::Encrypt),
    ];

    /// The spelling used in the map, e.g. `hash`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("", |(name, _)| name)
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long data is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Retention {
    /// Kept as long as the row exists.
    Forever,
    /// Kept for a period, written as in the map (`400d`, `7y`).
    Period {
        /// The setting as written, shown in the docs unchanged.
        text: String,
        /// The parsed period.
        duration: Duration,
    },
}

impl Retention {
    /// Parses `forever` or a humantime duration such as `400d` or `7y`.
    pub fn parse(text: &str) -> Result<Retention, String> {
        if text == "forever" {
            return Ok(Retention::Forever);
        }
        match humantime::parse_duration(text) {
            Ok(duration) if !duration.is_zero() => Ok(Retention::Period {
                text: text.to_owned(),
                duration,
            }),
            Ok(_) => Err(format!(
                "retention `{text}` is zero: use a positive duration or \"forever\""
            )),
            Err(e) => Err(format!(
                "retention `{text}` is neither \"forever\" nor a duration like \"400d\" or \"7y\" ({e})"
            )),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Forever => f.write_str("forever"),
            Retention::Period { text, .. } => f.write_str(text),
        }
    }
}

impl TryFrom<String> for Retention {
    type Error = String;
    fn try_from(text: String) -> Result<Retention, String> {
        Retention::parse(&text)
    }
}

impl From<Retention> for String {
    fn from(retention: Retention) -> String {
        retention.to_string()
    }
}

/// A disagreement between the map and the database, found by [`ClassificationMap::apply`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClassificationGap {
    /// A column of the database that the map does not classify.
    UnclassifiedColumn {
        /// Table display name.
        table: String,
        /// Column name.
        column: String,
    },
    /// A table in the map that the database does not have.
    UnknownTable {
        /// Table display name.
        table: String,
    },
    /// A column in the map that the database table does not have.
    UnknownColumn {
        /// Table display name.
        table: String,
        /// Column name.
        column: String,
    },
}

impl fmt::Display for ClassificationGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassificationGap::UnclassifiedColumn { table, column } => {
                write!(
                    f,
                    "column `{table}.{column}` is not in the data-classification map"
                )
            }
            ClassificationGap::UnknownTable { table } => {
                write!(
                    f,
                    "table `{table}` is in the data-classification map but not in the database"
                )
            }
            ClassificationGap::UnknownColumn { table, column } => {
                write!(
                    f,
                    "column `{table}.{column}` is in the data-classification map but not in the database"
                )
            }
        }
    }
}

impl ClassificationMap {
    /// Reads and parses the map at `path`.
    pub fn load(path: &Path) -> Result<ClassificationMap, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        ClassificationMap::parse(&text, path)
    }

    /// Parses map text; `path` is only used to name the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<ClassificationMap, Error> {
        let raw: RawMap = toml::from_str(text).map_err(|source| Error::ClassificationSyntax {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let setting_error = |span: Range<usize>,
                             table: &str,
                             column: Option<&str>,
                             setting: &str,
                             problem: String| {
            Error::ClassificationSetting(Box::new(SettingError {
                path: path.to_owned(),
                line: line_of(text, span.start),
                table: table.to_owned(),
                column: column.map(str::to_owned),
                setting: setting.to_owned(),
                problem,
            }))
        };
        let mut tables = BTreeMap::new();
        for (table_name, raw_table) in raw.tables {
            let table_span = raw_table.span();
            let raw_table = raw_table.into_inner();
            let retention = match raw_table.retention {
                Some(retention) => Retention::parse(retention.get_ref()).map_err(|problem| {
                    setting_error(retention.span(), &table_name, None, "retention", problem)
                })?,
                None => {
                    return Err(setting_error(
                        table_span,
                        &table_name,
                        None,
                        "retention",
                        "missing: every table needs a default retention (\"forever\" or a duration like \"400d\")"
                            .to_owned(),
                    ));
                }
            };
            let mut columns = BTreeMap::new();
            for (column_name, raw_column) in raw_table.columns {
                let column_span = raw_column.span();
                let raw_column = raw_column.into_inner();
                let column = Some(column_name.as_str());
                let class = parse_choice(raw_column.class, &DataClass::ALL, "class", &column_span)
                    .map_err(|(span, problem)| {
                        setting_error(span, &table_name, column, "class", problem)
                    })?;
                let protection = parse_choice(
                    raw_column.protection,
                    &Protection::ALL,
                    "protection",
                    &column_span,
                )
                .map_err(|(span, problem)| {
                    setting_error(span, &table_name, column, "protection", problem)
                })?;
                let retention = match raw_column.retention {
                    Some(r) => Retention::parse(r.get_ref()).map_err(|problem| {
                        setting_error(r.span(), &table_name, column, "retention", problem)
                    })?,
                    None => retention.clone(),
                };
                columns.insert(
                    column_name,
                    ColumnClassification {
                        class,
                        protection,
                        retention,
                    },
                );
            }
            tables.insert(table_name, TableClassification { retention, columns });
        }
        Ok(ClassificationMap { tables })
    }

    /// The classification of `table.column` (table by display name).
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnClassification> {
        self.tables.get(table)?.columns.get(column)
    }

    /// Sets [`crate::model::Column::classification`] on every column the map
    /// classifies, and returns where the map and the database disagree: the
    /// database's unclassified columns in table and column order, then the
    /// map's entries the database lacks in map order. Findings, not errors:
    /// the caller decides what they are worth.
    pub fn apply(&self, schema: &mut Schema) -> Vec<ClassificationGap> {
        let mut gaps = Vec::new();
        for table in &mut schema.tables {
            let key = table.display_name();
            let classified = self.tables.get(&key);
            for column in &mut table.columns {
                column.classification = classified
                    .and_then(|t| t.columns.get(&column.name))
                    .cloned();
                if column.classification.is_none() {
                    gaps.push(ClassificationGap::UnclassifiedColumn {
                        table: key.clone(),
                        column: column.name.clone(),
                    });
                }
            }
        }
        for (table_name, classified) in &self.tables {
            match schema.table(table_name) {
                None => gaps.push(ClassificationGap::UnknownTable {
                    table: table_name.clone(),
                }),
                Some(table) => gaps.extend(
                    classified
                        .columns
                        .keys()
                        .filter(|column| table.column(column).is_none())
                        .map(|column| ClassificationGap::UnknownColumn {
                            table: table_name.clone(),
                            column: column.clone(),
                        }),
                ),
            }
        }
        gaps
    }
}

/// A missing or invalid setting of the classification map, located down to the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line of the setting (or of its table or column when it is missing).
    pub line: usize,
    /// The table display name.
    pub table: String,
    /// The column, for a column setting.
    pub column: Option<String>,
    /// The setting: `class`, `protection` or `retention`.
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SettingError {
            path,
            line,
            table,
            column,
            setting,
            problem,
        } = self;
        write!(f, "{}:{line}: table `{table}`", path.display())?;
        if let Some(column) = column {
            write!(f, ", column `{column}`")?;
        }
        write!(f, ", setting `{setting}`: {problem}")
    }
}

/// Parses a setting that must be one of `choices`; on error, returns the
/// span to blame (the value's, or `missing_span` when absent) and the problem.
fn parse_choice<T: Copy>(
    value: Option<Spanned<String>>,
    choices: &[(&'static str, T)],
    setting: &str,
    missing_span: &Range<usize>,
) -> Result<T, (Range<usize>, String)> {
    let Some(value) = value else {
        return Err((
            missing_span.clone(),
            format!("missing: every column needs a `{setting}`"),
        ));
    };
    lookup(choices, value.get_ref(), setting).map_err(|problem| (value.span(), problem))
}

fn lookup<T: Copy>(choices: &[(&'static str, T)], given: &str, setting: &str) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| *name == given)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            format!(
                "unknown {setting} `{given}` (expected one of: {})",
                names.join(", ")
            )
        })
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    #[serde(default)]
    tables: BTreeMap<String, Spanned<RawTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    retention: Option<Spanned<String>>,
    #[serde(default)]
    columns: BTreeMap<String, Spanned<RawColumn>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    class: Option<Spanned<String>>,
    protection: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClassificationMap, String> {
        ClassificationMap::parse(text, Path::new("configs/data-classification.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn column_retention_defaults_to_the_table_retention() {
        let map = parse(
            r#"
[tables.users]
retention = "forever"
[tables.users.columns]
id = { class = "internal", protection = "none" }
email = { class = "pii", protection = "hash", retention = "730d" }
"#,
        )
        .unwrap();
        let id = map.column("users", "id").unwrap();
        assert_eq!(
            (id.class, id.protection, &id.retention),
            (DataClass::Internal, Protection::None, &Retention::Forever)
        );
        let email = map.column("users", "email").unwrap();
        assert_eq!(
            (email.class, email.protection),
            (DataClass::Pii, Protection::Hash)
        );
        assert_eq!(email.retention.to_string(), "730d");
        assert_eq!(
            email.retention,
            Retention::Period {
                text: "730d".into(),
                duration: Duration::from_secs(730 * 86_400)
            }
        );
    }

    #[test]
    fn bad_settings_name_file_line_table_column_and_setting() {
        let text = "[tables.users]\nretention = \"forever\"\n[tables.users.columns]\nemail = { class = \"piii\", protection = \"none\" }\n";
        assert_eq!(
            parse(text).unwrap_err(),
            "configs/data-classification.toml:4: table `users`, column `email`, setting `class`: \
             unknown class `piii` (expected one of: public, internal, confidential, pii, secret)"
        );
        let text = "[tables.users]\nretention = \"forever\"\n[tables.users.columns]\nemail = { class = \"pii\" }\n";
        assert_eq!(
            parse(text).unwrap_err(),
            "configs/data-classification.toml:4: table `users`, column `email`, setting `protection`: \
             missing: every column needs a `protection`"
        );
        let text = "[tables.users]\nretention = \"10 parsecs\"\n";
        assert!(
            parse(text).unwrap_err().starts_with(
                "configs/data-classification.toml:2: table `users`, setting `retention`: retention `10 parsecs` is neither"
            ),
            "{}",
            parse(text).unwrap_err()
        );
        let text = "[tables.users.columns]\nid = { class = \"internal\", protection = \"none\" }\n";
        assert!(
            parse(text)
                .unwrap_err()
                .contains("table `users`, setting `retention`: missing")
        );
    }

    #[test]
    fn unknown_keys_and_bad_syntax_name_the_file() {
        let err = parse("[tables.users]\nretention = \"forever\"\nowner = \"me\"\n").unwrap_err();
        assert!(
            err.starts_with("configs/data-classification.toml: "),
            "{err}"
        );
        assert!(err.contains("owner"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }
}
