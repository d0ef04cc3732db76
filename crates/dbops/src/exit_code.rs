//! Every exit code of `dbops`, defined once. `docs/exit-codes.md` lists them for operators.

use migrate_core::Error as MigrateError;

use crate::CliError;

/// The run did what was asked.
pub const SUCCESS: i32 = 0;
/// An unexpected failure (a bug, an I/O error outside the categories below).
pub const FAILURE: i32 = 1;
/// The command line is malformed (clap's own code).
pub const USAGE: i32 = 2;
/// A configuration file, environment variable or flag value is invalid.
pub const CONFIG: i32 = 3;
/// A migration file is misnamed, unpaired, duplicated, empty or unreadable, or a stray file sits among them.
pub const SOURCE: i32 = 4;
/// The database server cannot be reached.
pub const UNREACHABLE: i32 = 5;
/// The database server rejected the credentials.
pub const AUTHENTICATION: i32 = 6;
/// Another run held the target's migration lock for longer than `--lock-wait`.
pub const LOCK_TIMEOUT: i32 = 7;
/// Applied migrations drifted from their files, or a pending one is out of order.
pub const DRIFT: i32 = 8;
/// A non-transactional migration is in a partial state and needs `dbops migrate repair`.
pub const PARTIAL: i32 = 9;
/// A migration's SQL failed (migrations before it in the run stay applied).
pub const MIGRATION_FAILED: i32 = 10;
/// `dbops lint` found error-level violations, or pending migrations did.
pub const LINT_ERRORS: i32 = 11;
/// A guardrail refused the run: missing approvals, a declined confirmation, a refusing hook.
pub const REFUSED: i32 = 12;
/// `dbops health` found the schema not ready.
pub const UNHEALTHY: i32 = 13;
/// `dbops docs validate` found the committed docs out of date.
pub const DOCS_OUT_OF_DATE: i32 = 14;
/// A data check failed: rollup assertions, reconciliation, or an FK not enforced.
pub const CHECK_FAILED: i32 = 15;
/// `dbops audit verify` found an edited or deleted audit entry.
pub const AUDIT_TAMPERED: i32 = 16;
/// The server accepts only TLS and the connection was not, the sslmode
/// requires TLS and the server does not offer it, the server's certificate
/// is not trusted (expired, another host name, an unknown CA), or the TLS
/// handshake failed.
pub const TLS: i32 = 17;
/// The database named in the connection does not exist on the server.
pub const DATABASE_MISSING: i32 = 18;
/// A target's history is empty but its schemas already hold objects: adopt
/// the database with `migrate baseline` or `migrate import` first.
pub const NOT_ADOPTED: i32 = 19;
/// A baseline found the database different from what the migrations build.
pub const BASELINE_DIFFERS: i32 = 20;
/// Another tool's history cannot be imported: a dirty or failed migration,
/// a version without a file, or a gap.
pub const IMPORT_HISTORY: i32 = 21;
/// The connection does not keep its own server session: it goes through a
/// pooler in transaction or statement pooling mode, through which the
/// migration lock and prepared statements do not work.
pub const POOLING: i32 = 22;

/// Every code with a one-line meaning, for `dbops --help` and `docs/exit-codes.md`.
pub const TABLE: &[(i32, &str)] = &[
    (SUCCESS, "success"),
    (FAILURE, "unexpected failure"),
    (USAGE, "malformed command line"),
    (
        CONFIG,
        "invalid configuration, environment variable or flag value",
    ),
    (
        SOURCE,
        "misnamed, unpaired, duplicated, empty or unreadable migration file, or a stray file in a migrations folder",
    ),
    (
        UNREACHABLE,
        "database server unreachable, or the connection lost for longer than the reconnect budget",
    ),
    (AUTHENTICATION, "database rejected the credentials"),
    (LOCK_TIMEOUT, "another run held the migration lock too long"),
    (
        DRIFT,
        "applied migration drifted from its file, or pending migration out of order",
    ),
    (
        PARTIAL,
        "a migration is in a partial state: run `dbops migrate repair`",
    ),
    (MIGRATION_FAILED, "a migration's SQL failed"),
    (LINT_ERRORS, "lint found error-level violations"),
    (REFUSED, "a guardrail refused the run"),
    (UNHEALTHY, "health probe: not ready"),
    (DOCS_OUT_OF_DATE, "generated docs do not match the database"),
    (CHECK_FAILED, "a data check failed"),
    (AUDIT_TAMPERED, "the audit chain is broken"),
    (
        TLS,
        "TLS required by the server or not offered by it, or the server's certificate not trusted",
    ),
    (
        DATABASE_MISSING,
        "the database does not exist on the server",
    ),
    (
        NOT_ADOPTED,
        "the history is empty but the schema is not: adopt the database with `dbops migrate baseline` or `import`",
    ),
    (
        BASELINE_DIFFERS,
        "the database differs from what the migrations up to the baseline build",
    ),
    (
        IMPORT_HISTORY,
        "another tool's history cannot be imported (dirty or failed migration, unknown version, gap)",
    ),
    (
        POOLING,
        "the connection goes through a pooler in transaction pooling mode: connect directly or use session pooling",
    ),
];

/// The exit-code table as text, for the end of `dbops --help`.
pub fn help_text() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, meaning) in TABLE {
        text.push_str(&format!("  {code:>2}  {meaning}\n"));
    }
    text
}

/// The exit code for an error.
pub fn for_error(error: &CliError) -> i32 {
    match error {
        CliError::Migrate(e) => for_migrate_error(e),
        CliError::Config(_) => CONFIG,
        CliError::Refused(_) => REFUSED,
        CliError::LintErrors(_) => LINT_ERRORS,
        CliError::Unhealthy(_) => UNHEALTHY,
        CliError::AuditTampered(_) => AUDIT_TAMPERED,
        CliError::Io { .. } | CliError::Json(_) => FAILURE,
        CliError::Docs(e) => for_docs_error(e),
        CliError::Seed(e) => for_seed_error(e),
        CliError::Partitions(e) => for_partitions_error(e),
        CliError::Rollup(e) => for_rollup_error(e),
        CliError::ClickHouse(e) => for_clickhouse_error(e),
        CliError::Import(e) => for_import_error(e),
    }
}

fn for_import_error(error: &migrate_import::Error) -> i32 {
    use migrate_import::Error as E;
    match error {
        E::ReadDir { .. }
        | E::ReadFile { .. }
        | E::Unsupported { .. }
        | E::Malformed { .. }
        | E::DuplicateVersion { .. }
        | E::NoMigrations { .. }
        | E::Conflict { .. } => SOURCE,
        E::InvalidTableName { .. } => CONFIG,
        E::NoHistoryTable { .. }
        | E::Dirty { .. }
        | E::BadHistoryValue { .. }
        | E::UnknownApplied { .. }
        | E::Gap { .. } => IMPORT_HISTORY,
        _ => FAILURE,
    }
}

fn for_seed_error(error: &seeder::Error) -> i32 {
    match error {
        seeder::Error::PepperMissing { .. }
        | seeder::Error::PepperTooShort { .. }
        | seeder::Error::KeyringInvalid { .. }
        | seeder::Error::PepperConflict { .. }
        | seeder::Error::PepperUnknown { .. }
        | seeder::Error::InvalidSetting { .. }
        | seeder::Error::SeededDifferently { .. }
        | seeder::Error::FixtureConflict { .. } => CONFIG,
        seeder::Error::Partitions(e) => for_partitions_error(e),
        seeder::Error::Connect(e) => for_connect_error(e),
        _ => FAILURE,
    }
}

fn for_partitions_error(error: &partitions::Error) -> i32 {
    match error {
        partitions::Error::NotDailyPartitioned { .. } | partitions::Error::OutOfCalendar(_) => {
            CONFIG
        }
        _ => FAILURE,
    }
}

fn for_rollup_error(error: &rollup_engine::Error) -> i32 {
    match error {
        rollup_engine::Error::Read { .. }
        | rollup_engine::Error::Parse { .. }
        | rollup_engine::Error::Invalid { .. }
        | rollup_engine::Error::InvalidOption { .. }
        | rollup_engine::Error::UnknownTarget { .. } => CONFIG,
        rollup_engine::Error::SchemaMissing => UNHEALTHY,
        rollup_engine::Error::MissingReadAllStats { .. } => REFUSED,
        _ => FAILURE,
    }
}

fn for_clickhouse_error(error: &rollup_clickhouse::Error) -> i32 {
    use rollup_clickhouse::Error as E;
    match error {
        E::InvalidSetting { .. } | E::InvalidRange { .. } => CONFIG,
        E::Tls(_) => TLS,
        E::Http { .. } => UNREACHABLE,
        E::Statement { .. } => MIGRATION_FAILED,
        E::ChecksumMismatch { .. } => DRIFT,
        E::Locked | E::RunLocked => LOCK_TIMEOUT,
        E::Migrations(e) => for_migrate_error(e),
        E::Engine(e) => for_rollup_error(e),
        _ => FAILURE,
    }
}

fn for_docs_error(error: &docgen::Error) -> i32 {
    match error {
        docgen::Error::Catalog(
            catalog::Error::ReservedSchema { .. }
            | catalog::Error::ReadFile { .. }
            | catalog::Error::ClassificationSyntax { .. }
            | catalog::Error::ClassificationSetting(_),
        ) => CONFIG,
        _ => FAILURE,
    }
}

fn for_migrate_error(error: &MigrateError) -> i32 {
    match error {
        MigrateError::ReadDir { .. }
        | MigrateError::ReadFile { .. }
        | MigrateError::BadFileName { .. }
        | MigrateError::EmptyScript { .. }
        | MigrateError::MissingPair { .. }
        | MigrateError::DuplicateVersion { .. } => SOURCE,
        MigrateError::Config { .. } | MigrateError::UnknownVersion { .. } => CONFIG,
        MigrateError::Unreachable { .. }
        | MigrateError::Pool { .. }
        | MigrateError::ConnectionLost { .. } => UNREACHABLE,
        MigrateError::Authentication { .. } => AUTHENTICATION,
        MigrateError::Connect(e) => for_connect_error(e),
        MigrateError::LockTimeout { .. } => LOCK_TIMEOUT,
        MigrateError::Drift { .. } | MigrateError::OutOfOrder { .. } => DRIFT,
        MigrateError::Partial { .. } => PARTIAL,
        MigrateError::NothingToRepair { .. } => CONFIG,
        MigrateError::MigrationFailed { .. } => MIGRATION_FAILED,
        MigrateError::Refused { .. }
        | MigrateError::PlanChanged { .. }
        | MigrateError::SignatureRejected { .. }
        | MigrateError::HistoryNotEmpty { .. } => REFUSED,
        MigrateError::NotAdopted { .. } => NOT_ADOPTED,
        MigrateError::BaselineDiffers { .. } => BASELINE_DIFFERS,
        MigrateError::Scratch { source, .. } => for_migrate_error(source),
        _ => FAILURE,
    }
}

fn for_connect_error(error: &pgconn::Error) -> i32 {
    match error {
        pgconn::Error::TlsRequired { .. }
        | pgconn::Error::TlsUnsupported { .. }
        | pgconn::Error::CertificateNotTrusted { .. }
        | pgconn::Error::Tls { .. } => TLS,
        pgconn::Error::DatabaseMissing { .. } => DATABASE_MISSING,
        pgconn::Error::SessionNotKept { .. } => POOLING,
        pgconn::Error::BadCredentials { .. } => AUTHENTICATION,
        pgconn::Error::Unreachable { .. } => UNREACHABLE,
        pgconn::Error::InvalidConnectionString { .. }
        | pgconn::Error::InvalidSetting { .. }
        | pgconn::Error::File { .. } => CONFIG,
        _ => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::TABLE;

    #[test]
    fn codes_are_distinct_and_documented() {
        let mut codes: Vec<i32> = TABLE.iter().map(|(code, _)| *code).collect();
        codes.dedup();
        assert_eq!(
            codes.len(),
            TABLE.len(),
            "exit codes are listed in order and never reused"
        );
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/exit-codes.md"
        ))
        .unwrap();
        for (code, meaning) in TABLE {
            let row = format!("| {code} | {meaning} |");
            assert!(doc.contains(&row), "docs/exit-codes.md lacks the row {row}");
        }
    }

    #[test]
    fn clickhouse_errors_have_their_codes() {
        use super::{
            CONFIG, DRIFT, FAILURE, LOCK_TIMEOUT, MIGRATION_FAILED, REFUSED, TLS,
            for_clickhouse_error,
        };
        use rollup_clickhouse::Error as E;
        let cases = [
            (
                E::InvalidSetting {
                    setting: "urls",
                    message: "x".into(),
                },
                CONFIG,
            ),
            (
                E::InvalidRange {
                    from: time::OffsetDateTime::UNIX_EPOCH,
                    to: time::OffsetDateTime::UNIX_EPOCH,
                },
                CONFIG,
            ),
            (E::Tls("x".into()), TLS),
            (
                E::Statement {
                    path: "a.up.sql".into(),
                    line: 1,
                    node: "http://a".into(),
                    message: "x".into(),
                },
                MIGRATION_FAILED,
            ),
            (
                E::ChecksumMismatch {
                    label: "1_a".into(),
                    node: "http://a".into(),
                    recorded: 1,
                    current: 2,
                },
                DRIFT,
            ),
            (E::Locked, LOCK_TIMEOUT),
            (E::RunLocked, LOCK_TIMEOUT),
            (
                E::Engine(rollup_engine::Error::MissingReadAllStats {
                    role: "reader".into(),
                }),
                REFUSED,
            ),
            (
                E::Server {
                    node: "http://a".into(),
                    context: "x".into(),
                    message: "x".into(),
                },
                FAILURE,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(for_clickhouse_error(&error), code, "{error}");
        }
    }

    #[test]
    fn refused_rollups_and_bad_peppers_have_their_codes() {
        use super::{CONFIG, REFUSED, for_rollup_error, for_seed_error};
        let refused = rollup_engine::Error::MissingReadAllStats {
            role: "reader".into(),
        };
        assert_eq!(for_rollup_error(&refused), REFUSED);
        for error in [
            seeder::Error::PepperConflict {
                keyring: "A",
                single: "B",
            },
            seeder::Error::PepperUnknown { id: "9".into() },
            seeder::Error::KeyringInvalid {
                origin: "A",
                entry: 1,
                message: String::new(),
            },
        ] {
            assert_eq!(for_seed_error(&error), CONFIG, "{error}");
        }
    }
}
