//! The one error type of the seeder.

/// Everything that can stop a seeding run.
///
/// Messages never contain key material or the pepper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pepper environment variable is not set.
    #[error(
        "{variable} is not set: API keys are hashed with a secret pepper, see docs/security.md"
    )]
    PepperMissing {
        /// The variable's name.
        variable: &'static str,
    },
    /// The pepper is too short to be a secret worth the name.
    #[error(
        "the API key pepper ({origin}) is {length} bytes long; at least {minimum} random bytes are required"
    )]
    PepperTooShort {
        /// Where the pepper came from (the environment variable, or "argument").
        origin: &'static str,
        /// Its length.
        length: usize,
        /// The minimum length.
        minimum: usize,
    },
    /// The keyring of peppers is malformed. The message names the entry by
    /// its position (and its id when it has one), never its secret.
    #[error("invalid {origin}: entry {entry}: {message}")]
    KeyringInvalid {
        /// Where the keyring came from (the environment variable, or "argument").
        origin: &'static str,
        /// The entry at fault, from 1.
        entry: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Both the keyring and the single pepper variable are set.
    #[error(
        "both {keyring} and {single} are set: keep one ({keyring} lists the pepper of new keys first, then the older ones by id)"
    )]
    PepperConflict {
        /// The keyring variable.
        keyring: &'static str,
        /// The single-pepper variable.
        single: &'static str,
    },
    /// A stored key hash names a pepper the keyring does not hold.
    #[error(
        "no pepper with id {id:?} in the keyring: keys hashed with it cannot be verified until it is listed in DBOPS_API_KEY_PEPPERS"
    )]
    PepperUnknown {
        /// The pepper id stored with the hash.
        id: String,
    },
    /// A setting is out of range.
    #[error("invalid setting {setting}: {message}")]
    InvalidSetting {
        /// The setting, as the command line names it.
        setting: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The database was seeded before with other parameters; seeding again
    /// would mix two data sets.
    #[error(
        "the database already holds {kind} seed data made with {recorded}; this run asks for {requested}"
    )]
    SeededDifferently {
        /// `operational` or `analytics`.
        kind: &'static str,
        /// The recorded parameters, as JSON.
        recorded: String,
        /// The requested parameters, as JSON.
        requested: String,
    },
    /// A natural key the seeder uses is taken by a row it did not write.
    #[error(
        "{what}: expected {expected} seeded rows, found {found}; rows created by hand collide with the fixtures"
    )]
    FixtureConflict {
        /// Which rows.
        what: String,
        /// How many the seeder wrote or expected.
        expected: usize,
        /// How many it found.
        found: usize,
    },
    /// A database statement failed.
    #[error("database error while {context}")]
    Database {
        /// What the seeder was doing.
        context: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// A connection could not be opened.
    #[error(transparent)]
    Connect(#[from] pgconn::Error),
    /// Creating the partitions for the seeded days failed.
    #[error("cannot prepare the partitions of usage_events")]
    Partitions(#[source] partitions::Error),
    /// A loader task stopped unexpectedly.
    #[error("a loader task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }
}
