//! Migration files as the linter sees them: name, text, line index and parse tree.

use std::path::{Path, PathBuf};

use migrate_core::source::{Direction, FileName, NO_TRANSACTION_DIRECTIVE};
use squawk_syntax::ast::AstNode;
use squawk_syntax::{Parse, SourceFile as SqlFile, SyntaxKind};

use crate::violation::{Excerpt, Position};

/// A syntax error in a file, as squawk's parser reports it.
#[derive(Debug, Clone)]
pub(crate) struct ParseError {
    /// Byte offsets of the erroneous text.
    pub(crate) start: u32,
    pub(crate) end: u32,
    pub(crate) message: String,
}

/// One SQL file, parsed.
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
    /// The file's name as the migration engine reads it, or why the engine
    /// would refuse it.
    pub(crate) name: Result<FileName, String>,
    pub(crate) parse: Parse<SqlFile>,
    /// The parser's and squawk's validation errors. Validating walks the
    /// whole tree, so it is done here, where files are read in parallel,
    /// rather than by the `syntax-error` rule, which runs once per folder.
    pub(crate) syntax_errors: Vec<ParseError>,
    lines: LineIndex,
    statements: std::sync::OnceLock<Vec<(u32, u32)>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Reads a file. Its text is kept as the linter reads it: a bulk
    /// `INSERT` keeps its first row (`migrate_core::split::without_bulk_rows`).
    pub(crate) fn new(path: PathBuf, text: String) -> Source {
        let text = match migrate_core::split::without_bulk_rows(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(lean) => lean,
        };
        let name = FileName::parse(&path).map_err(|error| match error {
            migrate_core::Error::BadFileName { reason, .. } => reason,
            other => other.to_string(),
        });
        let parse = SqlFile::parse(&text);
        let syntax_errors = parse
            .errors()
            .into_iter()
            .map(|error| ParseError {
                start: error.range().start().into(),
                end: error.range().end().into(),
                message: error.message().to_owned(),
            })
            .collect();
        let lines = LineIndex::new(&text);
        Source {
            path,
            text,
            name,
            parse,
            syntax_errors,
            lines,
            statements: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn file_name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// Whether this is the up half of a migration, or a SQL file that is not named as a migration at all.
    /// Down files undo their up file by dropping what it created, so the
    /// lock-safety rules do not apply to them.
    pub(crate) fn is_forward(&self) -> bool {
        !matches!(&self.name, Ok(name) if name.direction == Direction::Down)
    }

    /// Whether the migration engine runs this file inside a transaction.
    pub(crate) fn runs_in_transaction(&self) -> bool {
        self.text
            .lines()
            .next()
            .is_none_or(|first| first.trim_end() != NO_TRANSACTION_DIRECTIVE)
    }

    /// Byte ranges of the top-level statements, from their first non-trivia token to their end.
    pub(crate) fn statement_ranges(&self) -> &[(u32, u32)] {
        self.statements
            .get_or_init(|| self.compute_statement_ranges())
    }

    fn compute_statement_ranges(&self) -> Vec<(u32, u32)> {
        self.parse
            .tree()
            .stmts()
            .map(|stmt| {
                let node = stmt.syntax();
                let start = node
                    .children_with_tokens()
                    .find(|child| !child.kind().is_trivia())
                    .map_or(node.text_range().start(), |child| {
                        child.text_range().start()
                    });
                (u32::from(start), u32::from(node.text_range().end()))
            })
            .collect()
    }

    pub(crate) fn position(&self, offset: u32) -> Position {
        self.lines.position(&self.text, offset)
    }

    /// The whole lines that hold `start..end`.
    pub(crate) fn excerpt(&self, start: u32, end: u32) -> Excerpt {
        let first = self.lines.line_of(start);
        let last = self.lines.line_of(end.saturating_sub(1).max(start));
        let lines = (first..=last)
            .map(|line| self.lines.line_text(&self.text, line).to_owned())
            .collect();
        Excerpt {
            first_line: first + 1,
            lines,
        }
    }

    /// Comments of the file with their byte ranges.
    pub(crate) fn comments(&self) -> Vec<(String, u32, u32)> {
        self.parse
            .syntax_node()
            .descendants_with_tokens()
            .filter_map(|element| element.into_token())
            .filter(|token| token.kind() == SyntaxKind::COMMENT)
            .map(|token| {
                let range = token.text_range();
                (
                    token.text().to_owned(),
                    u32::from(range.start()),
                    u32::from(range.end()),
                )
            })
            .collect()
    }

    /// Whether a blank line separates the two offsets.
    pub(crate) fn blank_line_between(&self, from: u32, to: u32) -> bool {
        let between = &self.text[from as usize..to as usize];
        between
            .split('\n')
            .skip(1)
            .collect::<Vec<_>>()
            .split_last()
            .is_some_and(|(_, middle)| middle.iter().any(|line| line.trim().is_empty()))
    }

    pub(crate) fn line_of(&self, offset: u32) -> u32 {
        self.lines.line_of(offset)
    }
}

/// Byte offsets of line starts, for turning offsets into line and column numbers.
#[derive(Debug)]
struct LineIndex {
    starts: Vec<u32>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i as u32 + 1));
        LineIndex { starts }
    }

    /// 0-based line of a byte offset.
    fn line_of(&self, offset: u32) -> u32 {
        (self.starts.partition_point(|&start| start <= offset) - 1) as u32
    }

    fn position(&self, text: &str, offset: u32) -> Position {
        let offset = offset.min(text.len() as u32);
        let line = self.line_of(offset);
        let start = self.starts[line as usize] as usize;
        let column = text[start..offset as usize].chars().count() as u32 + 1;
        Position {
            line: line + 1,
            column,
            offset,
        }
    }

    fn line_text<'t>(&self, text: &'t str, line: u32) -> &'t str {
        let start = self.starts[line as usize] as usize;
        let end = self
            .starts
            .get(line as usize + 1)
            .map_or(text.len(), |&next| next as usize);
        text[start..end].trim_end_matches(['\n', '\r'])
    }
}

/// The directory a file's migration set is keyed by.
pub(crate) fn set_key(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script whose `;`s are hard to tell apart: the engine's statements
    /// (migrate-core's `split_statements`) end where the parser's do.
    #[test]
    fn statements_end_where_the_engine_ends_them() {
        let text = "-- header; with a semicolon\n\
            CREATE TABLE \"a;b\" (id bigint, note text DEFAULT E'it\\'s; fine');\n\
            /* a; /* nested; */ comment; */\n\
            CREATE FUNCTION f(x int) RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN x; END $body$;\n\
            CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql\n\
            BEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT $$;$$::int;\nEND;\n\
            SELECT 1 -- trailing; comment\n";
        let source = Source::new("202601010000_a.up.sql".into(), text.to_owned());
        assert!(
            source.syntax_errors.is_empty(),
            "{:?}",
            source.syntax_errors
        );
        // The engine's statement runs from its leading comments to its last
        // token or comment; the parser's from its first token to its `;`.
        let engine: Vec<(usize, usize)> = migrate_core::split::split_statements(text)
            .iter()
            .map(|s| (s.offset, s.offset + s.text.len()))
            .collect();
        let lint = source.statement_ranges();
        assert_eq!(lint.len(), engine.len(), "{lint:?} {engine:?}");
        for (&(start, end), &(engine_start, engine_end)) in lint.iter().zip(&engine) {
            let (start, end) = (start as usize, end as usize);
            assert!(
                engine_start <= start && end <= (engine_end + 1).min(text.len()),
                "{:?} is not within {:?}",
                &text[start..end],
                &text[engine_start..engine_end]
            );
        }
    }

    #[test]
    fn positions_count_characters() {
        let source = Source::new("a.sql".into(), "SELECT 1;\n-- é\nSELECT 2;".into());
        let p = source.position(source.text.find("SELECT 2").unwrap() as u32);
        assert_eq!((p.line, p.column), (3, 1));
        let p = source.position(source.text.find('é').unwrap() as u32 + 2);
        assert_eq!((p.line, p.column), (2, 5));
    }
}
