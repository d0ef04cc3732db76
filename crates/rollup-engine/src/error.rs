//! The one error type of the rollup engine.

use std::path::PathBuf;

/// Everything that can stop a rollup operation.
///
/// Findings of `check` and mismatches of `reconcile` are not errors: they are
/// the data those operations return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration or assertions file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A configuration or assertions file is not valid TOML of the expected shape.
    #[error("invalid {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A configuration or assertions file is well-formed but says something wrong.
    #[error("invalid {}: {item}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The setting or assertion at fault.
        item: String,
        /// What is wrong with it.
        message: String,
    },
    /// An option passed to an operation is out of range.
    #[error("invalid {option}: {message}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The requested target is not defined in the configuration.
    #[error("unknown rollup target {name:?}; {path} defines {known}")]
    UnknownTarget {
        /// The requested target.
        name: String,
        /// The configuration file.
        path: String,
        /// The targets it defines, comma-separated.
        known: String,
    },
    /// The analytics schema, or its latest migration, is missing from the
    /// rollups database.
    #[error(
        "the rollups database has no analytics schema, or not its latest version: run `dbops migrate up --target analytics` first"
    )]
    SchemaMissing,
    /// The role reading the events lacks `pg_read_all_stats` and the
    /// settings say to refuse such runs.
    #[error(
        "role {role} on the operational database lacks pg_read_all_stats, so the rollup watermark cannot see other roles' open transactions and may pass over their events: GRANT pg_read_all_stats TO {role}, or set missing_read_all_stats = \"warn\" in [engine]"
    )]
    MissingReadAllStats {
        /// The role (`current_user`).
        role: String,
    },
    /// A database statement failed.
    #[error("database error while {context}")]
    Database {
        /// What the engine was doing.
        context: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
}

impl Error {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }
}
