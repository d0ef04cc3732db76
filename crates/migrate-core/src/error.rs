//! The one error type of the migration engine.

use std::path::PathBuf;
use std::time::Duration;

use crate::status::{DriftedMigration, PartialMigration};

/// Everything that can stop a migration run.
///
/// Each variant names the file, version, setting or database at fault. URLs in
/// messages are always redacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A migrations folder could not be listed.
    #[error("cannot read migrations folder {path}")]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A migration file could not be read.
    #[error("cannot read migration file {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file in a migrations folder does not follow the naming scheme.
    #[error(
        "{path}: migration file names must look like YYYYMMDDHHMM_slug.up.sql or YYYYMMDDHHMM_slug.down.sql ({reason})"
    )]
    BadFileName {
        /// The file.
        path: PathBuf,
        /// What exactly is wrong with the name.
        reason: String,
    },
    /// A script has no SQL statement and does not say it is empty on purpose.
    #[error(
        "{path}: has no SQL statement; a script that is empty on purpose says so with a line `{}`",
        crate::source::EMPTY_DIRECTIVE
    )]
    EmptyScript {
        /// The file.
        path: PathBuf,
    },
    /// An up migration has no down migration beside it, or the other way round.
    #[error("{path}: has no matching {expected}")]
    MissingPair {
        /// The file that exists.
        path: PathBuf,
        /// The file name that was expected beside it.
        expected: String,
    },
    /// Two migrations share a version.
    #[error("version {version} is used twice: {first} and {second}")]
    DuplicateVersion {
        /// The version.
        version: i64,
        /// The first file with that version.
        first: PathBuf,
        /// The second file with that version.
        second: PathBuf,
    },
    /// A configuration file or setting is invalid.
    #[error("{origin}: {message}")]
    Config {
        /// The file or setting at fault.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The database server could not be reached.
    #[error("cannot reach the database at {url}")]
    Unreachable {
        /// The redacted URL.
        url: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// The server rejected the credentials.
    #[error("the database at {url} rejected the credentials of user {user:?}")]
    Authentication {
        /// The redacted URL.
        url: String,
        /// The user name that was tried.
        user: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// The connection was refused for another cause than an unreachable
    /// server or rejected credentials: TLS required by the server or not
    /// offered by it, an untrusted server certificate, a missing database,
    /// or a certificate file that cannot be used.
    #[error(transparent)]
    Connect(pgconn::Error),
    /// A pooled connection could not be obtained.
    #[error("cannot get a connection from the pool")]
    Pool {
        /// The cause.
        source: deadpool_postgres::PoolError,
    },
    /// Another runner kept the target's migration lock for longer than the wait allows.
    #[error(
        "timed out after {waited:?} waiting for the migration lock of target {target:?}; {holder}"
    )]
    LockTimeout {
        /// The target.
        target: String,
        /// How long this run waited.
        waited: Duration,
        /// Who holds the lock, as far as `pg_stat_activity` tells.
        holder: String,
    },
    /// Applied migrations differ from the files on disk.
    #[error("refusing to run: {} applied migration(s) differ from the files on disk: {}", drifted.len(), describe_list(drifted))]
    Drift {
        /// Every drifted migration.
        drifted: Vec<DriftedMigration>,
    },
    /// A non-transactional migration stopped half-way and has not been repaired.
    #[error("refusing to run: {} migration(s) are in a partial state: {}; repair them (run on, or mark applied or not applied) or roll back first", partial.len(), describe_list(partial))]
    Partial {
        /// Every unresolved partial migration.
        partial: Vec<PartialMigration>,
    },
    /// A pending migration is older than the newest applied one.
    #[error(
        "refusing to run: migration {version} ({file}) is older than the newest applied migration {newest}; allow out-of-order migrations to apply it anyway"
    )]
    OutOfOrder {
        /// The pending version.
        version: i64,
        /// Its file.
        file: PathBuf,
        /// The newest applied version.
        newest: i64,
    },
    /// A version given on the command line or by the caller is not known.
    #[error("no migration with version {version} in {dir}")]
    UnknownVersion {
        /// The version.
        version: i64,
        /// The migrations folder.
        dir: PathBuf,
    },
    /// `repair` was asked to repair a version that is not in a partial state.
    #[error("migration {version} is not in a partial state; nothing to repair")]
    NothingToRepair {
        /// The version.
        version: i64,
    },
    /// A migration's SQL failed. Migrations applied before it in the same run stay applied.
    #[error(
        "migration {version} ({file}) failed at line {line}, column {column}: {message}{}",
        applied_note(applied_before)
    )]
    MigrationFailed {
        /// The migration's version.
        version: i64,
        /// The file that failed.
        file: PathBuf,
        /// The line of the failing statement or error position, 1-based.
        line: usize,
        /// The column, 1-based.
        column: usize,
        /// The server's message, with its detail and hint.
        message: String,
        /// The SQLSTATE code, when the server sent one.
        code: Option<String>,
        /// Versions this run applied (or rolled back) before the failure.
        applied_before: Vec<i64>,
    },
    /// Any other database error, with what the engine was doing.
    #[error("database error while {context}")]
    Database {
        /// What the engine was doing.
        context: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// The plan computed under the lock is not the one that was approved or reviewed.
    #[error(
        "refusing to run: the plan is now {actual}, not the approved {expected}; review and approve the new plan"
    )]
    PlanChanged {
        /// The hash that was expected.
        expected: String,
        /// The hash of the plan as it is now.
        actual: String,
    },
    /// A hook failed to run.
    #[error("a hook failed around migration {version}")]
    Hook {
        /// The migration.
        version: i64,
        /// The hook's error.
        source: crate::hooks::HookError,
    },
    /// A hook refused to let the migration run.
    #[error("hook {hook} refused migration {version}: {finding}")]
    Refused {
        /// The migration.
        version: i64,
        /// The hook.
        hook: String,
        /// Why.
        finding: String,
    },
    /// A signature (an approval, or the actor's signature of a run) does not verify.
    #[error("the signature is refused: {reason}")]
    SignatureRejected {
        /// Why, in words: not a signature, a key not allowed, another namespace or content.
        reason: String,
    },
    /// The connection was lost during a run and could not be got back within
    /// the reconnect budget. What the run committed before is in the
    /// history; the step in flight may or may not be.
    #[error(
        "lost the connection to the database during the run of target {target:?} and could not get it back within {budget:?}: {last_error}{}",
        applied_note(applied_before)
    )]
    ConnectionLost {
        /// The target.
        target: String,
        /// The reconnect budget that ran out.
        budget: Duration,
        /// The last error, connecting or taking the lock.
        last_error: String,
        /// Versions this run completed before the connection was lost.
        applied_before: Vec<i64>,
    },
    /// A history is about to start on a database whose target schemas
    /// already hold objects built without dbops.
    #[error(
        "refusing to run: the history of target {target:?} is empty but schema(s) {} already hold {total} object(s) built without it, such as {}; adopt the database first: record the migrations it already has with a verified baseline, or import the previous tool's history",
        schemas.join(", "),
        objects.join(", ")
    )]
    NotAdopted {
        /// The target.
        target: String,
        /// The schemas looked at.
        schemas: Vec<String>,
        /// A few of the objects.
        objects: Vec<String>,
        /// How many there are.
        total: usize,
    },
    /// A baseline was asked for a target that already has a history.
    #[error(
        "refusing to baseline target {target:?}: its history already records {applied} migration(s), the newest {newest}; a baseline starts a history"
    )]
    HistoryNotEmpty {
        /// The target.
        target: String,
        /// How many rows the history has.
        applied: usize,
        /// The newest version recorded.
        newest: i64,
    },
    /// The live schema is not the one the migrations up to the baseline build.
    #[error(
        "refusing to baseline target {target:?} at {to}: the database differs from what the migrations up to {to} build in {} object(s):\n  {}\nfix the database or the migrations, or accept the differences (audited)",
        differences.len(),
        differences.join("\n  ")
    )]
    BaselineDiffers {
        /// The target.
        target: String,
        /// The version of the baseline.
        to: i64,
        /// Each differing object, described.
        differences: Vec<String>,
    },
    /// Building the expected schema in the scratch database failed.
    #[error("building the expected schema in the scratch database {database} failed")]
    Scratch {
        /// The scratch database, redacted.
        database: String,
        /// What failed there.
        source: Box<Error>,
    },
}

impl Error {
    /// Puts the versions a run completed into the failure of a later step.
    pub(crate) fn with_applied_before(mut self, completed: &[crate::CompletedStep]) -> Error {
        if let Error::MigrationFailed { applied_before, .. }
        | Error::ConnectionLost { applied_before, .. } = &mut self
        {
            *applied_before = completed.iter().map(|step| step.version).collect();
        }
        self
    }

    /// The engine's error for a failed connection: an unreachable server and
    /// rejected credentials keep their own variants.
    pub(crate) fn from_connect(error: pgconn::Error) -> Error {
        match error {
            pgconn::Error::Unreachable { target, source } => Error::Unreachable {
                url: target,
                source,
            },
            pgconn::Error::BadCredentials {
                target,
                user,
                source,
            } => Error::Authentication {
                url: target,
                user,
                source,
            },
            other => Error::Connect(other),
        }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::database(context, source)
    }

    /// The error of one of dbops's own statements. A statement dbops
    /// prepared that the server no longer knows means the connection was
    /// handed another server session, which only a pooler in transaction or
    /// statement mode does: the session check's refusal, whatever stage it
    /// happens at (the check itself can be passed by luck when the pooler
    /// hands the same session back several times in a row).
    pub(crate) fn database(context: impl Into<String>, source: tokio_postgres::Error) -> Error {
        let context = context.into();
        if source.code() == Some(&tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME) {
            return Error::Connect(pgconn::Error::SessionNotKept {
                evidence: format!(
                    "a statement it had prepared was gone from the server session while {context}"
                ),
            });
        }
        Error::Database { context, source }
    }
}

fn describe_list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How many of a run's completed versions an error lists by number; a
/// longer run is given as its count and its first and last version (the
/// history and the log have each one).
const LISTED_VERSIONS: usize = 5;

fn applied_note(applied_before: &[i64]) -> String {
    match applied_before {
        [] => String::new(),
        [first, .., last] if applied_before.len() > LISTED_VERSIONS => format!(
            " (this run completed {} before it, from {first} to {last})",
            applied_before.len()
        ),
        versions => {
            let versions: Vec<String> = versions.iter().map(i64::to_string).collect();
            format!(
                " (this run completed {} before it: {})",
                versions.len(),
                versions.join(", ")
            )
        }
    }
}

/// An error and its causes on one line, `: `-separated, as log lines want them.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_before_a_failure_is_given_by_its_ends() {
        assert_eq!(applied_note(&[]), "");
        assert_eq!(
            applied_note(&[1, 2, 3, 4, 5]),
            " (this run completed 5 before it: 1, 2, 3, 4, 5)"
        );
        let long: Vec<i64> = (200001010000..200001010247).collect();
        assert_eq!(
            applied_note(&long),
            " (this run completed 247 before it, from 200001010000 to 200001010246)"
        );
    }

    /// A prepared statement the server session no longer knows (here
    /// deallocated by hand, through a pooler because another session ran
    /// it) is the pooling refusal, not a plain database error.
    #[tokio::test]
    async fn a_lost_prepared_statement_is_the_pooling_refusal() {
        let db = testdb::TestDb::new().await;
        let client = db.connect().await;
        let statement = client.prepare("SELECT 1").await.unwrap();
        client.batch_execute("DEALLOCATE ALL").await.unwrap();
        let lost = client.query(&statement, &[]).await.unwrap_err();
        let error = Error::db("reading the history")(lost);
        assert!(
            matches!(&error, Error::Connect(pgconn::Error::SessionNotKept { evidence })
                if evidence == "a statement it had prepared was gone from the server session while reading the history"),
            "{error:?}"
        );
        let other = client.query("SELECT 1/0", &[]).await.unwrap_err();
        assert!(matches!(
            Error::db("dividing")(other),
            Error::Database { .. }
        ));
    }
}
