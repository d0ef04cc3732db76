//! The one error type of the ClickHouse target.

use std::path::PathBuf;

/// Everything that can stop an operation on the ClickHouse target.
///
/// Messages name the server by its URL, which never carries credentials
/// ([`crate::Settings`] refuses URLs that do), and never quote a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting of the target is unusable.
    #[error("invalid ClickHouse setting {setting}: {message}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The TLS configuration for HTTPS servers could not be built.
    #[error("cannot set up TLS for ClickHouse: {0}")]
    Tls(String),
    /// A server could not be reached, or its answer could not be read.
    #[error("cannot reach ClickHouse at {node} while {context}")]
    Http {
        /// The server's URL.
        node: String,
        /// What the client was doing.
        context: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// A server answered with an error.
    #[error("ClickHouse at {node} failed while {context}: {message}")]
    Server {
        /// The server's URL.
        node: String,
        /// What the client was doing.
        context: String,
        /// ClickHouse's message.
        message: String,
    },
    /// A statement of a migration file failed on a server. The statements
    /// before it on that server stay applied (ClickHouse has no
    /// transactions); the migration is not recorded as applied there.
    #[error("{}:{line}: ClickHouse at {node} refused the statement: {message}", path.display())]
    Statement {
        /// The migration file.
        path: PathBuf,
        /// The line the statement starts on.
        line: usize,
        /// The server's URL.
        node: String,
        /// ClickHouse's message.
        message: String,
    },
    /// A migration recorded as applied on a server differs from its file.
    #[error(
        "migration {label} applied on ClickHouse at {node} has changed since (checksum {recorded} recorded, {current} now)"
    )]
    ChecksumMismatch {
        /// `VERSION_slug`.
        label: String,
        /// The server's URL.
        node: String,
        /// The checksum in the history table.
        recorded: u64,
        /// The checksum of the file.
        current: u64,
    },
    /// Another migration run of the ClickHouse target holds the lock.
    #[error(
        "another ClickHouse migration run holds the lock in PostgreSQL (session advisory lock {}, {})",
        crate::migrate::LOCK.0,
        crate::migrate::LOCK.1
    )]
    Locked,
    /// Another run of the ClickHouse target holds its lock.
    #[error(
        "another run of the ClickHouse rollup target holds its lock in PostgreSQL (session advisory lock {}, {})",
        crate::run::RUN_LOCK.0,
        crate::run::RUN_LOCK.1
    )]
    RunLocked,
    /// A recompute range that does not go forward.
    #[error("the recompute range is empty: {from} is not before {to}")]
    InvalidRange {
        /// The start of the range.
        from: time::OffsetDateTime,
        /// Its end (exclusive).
        to: time::OffsetDateTime,
    },
    /// The rollup engine failed (reading the source's clock and open
    /// transactions).
    #[error(transparent)]
    Engine(#[from] rollup_engine::Error),
    /// A statement on the PostgreSQL database that holds the lock failed.
    #[error("database error while {context}")]
    Postgres {
        /// What the runner was doing.
        context: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// A bucket to rewrite does not start on a whole UTC hour.
    #[error("bucket hour {hour_at} is not the start of a UTC hour")]
    InvalidBucket {
        /// The bucket's hour.
        hour_at: time::OffsetDateTime,
    },
    /// The migration files could not be read or are badly named.
    #[error(transparent)]
    Migrations(#[from] migrate_core::Error),
}
