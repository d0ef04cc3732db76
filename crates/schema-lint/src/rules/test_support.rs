//! The one helper every rule test goes through: lint some files, keep one rule's findings, compare the rendered report.

use std::path::PathBuf;

use expect_test::Expect;
use time::macros::datetime;

use crate::config::Config;

/// "Now" in tests, so that version checks do not depend on the clock.
pub(crate) const NOW: time::OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

/// Lints one up migration (with a down file, so it is complete) and compares `rule`'s findings.
pub(crate) fn check(rule: &str, sql: &str, expected: Expect) {
    check_files_with(
        &Config::default(),
        rule,
        &[
            ("202601010000_a.up.sql", sql),
            ("202601010000_a.down.sql", "SELECT 1;"),
        ],
        expected,
    );
}

/// Lints several files of one directory and compares `rule`'s findings.
pub(crate) fn check_files(rule: &str, files: &[(&str, &str)], expected: Expect) {
    check_files_with(&Config::default(), rule, files, expected);
}

/// [`check_files`] with a config.
pub(crate) fn check_files_with(
    config: &Config,
    rule: &str,
    files: &[(&str, &str)],
    expected: Expect,
) {
    assert!(crate::rules::find(rule).is_some(), "unknown rule {rule}");
    let sources = files
        .iter()
        .map(|(name, sql)| (PathBuf::from(name), (*sql).to_owned()))
        .collect();
    let violations = crate::engine::lint_sources(sources, config, NOW);
    expected.assert_eq(&render(rule, &violations));
}

/// Replays `sql` into a model and lints it as if it were the live database.
pub(crate) fn check_live_with(
    config: &Config,
    rule: &str,
    sql: &str,
    input: LiveExtras<'_>,
    expected: Expect,
) {
    let parse = squawk_syntax::SourceFile::parse(sql);
    let (schema, _) = crate::model::replay([(0, &parse)], &config.ignored_schemas);
    let live = crate::LiveInput {
        schema: &schema,
        history: input.history,
        pending: input.pending,
    };
    let violations = crate::engine::lint_live(&live, config, NOW);
    expected.assert_eq(&render(rule, &violations));
}

/// History and pending migrations for [`check_live_with`].
#[derive(Debug, Default)]
pub(crate) struct LiveExtras<'a> {
    pub(crate) history: &'a [crate::AppliedMigration],
    pub(crate) pending: &'a [crate::PendingMigration],
}

fn render(rule: &str, violations: &[crate::Violation]) -> String {
    let kept: Vec<_> = violations
        .iter()
        .filter(|v| v.rule == rule)
        .cloned()
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    let report = crate::render::human(&kept);
    // Drop the count line: the findings are the point.
    let body = report
        .trim_end()
        .rsplit_once('\n')
        .map_or("", |(body, _)| body);
    format!("{body}\n")
}

/// A classification map for tests.
pub(crate) fn config_with_classification(toml: &str) -> Config {
    let map = catalog::classification::ClassificationMap::parse(
        toml,
        "data-classification.toml".as_ref(),
    )
    .expect("test classification map parses");
    Config {
        classification: Some(map),
        ..Config::default()
    }
}
