//! Splitting a script into statements, for migrations that run outside a transaction.
//!
//! PostgreSQL runs a multi-statement simple query in one implicit transaction,
//! which `CREATE INDEX CONCURRENTLY` refuses. Non-transactional scripts are
//! therefore sent one statement at a time. The script is cut into tokens by
//! squawk's lexer, the one under the parser that schema-lint reads migrations
//! with, so that the linter and the engine agree on where strings, quoted
//! identifiers, dollar-quoted bodies and comments begin and end; a `;` ends a
//! statement only where it is a token of its own, outside parentheses and
//! outside a `BEGIN ATOMIC ... END` function body, as in psql.

use squawk_lexer::TokenKind;

/// One statement and the byte offset in the script where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement's text, without the terminating `;`.
    pub text: &'a str,
    /// Byte offset of `text` in the script.
    pub offset: usize,
}

/// Splits `sql` into statements, dropping ones that are only whitespace and comments.
pub fn split_statements(sql: &str) -> Vec<Statement<'_>> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    let mut nesting = Nesting::default();
    let mut offset = 0;
    for token in squawk_lexer::tokenize(sql) {
        let end = offset + token.len as usize;
        match token.kind {
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment { .. } => {}
            TokenKind::Semi if nesting.is_top_level() => {
                if has_code {
                    statements.push(statement(sql, start, offset));
                }
                start = end;
                has_code = false;
                nesting = Nesting::default();
            }
            kind => {
                has_code = true;
                nesting.see(kind, &sql[offset..end]);
            }
        }
        offset = end;
    }
    if has_code {
        statements.push(statement(sql, start, sql.len()));
    }
    statements
}

/// The byte offset of `statement`'s first word: past the whitespace and
/// comments before it (0 when there is none).
pub(crate) fn code_start(statement: &str) -> usize {
    let mut offset = 0;
    for token in squawk_lexer::tokenize(statement) {
        match token.kind {
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment { .. } => {
                offset += token.len as usize;
            }
            _ => return offset,
        }
    }
    0
}

/// The statement in `sql[start..end]`, without surrounding whitespace.
fn statement(sql: &str, start: usize, end: usize) -> Statement<'_> {
    let text = &sql[start..end];
    let leading = text.len() - text.trim_start().len();
    Statement {
        text: text.trim(),
        offset: start + leading,
    }
}

/// What a `;` may be nested in, psql's way (`psqlscan.l`): parentheses, such
/// as the actions of `CREATE RULE ... DO (INSERT ...; INSERT ...)`, and the
/// SQL-standard body of a function or procedure, `BEGIN ATOMIC ... END`,
/// whose statements end in `;` too.
///
/// Telling a body's `END` from the `END` of a `CASE` inside it needs a parser;
/// psql's heuristic does without one, and so does this: within a statement
/// that starts `CREATE [OR REPLACE] FUNCTION` or `PROCEDURE`, outside
/// parentheses, `BEGIN ATOMIC` opens a block, `CASE` within a block opens
/// another and `END` closes one. psql counts any `BEGIN`; requiring `ATOMIC`
/// after it keeps a column named `begin` from opening a block.
#[derive(Debug, Default)]
struct Nesting {
    head: Head,
    parens: usize,
    blocks: usize,
    after_begin: bool,
}

impl Nesting {
    fn is_top_level(&self) -> bool {
        self.parens == 0 && self.blocks == 0
    }

    /// Takes in the next token that is not whitespace or a comment.
    fn see(&mut self, kind: TokenKind, text: &str) {
        let after_begin = std::mem::take(&mut self.after_begin);
        match kind {
            TokenKind::OpenParen => self.parens += 1,
            TokenKind::CloseParen => self.parens = self.parens.saturating_sub(1),
            TokenKind::Ident => {
                self.head = self.head.next(text);
                if self.head != Head::Routine || self.parens > 0 {
                    return;
                }
                let is = |keyword: &str| text.eq_ignore_ascii_case(keyword);
                let opens_body = is("atomic") && after_begin;
                let opens_case = is("case") && self.blocks > 0;
                if is("begin") {
                    self.after_begin = true;
                } else if opens_body || opens_case {
                    self.blocks += 1;
                } else if is("end") {
                    self.blocks = self.blocks.saturating_sub(1);
                }
            }
            _ => {}
        }
    }
}

/// How far the words of a statement match `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Head {
    #[default]
    Start,
    Create,
    CreateOr,
    CreateOrReplace,
    /// The statement creates a function or a procedure.
    Routine,
    /// The statement creates something else, or is not a `CREATE`.
    Other,
}

impl Head {
    fn next(self, word: &str) -> Head {
        let is = |keyword: &str| word.eq_ignore_ascii_case(keyword);
        match self {
            Head::Start if is("create") => Head::Create,
            Head::Create if is("or") => Head::CreateOr,
            Head::CreateOr if is("replace") => Head::CreateOrReplace,
            Head::Create | Head::CreateOrReplace if is("function") || is("procedure") => {
                Head::Routine
            }
            Head::Routine => Head::Routine,
            _ => Head::Other,
        }
    }
}

/// Statements at least this long are bulk data to [`without_bulk_rows`].
const BULK: usize = 64 * 1024;

/// `sql` as the linter and the hooks need to read it: the same statements,
/// but a large `INSERT ... VALUES` (64 KiB or more) keeps only its first row.
/// What follows that row up to the statement's end is dropped except for its
/// line breaks, so that every line number stays true. No check reads the
/// rows of a bulk insert, and a parser's tree of 50 MB of them would take
/// many times that in memory. Small scripts are returned as they are.
pub fn without_bulk_rows(sql: &str) -> std::borrow::Cow<'_, str> {
    if sql.len() < BULK {
        return std::borrow::Cow::Borrowed(sql);
    }
    let mut lean = String::new();
    let mut copied = 0;
    for statement in split_statements(sql) {
        if statement.text.len() < BULK {
            continue;
        }
        let Some(first_row) = first_row_end(statement.text) else {
            continue;
        };
        let from = statement.offset + first_row;
        let to = statement.offset + statement.text.len();
        lean.push_str(&sql[copied..from]);
        let line_breaks = sql[from..to].bytes().filter(|&b| b == b'\n').count();
        lean.extend(std::iter::repeat_n('\n', line_breaks));
        copied = to;
    }
    if copied == 0 {
        return std::borrow::Cow::Borrowed(sql);
    }
    lean.push_str(&sql[copied..]);
    std::borrow::Cow::Owned(lean)
}

/// Where the first row of `INSERT ... VALUES (...), ...` ends, when
/// `statement` is such an insert.
fn first_row_end(statement: &str) -> Option<usize> {
    let mut offset = 0;
    let mut depth = 0usize;
    let mut words = 0;
    let mut after_values = false;
    for token in squawk_lexer::tokenize(statement) {
        let end = offset + token.len as usize;
        match token.kind {
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment { .. } => {}
            TokenKind::Ident => {
                let word = &statement[offset..end];
                if words == 0 && !word.eq_ignore_ascii_case("insert") {
                    return None;
                }
                words += 1;
                if depth == 0 && word.eq_ignore_ascii_case("values") {
                    after_values = true;
                }
            }
            TokenKind::OpenParen => depth += 1,
            TokenKind::CloseParen => {
                depth = depth.checked_sub(1)?;
                if depth == 0 && after_values {
                    return Some(end);
                }
            }
            _ if words == 0 => return None,
            _ => {}
        }
        offset = end;
    }
    None
}

/// The 1-based line and column of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_insert_keeps_its_first_row_and_its_line_breaks() {
        let rows: Vec<String> = (0..5000).map(|i| format!("({i}, 'row;{i}')")).collect();
        let sql = format!(
            "CREATE TABLE t (id int, v text);\nINSERT INTO t VALUES\n{};\nCREATE INDEX t_id ON t (id);\n",
            rows.join(",\n")
        );
        let lean = without_bulk_rows(&sql);
        assert!(lean.len() < 12_000, "{}", lean.len());
        assert!(
            lean.starts_with(
                "CREATE TABLE t (id int, v text);\nINSERT INTO t VALUES\n(0, 'row;0')\n"
            )
        );
        assert!(
            lean.ends_with(";\nCREATE INDEX t_id ON t (id);\n"),
            "{lean}"
        );
        assert_eq!(
            lean.lines().count(),
            sql.lines().count(),
            "line numbers stay true"
        );
        let small = "INSERT INTO t VALUES (1), (2);";
        assert!(matches!(
            without_bulk_rows(small),
            std::borrow::Cow::Borrowed(_)
        ));
        // Large statements that are not a VALUES insert are kept whole.
        let select = format!("SELECT {};", vec!["1"; 40_000].join(", "));
        assert_eq!(without_bulk_rows(&select), select);
    }

    fn check(sql: &str, expected: &[&str]) {
        let got: Vec<&str> = split_statements(sql).into_iter().map(|s| s.text).collect();
        assert_eq!(got, expected, "splitting {sql:?}");
    }

    #[test]
    fn splits_on_code_semicolons_only() {
        check("SELECT 1; SELECT 2", &["SELECT 1", "SELECT 2"]);
        check(
            "SELECT ';'; SELECT 'it''s;'",
            &["SELECT ';'", "SELECT 'it''s;'"],
        );
        check("SELECT E'\\';'; SELECT 2", &["SELECT E'\\';'", "SELECT 2"]);
        check("SELECT e'\\\\'; SELECT 2", &["SELECT e'\\\\'", "SELECT 2"]);
        check("SELECT \"a;b\" FROM t;", &["SELECT \"a;b\" FROM t"]);
        check("SELECT \"a\"\";b\";", &["SELECT \"a\"\";b\""]);
        check(
            "-- a; comment\nSELECT 1; /* x; /* nested; */ y; */ SELECT 2;",
            &[
                "-- a; comment\nSELECT 1",
                "/* x; /* nested; */ y; */ SELECT 2",
            ],
        );
        check(
            "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql; SELECT $$;$$;",
            &[
                "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql",
                "SELECT $$;$$",
            ],
        );
        check(
            "SELECT $a$ $b$; $a$; SELECT 2",
            &["SELECT $a$ $b$; $a$", "SELECT 2"],
        );
        check(
            "PREPARE p AS SELECT $1; EXECUTE p(1);",
            &["PREPARE p AS SELECT $1", "EXECUTE p(1)"],
        );
        check("-- dbops:no-transaction\n-- only comments;\n", &[]);
        check(";;  ; /* unterminated; ", &[]);
    }

    #[test]
    fn a_dollar_inside_an_identifier_opens_no_quote() {
        check(
            "SELECT a$b$ FROM t; SELECT '$b$'",
            &["SELECT a$b$ FROM t", "SELECT '$b$'"],
        );
    }

    #[test]
    fn semicolons_in_parentheses_stay_in_the_statement() {
        check(
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1",
            &[
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))",
                "SELECT 1",
            ],
        );
    }

    #[test]
    fn sql_standard_function_bodies_are_one_statement() {
        let function = "CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT x;\nEND";
        check(
            &format!("{function};\nSELECT f(1);"),
            &[function, "SELECT f(1)"],
        );
        let procedure = "create procedure p() begin atomic insert into t values (1); end";
        check(&format!("{procedure}; select 1"), &[procedure, "select 1"]);
    }

    #[test]
    fn begin_outside_a_function_body_is_a_statement() {
        check(
            "BEGIN; SELECT CASE WHEN true THEN 1 END; END;",
            &["BEGIN", "SELECT CASE WHEN true THEN 1 END", "END"],
        );
        check(
            "CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql; BEGIN; COMMIT",
            &[
                "CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
                "BEGIN",
                "COMMIT",
            ],
        );
        check(
            "CREATE TABLE begin_atomic (begin int); SELECT 1",
            &["CREATE TABLE begin_atomic (begin int)", "SELECT 1"],
        );
    }

    #[test]
    fn offsets_point_at_the_statement() {
        let sql = "-- header\nSELECT 1;\n\n  SELECT 2;";
        let statements = split_statements(sql);
        assert_eq!(line_column(sql, statements[1].offset), (4, 3));
        let sql = "SELECT 'é';\n SELECT 2";
        let offsets: Vec<usize> = split_statements(sql).iter().map(|s| s.offset).collect();
        assert_eq!(offsets, [0, 14]);
    }
}
