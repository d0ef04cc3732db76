//! Splitting a script into statements, for migrations that run outside a transaction.
//!
//! PostgreSQL runs a multi-statement simple query in one implicit transaction,
//! which `CREATE INDEX CONCURRENTLY` refuses. Non-transactional scripts are
//! therefore sent one statement at a time. This is a lexer, not a parser: it
//! only needs to know where a `;` is code and where it sits inside a string,
//! a quoted identifier, a dollar-quoted body or a comment.

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
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => i = skip_quoted(bytes, i, b'\''),
            b'"' => i = skip_quoted(bytes, i, b'"'),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' => i = skip_dollar_quoted(sql, i),
            b';' => {
                push(&mut statements, sql, start, i);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut statements, sql, start, bytes.len());
    statements
}

fn push<'a>(statements: &mut Vec<Statement<'a>>, sql: &'a str, start: usize, end: usize) {
    let text = &sql[start..end];
    if has_code(text) {
        let leading = text.len() - text.trim_start().len();
        statements.push(Statement {
            text: text.trim(),
            offset: start + leading,
        });
    }
}

/// Whether a piece of SQL holds anything but whitespace and comments.
fn has_code(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b if b.is_ascii_whitespace() => i += 1,
            _ => return true,
        }
    }
    false
}

/// Skips a quoted string or identifier starting at `start`; a doubled quote is an escaped quote.
/// Backslash escapes of `E'...'` strings are honoured too.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let escape_string = quote == b'\'' && start > 0 && matches!(bytes[start - 1], b'E' | b'e');
    let mut i = start + 1;
    while i < bytes.len() {
        if escape_string && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Skips a (possibly nested) `/* ... */` comment.
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Skips a `$tag$ ... $tag$` body starting at `start`, or just the `$` when it
/// does not open one (a positional parameter such as `$1`).
fn skip_dollar_quoted(sql: &str, start: usize) -> usize {
    let rest = &sql[start + 1..];
    let tag_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let tag_is_identifier = rest.as_bytes().first().is_none_or(|b| !b.is_ascii_digit());
    if !tag_is_identifier || rest.as_bytes().get(tag_len) != Some(&b'$') {
        return start + 1;
    }
    let delimiter = &sql[start..start + tag_len + 2];
    let body_start = start + delimiter.len();
    match sql[body_start..].find(delimiter) {
        Some(p) => body_start + p + delimiter.len(),
        None => sql.len(),
    }
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
        check("SELECT \"a;b\" FROM t;", &["SELECT \"a;b\" FROM t"]);
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
            "PREPARE p AS SELECT $1; EXECUTE p(1);",
            &["PREPARE p AS SELECT $1", "EXECUTE p(1)"],
        );
        check("-- dbops:no-transaction\n-- only comments;\n", &[]);
    }

    #[test]
    fn offsets_point_at_the_statement() {
        let sql = "-- header\nSELECT 1;\n\n  SELECT 2;";
        let statements = split_statements(sql);
        assert_eq!(line_column(sql, statements[1].offset), (4, 3));
    }
}
