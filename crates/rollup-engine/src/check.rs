//! `dbops rollup check`: the data-quality assertions of `analytics/tests/hourly_rollup.toml`, run against the rollups.
//!
//! Every assertion describes the rows that violate it (see the file's header
//! for the kinds); [`check`] counts them and keeps a few as a sample. The
//! findings are data: a failed assertion is not an error of this function.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio_postgres::Client;

use crate::Error;

/// How many violating rows a finding shows.
const SAMPLE_ROWS: i64 = 5;

/// A parsed assertions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertions {
    /// The file it was read from.
    pub path: PathBuf,
    /// The assertions, in file order.
    pub assertions: Vec<Assertion>,
}

/// One assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// Unique name, lowercase snake_case.
    pub name: String,
    /// What a violation means.
    pub severity: Severity,
    /// What the assertion guarantees, for people.
    pub description: String,
    /// The schema-qualified table it is about.
    pub table: String,
    /// What it checks.
    pub rule: Rule,
}

/// How bad a violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Reported, but `check` passes.
    Warning,
    /// `check` fails.
    Error,
}

/// What an assertion checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// No row has NULL in any of these columns.
    NotNull(Vec<String>),
    /// No two rows share the values of these columns.
    Unique(Vec<String>),
    /// Every row satisfies this boolean SQL expression.
    Row(String),
    /// This query returns the violating rows.
    Query(String),
}

/// The outcome of one assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The assertion's name.
    pub assertion: String,
    /// Its severity.
    pub severity: Severity,
    /// Its description.
    pub description: String,
    /// How many rows violate it.
    pub violations: i64,
    /// Up to five violating rows, as JSON objects.
    pub sample: Vec<String>,
}

impl Finding {
    /// Whether no row violates the assertion.
    pub fn passed(&self) -> bool {
        self.violations == 0
    }

    /// Whether the finding fails the check (a violated `error` assertion).
    pub fn fails(&self) -> bool {
        !self.passed() && self.severity == Severity::Error
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    table: Option<String>,
    #[serde(default)]
    assertion: Vec<RawAssertion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertion {
    name: String,
    kind: Kind,
    severity: Severity,
    description: String,
    table: Option<String>,
    columns: Option<Vec<String>>,
    condition: Option<String>,
    sql: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum Kind {
    NotNull,
    Unique,
    Row,
    Query,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::NotNull => "not_null",
            Kind::Unique => "unique",
            Kind::Row => "row",
            Kind::Query => "query",
        }
    }
}

impl Assertions {
    /// Reads and validates the assertions file at `path`.
    pub fn load(path: &Path) -> Result<Assertions, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Assertions::parse(&text, path)
    }

    /// Parses assertions text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Assertions, Error> {
        let raw: RawFile = toml::from_str(text).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let mut names = BTreeSet::new();
        let mut assertions = Vec::with_capacity(raw.assertion.len());
        for (index, a) in raw.assertion.into_iter().enumerate() {
            let item = format!("assertion {} ({})", index + 1, a.name);
            let invalid = |message: String| Error::Invalid {
                path: path.to_owned(),
                item: item.clone(),
                message,
            };
            if !is_identifier(&a.name) {
                return Err(invalid("the name must be lowercase snake_case".into()));
            }
            if !names.insert(a.name.clone()) {
                return Err(invalid("the name is used by an earlier assertion".into()));
            }
            let table = a.table.or_else(|| raw.table.clone()).ok_or_else(|| {
                invalid("no table: set `table` here or at the top of the file".into())
            })?;
            if !table
                .split_once('.')
                .is_some_and(|(schema, name)| is_identifier(schema) && is_identifier(name))
            {
                return Err(invalid(format!(
                    "table {table:?} must be schema.table in lowercase snake_case"
                )));
            }
            let fields = [
                ("columns", a.columns.is_some()),
                ("condition", a.condition.is_some()),
                ("sql", a.sql.is_some()),
            ];
            let wanted = match a.kind {
                Kind::NotNull | Kind::Unique => "columns",
                Kind::Row => "condition",
                Kind::Query => "sql",
            };
            for (field, present) in fields {
                if present != (field == wanted) {
                    let verb = if present { "does not take" } else { "needs" };
                    return Err(invalid(format!(
                        "kind \"{}\" {verb} `{field}`",
                        a.kind.name()
                    )));
                }
            }
            let rule = match a.kind {
                Kind::NotNull | Kind::Unique => {
                    let columns = a.columns.expect("checked above");
                    if columns.is_empty() {
                        return Err(invalid("`columns` is empty".into()));
                    }
                    if let Some(bad) = columns.iter().find(|c| !is_identifier(c)) {
                        return Err(invalid(format!(
                            "column {bad:?} is not a lowercase snake_case name"
                        )));
                    }
                    if a.kind == Kind::NotNull {
                        Rule::NotNull(columns)
                    } else {
                        Rule::Unique(columns)
                    }
                }
                Kind::Row => Rule::Row(
                    non_empty(a.condition.expect("checked above"), "condition").map_err(invalid)?,
                ),
                Kind::Query => {
                    Rule::Query(non_empty(a.sql.expect("checked above"), "sql").map_err(invalid)?)
                }
            };
            assertions.push(Assertion {
                name: a.name,
                severity: a.severity,
                description: a.description,
                table,
                rule,
            });
        }
        if assertions.is_empty() {
            return Err(Error::Invalid {
                path: path.to_owned(),
                item: "assertion".into(),
                message: "the file defines no [[assertion]]".into(),
            });
        }
        Ok(Assertions {
            path: path.to_owned(),
            assertions,
        })
    }
}

fn non_empty(sql: String, field: &str) -> Result<String, String> {
    let trimmed = sql.trim().trim_end_matches(';').trim().to_owned();
    if trimmed.is_empty() {
        Err(format!("`{field}` is empty"))
    } else {
        Ok(trimmed)
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

impl Assertion {
    /// The query returning the rows that violate the assertion.
    pub fn violations_sql(&self) -> String {
        let table = &self.table;
        match &self.rule {
            Rule::NotNull(columns) => {
                let any_null = columns
                    .iter()
                    .map(|c| format!("{c} IS NULL"))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                format!("SELECT * FROM {table} WHERE {any_null}")
            }
            Rule::Unique(columns) => {
                let list = columns.join(", ");
                format!(
                    "SELECT {list}, count(*) AS copies FROM {table} GROUP BY {list} HAVING count(*) > 1"
                )
            }
            Rule::Row(condition) => {
                format!("SELECT * FROM {table} WHERE ({condition}) IS NOT TRUE")
            }
            Rule::Query(sql) => sql.clone(),
        }
    }
}

/// Runs every assertion against the rollups database, in file order.
///
/// A failed assertion is a [`Finding`]; an assertion that cannot run (bad
/// SQL, missing table) is an error naming it.
pub async fn check(rollups: &Client, assertions: &Assertions) -> Result<Vec<Finding>, Error> {
    let mut findings = Vec::with_capacity(assertions.assertions.len());
    for assertion in &assertions.assertions {
        let sql = format!(
            "SELECT count(*) OVER (), to_jsonb(v)::text FROM ({}) AS v LIMIT {SAMPLE_ROWS}",
            assertion.violations_sql()
        );
        let rows = rollups.query(&sql, &[]).await.map_err(Error::db(format!(
            "running assertion {} of {}",
            assertion.name,
            assertions.path.display()
        )))?;
        let violations = rows.first().map_or(0, |row| row.get::<_, i64>(0));
        let sample = rows.iter().map(|row| row.get::<_, String>(1)).collect();
        if violations > 0 {
            tracing::warn!(assertion = %assertion.name, severity = ?assertion.severity, violations, "data-quality assertion violated");
        }
        findings.push(Finding {
            assertion: assertion.name.clone(),
            severity: assertion.severity,
            description: assertion.description.clone(),
            violations,
            sample,
        });
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Assertions, Error> {
        Assertions::parse(text, Path::new("analytics/tests/hourly_rollup.toml"))
    }

    #[test]
    fn the_shipped_assertions_parse() {
        let assertions =
            parse(include_str!("../../../analytics/tests/hourly_rollup.toml")).unwrap();
        let names: Vec<&str> = assertions
            .assertions
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        for expected in [
            "keys_and_measures_not_null",
            "hourly_buckets_unique",
            "error_ratio_within_bounds",
            "daily_counts_and_token_sums_match_hourly",
            "no_quarantined_events",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(
            assertions
                .assertions
                .iter()
                .any(|a| a.severity == Severity::Warning)
        );
    }

    #[test]
    fn rules_become_queries_for_violating_rows() {
        let assertions = parse(
            "table = \"analytics.t\"\n\
             [[assertion]]\nname = \"a\"\nkind = \"unique\"\nseverity = \"error\"\ndescription = \"d\"\ncolumns = [\"x\", \"y\"]\n\
             [[assertion]]\nname = \"b\"\nkind = \"row\"\nseverity = \"warning\"\ndescription = \"d\"\ncondition = \"x > 0\"\n",
        )
        .unwrap();
        assert_eq!(
            assertions.assertions[0].violations_sql(),
            "SELECT x, y, count(*) AS copies FROM analytics.t GROUP BY x, y HAVING count(*) > 1"
        );
        assert_eq!(
            assertions.assertions[1].violations_sql(),
            "SELECT * FROM analytics.t WHERE (x > 0) IS NOT TRUE"
        );
    }

    #[test]
    fn mistakes_name_the_file_and_the_assertion() {
        let check = |text: &str, expected: &str| {
            let message = parse(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(
                message.starts_with("invalid analytics/tests/hourly_rollup.toml: "),
                "{message}"
            );
        };
        check(
            "[[assertion]]\nname = \"a\"\nkind = \"row\"\nseverity = \"error\"\ndescription = \"d\"\ncondition = \"x\"\n",
            "assertion 1 (a): no table",
        );
        check(
            "table = \"analytics.t\"\n[[assertion]]\nname = \"a\"\nkind = \"row\"\nseverity = \"error\"\ndescription = \"d\"\ncolumns = [\"x\"]\n",
            "assertion 1 (a): kind \"row\" does not take `columns`",
        );
        check(
            "table = \"analytics.t\"\n[[assertion]]\nname = \"a\"\nkind = \"unique\"\nseverity = \"error\"\ndescription = \"d\"\ncolumns = [\"x; DROP\"]\n",
            "column \"x; DROP\" is not a lowercase snake_case name",
        );
        check(
            "table = \"analytics.t\"\n[[assertion]]\nname = \"a\"\nkind = \"row\"\nseverity = \"fatal\"\ndescription = \"d\"\ncondition = \"x\"\n",
            "line 5",
        );
        check(
            "table = \"analytics.t\"\n[[assertion]]\nname = \"a\"\nkind = \"row\"\nseverity = \"error\"\ndescription = \"d\"\ncondition = \"x\"\n\
             [[assertion]]\nname = \"a\"\nkind = \"row\"\nseverity = \"error\"\ndescription = \"d\"\ncondition = \"y\"\n",
            "assertion 2 (a): the name is used by an earlier assertion",
        );
    }
}
