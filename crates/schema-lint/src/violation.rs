//! Findings: what a rule reports, where, and how serious it is.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How serious a finding is. The CLI fails when any [`Severity::Error`] remains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look; never fails a run.
    Warning,
    /// Must be fixed (or ignored with a reason) before the migration ships.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The rule's stable ID, the same for migration files and the live schema (see [`crate::rules()`]).
    pub rule: &'static str,
    /// Severity after `configs/lint.toml` overrides.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, when the rule knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Where it is.
    pub location: Location,
}

/// Where a finding points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// A range of a SQL file.
    Source(SourceSpan),
    /// A file as a whole (its name, a missing sibling).
    File {
        /// The file's path as given to the linter.
        path: PathBuf,
    },
    /// An object of the live database, such as `table public.users` or `column public.users.email`.
    Object {
        /// The object's kind and qualified name.
        name: String,
    },
}

impl Location {
    /// The file this location is in, if it is in one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Location::Source(span) => Some(&span.path),
            Location::File { path } => Some(path),
            Location::Object { .. } => None,
        }
    }
}

/// A range of a SQL file with its line and column numbers and the statement that contains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceSpan {
    /// The file's path as given to the linter.
    pub path: PathBuf,
    /// Where the offending text starts.
    pub start: Position,
    /// Where it ends (exclusive).
    pub end: Position,
    /// The whole lines of the statement that contains the offending text, for display.
    pub statement: Excerpt,
}

/// A position in a file: 1-based line and column (in characters) and the 0-based byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
    /// 0-based byte offset.
    pub offset: u32,
}

/// Consecutive whole lines of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Excerpt {
    /// 1-based number of the first line.
    pub first_line: u32,
    /// The lines, without their line terminators.
    pub lines: Vec<String>,
}
