//! The one error type of the import.

use std::path::PathBuf;

/// Everything that stops an import. Each variant names the file, version or
/// table at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A folder could not be listed.
    #[error("cannot read folder {path}")]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file the other tool would run (or that looks like one) that dbops
    /// cannot take over.
    #[error("{path}: cannot be imported from {tool}: {reason}")]
    Unsupported {
        /// The tool.
        tool: &'static str,
        /// The file.
        path: PathBuf,
        /// Why, and what to do about it.
        reason: String,
    },
    /// A migration file that does not follow the tool's own rules.
    #[error("{path}{}: not a valid {tool} migration: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Malformed {
        /// The tool.
        tool: &'static str,
        /// The file.
        path: PathBuf,
        /// The line, 1-based, when one line is at fault.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// Two migrations of the folder share a version.
    #[error("version {version} is used twice: {first} and {second}")]
    DuplicateVersion {
        /// The version as the tool writes it.
        version: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// The folder holds no migration of the tool.
    #[error("{dir}: holds no {tool} migration")]
    NoMigrations {
        /// The tool.
        tool: &'static str,
        /// The folder.
        dir: PathBuf,
    },
    /// A file of the converted migrations exists with other contents.
    #[error(
        "{path}: exists with other contents than the import writes; an import writes only new files or files it wrote before, unchanged"
    )]
    Conflict {
        /// The file.
        path: PathBuf,
    },
    /// The tool's history table is not in the database.
    #[error("the database has no table {table}, where {tool} records what it applied")]
    NoHistoryTable {
        /// The tool.
        tool: &'static str,
        /// The table.
        table: String,
    },
    /// The tool's history records a migration that failed or stopped half-way.
    #[error(
        "{table} records {tool} migration {version} as {state}; finish or undo it with {tool} first, then import"
    )]
    Dirty {
        /// The tool.
        tool: &'static str,
        /// The table.
        table: String,
        /// The version.
        version: String,
        /// `dirty` or `failed`.
        state: &'static str,
    },
    /// The tool's history holds a value that is not one of its versions.
    #[error("{table} holds the version {value:?}, which is not a {tool} version")]
    BadHistoryValue {
        /// The tool.
        tool: &'static str,
        /// The table.
        table: String,
        /// The value.
        value: String,
    },
    /// The tool's history records a version that has no file in the folder.
    #[error(
        "{table} records {tool} migration {version} as applied, but the folder has no file for it"
    )]
    UnknownApplied {
        /// The tool.
        tool: &'static str,
        /// The table.
        table: String,
        /// The version.
        version: String,
    },
    /// The applied migrations are not the first ones of the folder.
    #[error(
        "{table} records {tool} migration {applied} as applied but not the older {missing}; dbops records a history without gaps: apply or remove {missing} with {tool} first"
    )]
    Gap {
        /// The tool.
        tool: &'static str,
        /// The table.
        table: String,
        /// The oldest migration not applied.
        missing: String,
        /// A newer migration that is applied.
        applied: String,
    },
    /// The history table named by the caller is not a table name.
    #[error(
        "{name:?} is not a table name: letters, digits and '_', optionally schema-qualified (schema.table)"
    )]
    InvalidTableName {
        /// The name given.
        name: String,
    },
    /// A query on the tool's history table failed.
    #[error("reading {table}")]
    Database {
        /// The table.
        table: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
}
