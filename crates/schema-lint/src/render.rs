//! Printing findings: for people (`human`), scripts (`json`), GitHub workflow annotations (`github`) and SARIF 2.1.0 (`sarif`).

use std::fmt::Write as _;

use serde_json::json;

use crate::violation::{Location, Severity, SourceSpan, Violation};

/// Lines of a statement shown around the offending ones.
const MAX_SHOWN_LINES: usize = 6;

/// Findings as text for a terminal: each with its rule, message, `file:line:col`,
/// the statement with the offending part underlined, and a help line; then a count.
pub fn human(violations: &[Violation]) -> String {
    let mut out = String::new();
    for v in violations {
        let _ = writeln!(out, "{}[{}]: {}", v.severity, v.rule, v.message);
        // The gutter is as wide as the largest line number shown, plus one.
        let width = match &v.location {
            Location::Source(span) => gutter_width(span),
            Location::File { .. } | Location::Object { .. } => 2,
        };
        match &v.location {
            Location::Source(span) => underline(&mut out, span, width),
            Location::File { path } => {
                let _ = writeln!(out, "{:width$}--> {}", "", path.display());
            }
            Location::Object { name } => {
                let _ = writeln!(out, "{:width$}--> live database: {name}", "");
            }
        }
        if let Some(help) = &v.help {
            let _ = writeln!(out, "{:width$} = help: {help}", "");
        }
    }
    let errors = violations
        .iter()
        .filter(|v| v.severity == Severity::Error)
        .count();
    let warnings = violations.len() - errors;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let _ = writeln!(
        out,
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    );
    out
}

fn gutter_width(span: &SourceSpan) -> usize {
    let last_line = span.statement.first_line + span.statement.lines.len() as u32 - 1;
    last_line.to_string().len() + 1
}

fn underline(out: &mut String, span: &SourceSpan, width: usize) {
    let excerpt = &span.statement;
    let _ = writeln!(
        out,
        "{:width$}--> {}:{}:{}",
        "",
        span.path.display(),
        span.start.line,
        span.start.column
    );
    let _ = writeln!(out, "{:width$} |", "");
    // The statement's first line for context, then the offending lines.
    let offending = span.start.line..=span.end.line.max(span.start.line);
    let mut shown: Vec<u32> = vec![excerpt.first_line];
    shown.extend(
        offending
            .clone()
            .filter(|&l| l != excerpt.first_line)
            .take(MAX_SHOWN_LINES),
    );
    let mut previous = None;
    for line in shown {
        let Some(text) = excerpt.lines.get((line - excerpt.first_line) as usize) else {
            continue;
        };
        if previous.is_some_and(|p: u32| line > p + 1) {
            let _ = writeln!(out, "{:width$} | ...", "");
        }
        previous = Some(line);
        let _ = writeln!(out, "{line:>width$} | {text}");
        if !offending.contains(&line) {
            continue;
        }
        let chars = text.chars().count() as u32;
        let from = if line == span.start.line {
            span.start.column - 1
        } else {
            leading_spaces(text)
        };
        let to = if line == span.end.line {
            (span.end.column - 1).min(chars)
        } else {
            chars
        };
        if to > from {
            let _ = writeln!(
                out,
                "{:width$} | {}{}",
                "",
                " ".repeat(from as usize),
                "^".repeat((to - from) as usize)
            );
        }
    }
}

fn leading_spaces(text: &str) -> u32 {
    text.chars().take_while(|c| c.is_whitespace()).count() as u32
}

/// Findings as a JSON array of [`Violation`]s.
pub fn json(violations: &[Violation]) -> String {
    serde_json::to_string_pretty(violations).expect("violations serialize") + "\n"
}

/// Findings as GitHub Actions workflow commands (`::error file=...,line=...::message`),
/// which show up as annotations on the pull request.
pub fn github(violations: &[Violation]) -> String {
    let mut out = String::new();
    for v in violations {
        let command = match v.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut properties = Vec::new();
        let mut message = v.message.clone();
        match &v.location {
            Location::Source(span) => {
                properties.push(format!(
                    "file={}",
                    escape_property(&span.path.display().to_string())
                ));
                properties.push(format!("line={}", span.start.line));
                properties.push(format!("col={}", span.start.column));
                properties.push(format!("endLine={}", span.end.line));
                properties.push(format!("endColumn={}", span.end.column));
            }
            Location::File { path } => properties.push(format!(
                "file={}",
                escape_property(&path.display().to_string())
            )),
            Location::Object { name } => message = format!("{name}: {message}"),
        }
        properties.push(format!("title={}", escape_property(v.rule)));
        if let Some(help) = &v.help {
            message = format!("{message}\nhelp: {help}");
        }
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            properties.join(","),
            escape_data(&message)
        );
    }
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Findings as a SARIF 2.1.0 log, for code-scanning dashboards. Every rule
/// is described in the driver, so the log is self-contained.
pub fn sarif(violations: &[Violation]) -> String {
    let rules: Vec<&crate::RuleInfo> = crate::rules().collect();
    let level = |severity: Severity| match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let results: Vec<serde_json::Value> = violations
        .iter()
        .map(|v| {
            let rule_index = rules.iter().position(|r| r.id == v.rule);
            let text = match &v.help {
                Some(help) => format!("{} Help: {help}", v.message),
                None => v.message.clone(),
            };
            let mut result = json!({
                "ruleId": v.rule,
                "level": level(v.severity),
                "message": { "text": text },
            });
            if let Some(index) = rule_index {
                result["ruleIndex"] = json!(index);
            }
            result["locations"] = match &v.location {
                Location::Source(span) => json!([{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&span.path) },
                        "region": {
                            "startLine": span.start.line,
                            "startColumn": span.start.column,
                            "endLine": span.end.line,
                            "endColumn": span.end.column,
                        }
                    }
                }]),
                Location::File { path } => {
                    json!([{ "physicalLocation": { "artifactLocation": { "uri": uri(path) } } }])
                }
                Location::Object { name } => {
                    json!([{ "logicalLocations": [{ "fullyQualifiedName": name }] }])
                }
            };
            result
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "dbops lint",
                    "rules": rules.iter().map(|r| json!({
                        "id": r.id,
                        "shortDescription": { "text": r.summary },
                        "defaultConfiguration": { "level": level(r.severity) },
                        "properties": { "family": r.family },
                    })).collect::<Vec<_>>(),
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    serde_json::to_string_pretty(&log).expect("a SARIF log serializes") + "\n"
}

fn uri(path: &std::path::Path) -> String {
    path.display().to_string().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::rules::test_support::NOW;

    fn violations() -> Vec<crate::Violation> {
        let sql = "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY,\n    CONSTRAINT users_pkey PRIMARY KEY (id));\nCREATE INDEX users_id_idx ON users (id);\nALTER TABLE teams DROP COLUMN motto, ADD COLUMN born timestamp;";
        let sources = vec![
            (PathBuf::from("m/202601010000_a.up.sql"), sql.to_owned()),
            (PathBuf::from("m/202601010000_a.down.sql"), String::new()),
        ];
        let mut config = crate::Config::default();
        config
            .levels
            .insert("drop-column".into(), crate::Level::Warning);
        let mut found = crate::engine::lint_sources(sources, &config, NOW);
        let schema = catalog::model::Schema::default();
        let history = [crate::AppliedMigration {
            version: 202601010000,
            name: "a".into(),
            changed_since_applied: true,
            path: None,
        }];
        let live = crate::LiveInput {
            schema: &schema,
            history: &history,
            pending: &[],
        };
        found.extend(crate::engine::lint_live(&live, &config, NOW));
        found
    }

    #[test]
    fn human() {
        expect_test::expect![[r#"
            error[duplicate-index]: index `users_id_idx` (id) is redundant with `users_pkey` (id)
              --> m/202601010000_a.up.sql:3:1
               |
             3 | CREATE INDEX users_id_idx ON users (id);
               | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = help: `users_pkey` serves the same lookups: drop `users_id_idx`
            warning[drop-column]: Dropping a column may break existing clients.
              --> m/202601010000_a.up.sql:4:19
               |
             4 | ALTER TABLE teams DROP COLUMN motto, ADD COLUMN born timestamp;
               |                   ^^^^^^^^^^^^^^^^^
            error[timestamp-without-time-zone]: When Postgres stores a datetime in a `timestamp` field, Postgres drops the UTC offset. This means 2019-10-11 21:11:24+02 and 2019-10-11 21:11:24-06 will both be stored as 2019-10-11 21:11:24 in the database, even though they are eight hours apart in time.
              --> m/202601010000_a.up.sql:4:54
               |
             4 | ALTER TABLE teams DROP COLUMN motto, ADD COLUMN born timestamp;
               |                                                      ^^^^^^^^^
               = help: Use `timestamptz` instead of `timestamp` for your column type.
            error[migration-edited-after-apply]: migration 202601010000_a was edited after it was applied (its checksum differs from the history's)
              --> live database: migration 202601010000_a
               = help: restore the applied text and put the change in a new migration
            3 errors, 1 warning
        "#]].assert_eq(&super::human(&violations()));
    }

    #[test]
    fn github() {
        expect_test::expect![[r#"
            ::error file=m/202601010000_a.up.sql,line=3,col=1,endLine=3,endColumn=41,title=duplicate-index::index `users_id_idx` (id) is redundant with `users_pkey` (id)%0Ahelp: `users_pkey` serves the same lookups: drop `users_id_idx`
            ::warning file=m/202601010000_a.up.sql,line=4,col=19,endLine=4,endColumn=36,title=drop-column::Dropping a column may break existing clients.
            ::error file=m/202601010000_a.up.sql,line=4,col=54,endLine=4,endColumn=63,title=timestamp-without-time-zone::When Postgres stores a datetime in a `timestamp` field, Postgres drops the UTC offset. This means 2019-10-11 21:11:24+02 and 2019-10-11 21:11:24-06 will both be stored as 2019-10-11 21:11:24 in the database, even though they are eight hours apart in time.%0Ahelp: Use `timestamptz` instead of `timestamp` for your column type.
            ::error title=migration-edited-after-apply::migration 202601010000_a: migration 202601010000_a was edited after it was applied (its checksum differs from the history's)%0Ahelp: restore the applied text and put the change in a new migration
        "#]].assert_eq(&super::github(&violations()));
    }

    #[test]
    fn json() {
        let v = violations();
        let rendered = super::json(&v[..1]);
        expect_test::expect![[r#"
            [
              {
                "rule": "duplicate-index",
                "severity": "error",
                "message": "index `users_id_idx` (id) is redundant with `users_pkey` (id)",
                "help": "`users_pkey` serves the same lookups: drop `users_id_idx`",
                "location": {
                  "kind": "source",
                  "path": "m/202601010000_a.up.sql",
                  "start": {
                    "line": 3,
                    "column": 1,
                    "offset": 105
                  },
                  "end": {
                    "line": 3,
                    "column": 41,
                    "offset": 145
                  },
                  "statement": {
                    "first_line": 3,
                    "lines": [
                      "CREATE INDEX users_id_idx ON users (id);"
                    ]
                  }
                }
              }
            ]
        "#]]
        .assert_eq(&rendered);
    }

    #[test]
    fn sarif() {
        let log: serde_json::Value = serde_json::from_str(&super::sarif(&violations())).unwrap();
        assert_eq!(log["version"], "2.1.0");
        let rules = log["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap();
        assert_eq!(rules.len(), crate::rules().count());
        let results = log["runs"][0]["results"].as_array().unwrap();
        for result in results {
            let index = result["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[index]["id"], result["ruleId"]);
        }
        expect_test::expect![[r#"
            [
              {
                "level": "error",
                "locations": [
                  {
                    "physicalLocation": {
                      "artifactLocation": {
                        "uri": "m/202601010000_a.up.sql"
                      },
                      "region": {
                        "endColumn": 41,
                        "endLine": 3,
                        "startColumn": 1,
                        "startLine": 3
                      }
                    }
                  }
                ],
                "message": {
                  "text": "index `users_id_idx` (id) is redundant with `users_pkey` (id) Help: `users_pkey` serves the same lookups: drop `users_id_idx`"
                },
                "ruleId": "duplicate-index",
                "ruleIndex": 18
              },
              {
                "level": "warning",
                "locations": [
                  {
                    "physicalLocation": {
                      "artifactLocation": {
                        "uri": "m/202601010000_a.up.sql"
                      },
                      "region": {
                        "endColumn": 36,
                        "endLine": 4,
                        "startColumn": 19,
                        "startLine": 4
                      }
                    }
                  }
                ],
                "message": {
                  "text": "Dropping a column may break existing clients."
                },
                "ruleId": "drop-column",
                "ruleIndex": 35
              }
            ]"#]].assert_eq(&serde_json::to_string_pretty(&results[..2]).unwrap());
    }
}
