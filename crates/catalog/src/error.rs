//! The error type of the `catalog` crate.

use std::path::PathBuf;

use crate::classification::SettingError;

/// Everything that can go wrong while introspecting or reading the classification map.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A catalog query failed.
    #[error("querying the system catalogs ({what})")]
    Query {
        /// Which kind of object was being read.
        what: &'static str,
        /// The database error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A catalog row held a value this crate does not understand.
    #[error("unexpected catalog value for {object}: {problem}")]
    UnexpectedCatalog {
        /// The object whose row it was.
        object: String,
        /// What was unexpected.
        problem: String,
    },
    /// A schema that is never introspected was requested.
    #[error(
        "schema `{schema}` cannot be introspected: it belongs to PostgreSQL or to dbops's own bookkeeping"
    )]
    ReservedSchema {
        /// The schema requested.
        schema: String,
    },
    /// A file could not be read.
    #[error("reading {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The classification map is not valid TOML or has unknown keys.
    #[error("{}: {source}", path.display())]
    ClassificationSyntax {
        /// The file.
        path: PathBuf,
        /// The TOML error, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A setting of the classification map is missing or invalid.
    #[error("{0}")]
    ClassificationSetting(Box<SettingError>),
}
