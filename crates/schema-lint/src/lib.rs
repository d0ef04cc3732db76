//! dbops's schema linter: one rule engine for migration files and the live schema, with the same rule IDs for both.
//!
//! ```no_run
//! use schema_lint::{Config, lint_paths};
//!
//! let config = Config::load("configs/lint.toml".as_ref())?;
//! let violations = lint_paths(&["migrations".into()], &config)?;
//! print!("{}", schema_lint::render::human(&violations));
//! let failed = schema_lint::has_errors(&violations);
//! # Ok::<(), schema_lint::Error>(())
//! ```
//!
//! - Files: [`lint_paths`] and [`lint_sources`] parse every file with squawk's
//!   parser, run squawk's lock and rewrite safety rules under our IDs, check
//!   migration hygiene, then replay each directory's migrations into
//!   `catalog`'s schema model and run the naming, index, partition and
//!   sensitive-field rules on it.
//! - Live: [`lint_live`] runs the same schema rules on the model `catalog`
//!   introspects, plus the rules only a database can answer (applied
//!   migrations edited since, partitions ahead of time).
//! - Findings are data ([`Violation`]); [`render`] prints them for people,
//!   machines, GitHub and SARIF consumers; the caller picks the exit code.
//! - Ignores: `-- dbops-lint: ignore RULE_ID reason` before a statement, or
//!   at the top of a file followed by a blank line for the whole file.
//! - Baseline: [`Baseline`] accepts recorded findings by rule and file
//!   checksum, so that only new ones block.
#![warn(missing_docs)]

mod baseline;
mod config;
mod engine;
mod english;
mod error;
mod ignore;
mod model;
pub mod render;
mod rules;
mod source;
mod syntax;
mod violation;

use std::path::PathBuf;

pub use baseline::{Baseline, Baselined};
pub use config::{Config, Level};
pub use error::Error;
pub use rules::{Family, RuleInfo};
pub use violation::{Excerpt, Location, Position, Severity, SourceSpan, Violation};

/// Lints SQL files given as `(path, text)`, as the migration engine does
/// before applying pending migrations. Files in the same directory form one
/// migration set: their versions are checked together and their up files are
/// replayed, in version order, into one schema model.
pub fn lint_sources(sources: &[(PathBuf, String)], config: &Config) -> Vec<Violation> {
    engine::lint_sources(sources.to_vec(), config, time::OffsetDateTime::now_utc())
}

/// [`lint_sources`] for files meant for the database `live` describes (as
/// `catalog::introspect` reads it): a column type change on a column the
/// files do not create is judged from the column's live type, rather than
/// reported as unknown.
pub fn lint_sources_against(
    sources: &[(PathBuf, String)],
    live: &catalog::model::Schema,
    config: &Config,
) -> Vec<Violation> {
    engine::lint_sources_reporting(
        sources.to_vec(),
        None,
        Some(live),
        config,
        time::OffsetDateTime::now_utc(),
    )
}

/// Lints pending migrations in the context of the applied ones, as the
/// migration engine does before applying: every file is replayed into the
/// schema model (so that a foreign key added to an existing table is checked
/// against that table's indexes), but only findings located in `pending`
/// files are returned.
pub fn lint_pending(
    applied: &[(PathBuf, String)],
    pending: &[(PathBuf, String)],
    config: &Config,
) -> Vec<Violation> {
    let reported: std::collections::HashSet<PathBuf> =
        pending.iter().map(|(path, _)| path.clone()).collect();
    let sources = applied.iter().chain(pending).cloned().collect();
    engine::lint_sources_reporting(
        sources,
        Some(&reported),
        None,
        config,
        time::OffsetDateTime::now_utc(),
    )
}

/// Reads the `.sql` files under `paths` (directories are searched
/// recursively), as [`lint_paths`] does: for [`lint_sources`] and a
/// [`Baseline`], which need the files' texts.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, Error> {
    engine::read_paths(paths)
}

/// Lints the `.sql` files under `paths` (directories are searched recursively).
pub fn lint_paths(paths: &[PathBuf], config: &Config) -> Result<Vec<Violation>, Error> {
    let _span = tracing::info_span!("lint_paths", paths = paths.len()).entered();
    let sources = engine::read_paths(paths)?;
    tracing::debug!(files = sources.len(), "read migration files");
    Ok(engine::lint_sources(
        sources,
        config,
        time::OffsetDateTime::now_utc(),
    ))
}

/// What the live checks need: the introspected schema and the migration history.
#[derive(Debug, Clone, Copy)]
pub struct LiveInput<'a> {
    /// The schema as `catalog::introspect::introspect` read it.
    pub schema: &'a catalog::model::Schema,
    /// Every applied migration, and whether its file changed since.
    pub history: &'a [AppliedMigration],
    /// Migration files not applied yet.
    pub pending: &'a [PendingMigration],
}

/// One applied migration, from the migration engine's history (migrate-core's status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// The 12-digit version.
    pub version: u64,
    /// The slug recorded when it was applied.
    pub name: String,
    /// Whether the file's checksum differs from the one recorded when it was
    /// applied (migrate-core's `DriftKind::Changed`).
    pub changed_since_applied: bool,
    /// The up file, when it still exists.
    pub path: Option<PathBuf>,
}

/// A migration file that the database has not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMigration {
    /// The 12-digit version.
    pub version: u64,
    /// The up file.
    pub path: PathBuf,
}

/// Lints the live database: the schema rules on the introspected model, and the history and partition checks.
pub fn lint_live(input: &LiveInput<'_>, config: &Config) -> Vec<Violation> {
    let _span = tracing::info_span!("lint_live", tables = input.schema.tables.len()).entered();
    engine::lint_live(input, config, time::OffsetDateTime::now_utc())
}

/// Every rule: ID, family, default severity and summary.
pub fn rules() -> impl Iterator<Item = &'static RuleInfo> {
    rules::all()
}

/// Whether any finding is an error, which fails a lint run.
pub fn has_errors(violations: &[Violation]) -> bool {
    violations.iter().any(|v| v.severity == Severity::Error)
}
