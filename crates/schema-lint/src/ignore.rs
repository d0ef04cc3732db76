//! `-- dbops-lint: ignore RULE_ID reason` comments: parsing, matching findings, reporting useless ones.
//!
//! A directive applies to the statement it precedes (on the lines just
//! before it, or after it on the same line as its end). A directive at the
//! top of the file, separated from the first statement by a blank line,
//! applies to the whole file.

use std::cell::Cell;

use crate::model::FileSpan;
use crate::rules::{At, Finding, Findings, IGNORE_WITHOUT_REASON, UNUSED_IGNORE};
use crate::source::Source;

const PREFIX: &str = "dbops-lint:";

/// One ignore directive.
#[derive(Debug)]
pub(crate) struct Directive {
    rule: String,
    has_reason: bool,
    /// `None` for a file-level directive, else the statement number it covers.
    statement: Option<usize>,
    span: FileSpan,
    used: Cell<bool>,
}

/// The directives of one file and the statements they can cover.
#[derive(Debug)]
pub(crate) struct FileIgnores {
    directives: Vec<Directive>,
    statements: Vec<(u32, u32)>,
}

/// A directive that could not be understood.
#[derive(Debug)]
pub(crate) struct Malformed {
    pub(crate) span: FileSpan,
    pub(crate) problem: String,
}

impl FileIgnores {
    pub(crate) fn parse(
        file: usize,
        source: &Source,
        malformed: &mut Vec<Malformed>,
    ) -> FileIgnores {
        let statements = source.statement_ranges().to_vec();
        let mut directives = Vec::new();
        for (text, start, end) in source.comments() {
            let Some(body) = text
                .strip_prefix("--")
                .map(str::trim)
                .and_then(|b| b.strip_prefix(PREFIX))
            else {
                continue;
            };
            let span = FileSpan { file, start, end };
            let mut words = body.split_whitespace();
            let (Some("ignore"), Some(rule)) = (words.next(), words.next()) else {
                malformed.push(Malformed {
                    span,
                    problem: "an ignore comment reads `-- dbops-lint: ignore RULE_ID reason`"
                        .to_owned(),
                });
                continue;
            };
            let has_reason = words.next().is_some();
            let statement = Self::covered_statement(source, &statements, start);
            directives.push(Directive {
                rule: rule.to_owned(),
                has_reason,
                statement,
                span,
                used: Cell::new(false),
            });
        }
        FileIgnores {
            directives,
            statements,
        }
    }

    /// The statement a directive starting at `offset` covers, or `None` for a file-level one.
    fn covered_statement(source: &Source, statements: &[(u32, u32)], offset: u32) -> Option<usize> {
        // After a statement's end, on the same line: that statement.
        if let Some(i) = statements.iter().rposition(|&(_, end)| end <= offset)
            && source.line_of(statements[i].1.saturating_sub(1)) == source.line_of(offset)
        {
            return Some(i);
        }
        // Between the lines of a statement: that statement.
        if let Some(i) = statements
            .iter()
            .position(|&(start, end)| start <= offset && offset < end)
        {
            return Some(i);
        }
        match statements.iter().position(|&(start, _)| start > offset) {
            None if statements.is_empty() => None,
            Some(0) if source.blank_line_between(offset, statements[0].0) => None,
            Some(i) => Some(i),
            // After the last statement: it covers nothing.
            None => Some(statements.len()),
        }
    }

    fn statement_of(&self, offset: u32) -> Option<usize> {
        self.statements
            .iter()
            .position(|&(start, end)| start <= offset && offset < end)
    }

    /// Whether a directive suppresses the finding; marks the directive used.
    pub(crate) fn suppresses(&self, finding: &Finding) -> bool {
        let statement = match &finding.at {
            At::Span(span) => self.statement_of(span.start),
            At::File(_) => None,
            At::Path(_) | At::Object(_) => return false,
        };
        let mut suppressed = false;
        for directive in self.directives.iter().filter(|d| d.rule == finding.rule.id) {
            let applies = match directive.statement {
                None => true,
                Some(covered) => statement == Some(covered),
            };
            if applies {
                directive.used.set(true);
                suppressed = true;
            }
        }
        suppressed
    }

    /// Reports directives without a reason, and directives that suppressed nothing.
    pub(crate) fn report(&self, out: &mut Findings) {
        for directive in &self.directives {
            let at = At::Span(directive.span);
            if crate::rules::find(&directive.rule).is_none() {
                out.report(
                    &UNUSED_IGNORE,
                    at.clone(),
                    format!("unknown rule `{}`", directive.rule),
                )
                .help("rule IDs are listed in docs/lint.md and by `dbops lint --format json`");
            } else if !directive.used.get() {
                out.report(
                    &UNUSED_IGNORE,
                    at.clone(),
                    format!("this ignore of `{}` suppresses nothing", directive.rule),
                )
                .help(
                    "remove it, or move it to the line just before the statement it is meant for",
                );
            }
            if !directive.has_reason {
                out.report(
                    &IGNORE_WITHOUT_REASON,
                    at,
                    format!("the ignore of `{}` gives no reason", directive.rule),
                )
                .help("say why the finding does not apply: `-- dbops-lint: ignore RULE_ID reason`");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::{check, check_files};

    const ALTER: &str = "ALTER TABLE users DROP COLUMN nickname;";

    #[test]
    fn statement_ignore_suppresses_its_statement_only() {
        let sql = format!(
            "-- dbops-lint: ignore drop-column nothing reads it since release 41\n{ALTER}\nALTER TABLE teams DROP COLUMN motto;"
        );
        check(
            "drop-column",
            &sql,
            expect_test::expect![[r#"
            error[drop-column]: Dropping a column may break existing clients.
              --> 202601010000_a.up.sql:3:19
               |
             3 | ALTER TABLE teams DROP COLUMN motto;
               |                   ^^^^^^^^^^^^^^^^^
        "#]],
        );
        let trailing = format!("{ALTER} -- dbops-lint: ignore drop-column unused since release 41");
        check("drop-column", &trailing, expect_test::expect![""]);
    }

    #[test]
    fn file_ignore_needs_a_blank_line_before_the_first_statement() {
        let sql = format!(
            "-- dbops-lint: ignore drop-column cleanup migration\n\n{ALTER}\nALTER TABLE teams DROP COLUMN motto;"
        );
        check("drop-column", &sql, expect_test::expect![""]);
        check("unused-ignore", &sql, expect_test::expect![""]);
    }

    #[test]
    fn useless_ignores_are_reported() {
        let sql = format!(
            "-- dbops-lint: ignore drop-column\n{ALTER}\n-- dbops-lint: ignore drop-table the table is gone already\nSELECT 1;\n-- dbops-lint: ignore no-such-rule because\nSELECT 2;\n-- dbops-lint: skip drop-column\nSELECT 3;"
        );
        let files = [
            ("202601010000_a.up.sql", sql.as_str()),
            ("202601010000_a.down.sql", ""),
        ];
        check_files(
            "ignore-without-reason",
            &files,
            expect_test::expect![[r#"
            error[ignore-without-reason]: the ignore of `drop-column` gives no reason
              --> 202601010000_a.up.sql:1:1
               |
             1 | -- dbops-lint: ignore drop-column
               | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = help: say why the finding does not apply: `-- dbops-lint: ignore RULE_ID reason`
        "#]],
        );
        check_files(
            "unused-ignore",
            &files,
            expect_test::expect![[r#"
            error[unused-ignore]: this ignore of `drop-table` suppresses nothing
              --> 202601010000_a.up.sql:3:1
               |
             3 | -- dbops-lint: ignore drop-table the table is gone already
               | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = help: remove it, or move it to the line just before the statement it is meant for
            error[unused-ignore]: unknown rule `no-such-rule`
              --> 202601010000_a.up.sql:5:1
               |
             5 | -- dbops-lint: ignore no-such-rule because
               | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
               = help: rule IDs are listed in docs/lint.md and by `dbops lint --format json`
            error[unused-ignore]: an ignore comment reads `-- dbops-lint: ignore RULE_ID reason`
              --> 202601010000_a.up.sql:7:1
               |
             7 | -- dbops-lint: skip drop-column
               | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        "#]],
        );
        check_files("drop-column", &files, expect_test::expect![""]);
    }
}
