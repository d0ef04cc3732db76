//! `syntax-error`: every file parses as PostgreSQL.

use crate::model::FileSpan;
use crate::rules::{At, Family, Findings, MigrationSet, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct SyntaxError;

static INFO: RuleInfo = RuleInfo {
    id: "syntax-error",
    family: Family::MigrationHygiene,
    severity: Severity::Error,
    summary: "Every migration file parses as PostgreSQL.",
};

impl Rule for SyntaxError {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        for (file, source) in set.sources.iter().enumerate() {
            for error in &source.syntax_errors {
                let span = FileSpan {
                    file,
                    start: error.start,
                    end: error.end,
                };
                out.report(&INFO, At::Span(span), error.message.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn reports_parse_errors_with_positions() {
        check(
            "syntax-error",
            "CREATE TABLE t (id bigint;\nSELECT 1;",
            expect_test::expect![[r#"
            error[syntax-error]: expected R_PAREN
              --> 202601010000_a.up.sql:1:26
               |
             1 | CREATE TABLE t (id bigint;
        "#]],
        );
        check(
            "syntax-error",
            "CREATE TABLE t (id bigint);",
            expect_test::expect![""],
        );
    }
}
