//! Taking over another tool's migrations: its folder converted into dbops
//! pairs, and its history table read to tell which of them are applied.
//!
//! ```no_run
//! # async fn example(client: &tokio_postgres::Client) -> Result<(), migrate_import::Error> {
//! use migrate_import::{Tool, convert, read_history};
//! let conversion = convert(Tool::Goose, "db/migrations".as_ref())?;
//! conversion.write("migrations/operational".as_ref())?;
//! let history = read_history(Tool::Goose, client, None).await?;
//! if let Some(version) = conversion.last_applied(&history)? {
//!     println!("the database has every migration up to {version}");
//! }
//! # Ok(()) }
//! ```
//!
//! - One module per tool reads its folder layout and its history table:
//!   [`golang_migrate`], [`goose`], [`sqlx`], [`diesel`], [`dbmate`],
//!   [`refinery`], [`flyway`].
//! - [`mapping`] gives each migration its dbops version and slug, by a
//!   documented, deterministic, order-preserving rule, and renders the
//!   mapping file committed beside the migrations.
//! - Recording the applied ones is the caller's: the dbops CLI does it with
//!   `migrate_core`'s verified baseline up to [`Conversion::last_applied`].
#![warn(missing_docs)]

pub mod dbmate;
pub mod diesel;
mod error;
mod files;
pub mod flyway;
pub mod golang_migrate;
pub mod goose;
pub mod mapping;
pub mod refinery;
pub mod sqlx;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use error::Error;
pub use mapping::{Imported, Rule};

/// The tools whose migrations can be imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// golang-migrate: `VERSION_title.up.sql` / `.down.sql`.
    GolangMigrate,
    /// goose: `VERSION_name.sql` with `-- +goose Up` / `Down` sections.
    Goose,
    /// sqlx: `VERSION_description.sql`, or `.up.sql` / `.down.sql` pairs.
    Sqlx,
    /// diesel: `VERSION_name/up.sql` and `down.sql`.
    Diesel,
    /// dbmate: `VERSION_name.sql` with `-- migrate:up` / `down` sections.
    Dbmate,
    /// refinery: `V{n}__name.sql`.
    Refinery,
    /// Flyway: `V{version}__description.sql`, with `U` undo scripts.
    Flyway,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 7] = [
        Tool::GolangMigrate,
        Tool::Goose,
        Tool::Sqlx,
        Tool::Diesel,
        Tool::Dbmate,
        Tool::Refinery,
        Tool::Flyway,
    ];

    /// The tool's name, as in the mapping file and messages.
    pub fn name(self) -> &'static str {
        match self {
            Tool::GolangMigrate => "golang-migrate",
            Tool::Goose => "goose",
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::Dbmate => "dbmate",
            Tool::Refinery => "refinery",
            Tool::Flyway => "flyway",
        }
    }

    /// The table where the tool records what it applied (its default name).
    pub fn history_table(self) -> &'static str {
        match self {
            Tool::GolangMigrate | Tool::Dbmate => "schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Refinery => "refinery_schema_history",
            Tool::Flyway => "flyway_schema_history",
        }
    }

    /// The name of the mapping file an import writes beside the migrations.
    pub fn mapping_file(self) -> String {
        format!("imported-from-{}.md", self.name())
    }
}

/// One script of a migration, as the tool would run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The SQL, the tool's own annotations taken out.
    pub sql: String,
    /// Whether the tool runs it outside a transaction.
    pub no_transaction: bool,
}

/// One migration as the other tool sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldMigration {
    /// The version as the tool records it in its history table.
    pub version: String,
    /// The name after the version, as written in the file name.
    pub name: String,
    /// The files it was read from.
    pub files: Vec<PathBuf>,
    /// The up script.
    pub up: Script,
    /// The down script; `None` when the tool has none for it.
    pub down: Option<Script>,
    /// The version as numbers, for ordering and for matching history rows.
    pub(crate) key: Vec<u64>,
}

/// A converted folder: every migration with its dbops version and slug.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The tool.
    pub tool: Tool,
    /// The migrations, oldest first.
    pub migrations: Vec<Imported>,
}

/// What [`Conversion::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Files created.
    pub created: usize,
    /// Files that were there already, identical.
    pub unchanged: usize,
    /// The mapping file.
    pub mapping: PathBuf,
}

/// Which migrations the tool's history table says are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The table read.
    pub table: String,
    /// Versions recorded one by one.
    versions: BTreeSet<Vec<u64>>,
    /// Every version up to and including this one (golang-migrate's single
    /// row, a Flyway baseline).
    up_to: Option<Vec<u64>>,
}

/// Reads `dir` as `tool` lays out its migrations and gives each its dbops
/// version and slug.
pub fn convert(tool: Tool, dir: &Path) -> Result<Conversion, Error> {
    let mut old = match tool {
        Tool::GolangMigrate => golang_migrate::read(dir)?,
        Tool::Goose => goose::read(dir)?,
        Tool::Sqlx => sqlx::read(dir)?,
        Tool::Diesel => diesel::read(dir)?,
        Tool::Dbmate => dbmate::read(dir)?,
        Tool::Refinery => refinery::read(dir)?,
        Tool::Flyway => flyway::read(dir)?,
    };
    if old.is_empty() {
        return Err(Error::NoMigrations {
            tool: tool.name(),
            dir: dir.to_path_buf(),
        });
    }
    old.sort_by(|a, b| a.key.cmp(&b.key));
    for pair in old.windows(2) {
        if pair[0].key == pair[1].key {
            return Err(Error::DuplicateVersion {
                version: pair[1].version.clone(),
                first: pair[0].files[0].clone(),
                second: pair[1].files[0].clone(),
            });
        }
    }
    Ok(Conversion {
        tool,
        migrations: mapping::assign(old),
    })
}

/// Reads which migrations `tool`'s history table records as applied: its
/// default table ([`Tool::history_table`]) or `table`, when the tool was
/// configured with another name (`schema.table` or `table`). Refuses a
/// history with a dirty or failed migration.
pub async fn read_history(
    tool: Tool,
    client: &tokio_postgres::Client,
    table: Option<&str>,
) -> Result<History, Error> {
    let table = table.unwrap_or(tool.history_table());
    let valid = !table.is_empty()
        && table.split('.').count() <= 2
        && table.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        return Err(Error::InvalidTableName {
            name: table.to_string(),
        });
    }
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(|source| Error::Database {
            table: table.to_string(),
            source,
        })?
        .get(0);
    if !exists {
        return Err(Error::NoHistoryTable {
            tool: tool.name(),
            table: table.to_string(),
        });
    }
    match tool {
        Tool::GolangMigrate => golang_migrate::history(client, table).await,
        Tool::Goose => goose::history(client, table).await,
        Tool::Sqlx => sqlx::history(client, table).await,
        Tool::Diesel => diesel::history(client, table).await,
        Tool::Dbmate => dbmate::history(client, table).await,
        Tool::Refinery => refinery::history(client, table).await,
        Tool::Flyway => flyway::history(client, table).await,
    }
}

/// Runs `sql`, a read of the history table `table`, naming the table when it fails.
pub(crate) async fn query_history(
    client: &tokio_postgres::Client,
    table: &str,
    sql: &str,
) -> Result<Vec<tokio_postgres::Row>, Error> {
    client
        .query(sql, &[])
        .await
        .map_err(|source| Error::Database {
            table: table.to_string(),
            source,
        })
}

impl History {
    /// A history of the versions `versions` (as the tool records them).
    pub(crate) fn of(
        tool: Tool,
        table: &str,
        versions: impl IntoIterator<Item = String>,
    ) -> Result<History, Error> {
        let mut history = History {
            table: table.to_string(),
            ..History::default()
        };
        for version in versions {
            let key = history.key(tool, &version)?;
            history.versions.insert(key);
        }
        Ok(history)
    }

    /// The numbers of a version read from the table.
    pub(crate) fn key(&self, tool: Tool, value: &str) -> Result<Vec<u64>, Error> {
        files::version_key(value).ok_or_else(|| Error::BadHistoryValue {
            tool: tool.name(),
            table: self.table.clone(),
            value: value.to_string(),
        })
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.up_to.is_none()
    }
}

impl Conversion {
    /// Writes every migration as a dbops pair into `dir` (created when
    /// missing), and the mapping file beside them. Files that exist already
    /// must be exactly what this writes (an import run again writes
    /// nothing); any other file of that name is refused before anything is
    /// written.
    pub fn write(&self, dir: &Path) -> Result<Written, Error> {
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        for migration in &self.migrations {
            let (up, down) = mapping::scripts(self.tool, migration);
            let stem = format!("{}_{}", migration.version, migration.slug);
            files.push((dir.join(format!("{stem}.up.sql")), up));
            files.push((dir.join(format!("{stem}.down.sql")), down));
        }
        let mapping = dir.join(self.tool.mapping_file());
        files.push((mapping.clone(), mapping::render(self)));
        let mut unchanged = 0;
        for (path, text) in &files {
            match std::fs::read_to_string(path) {
                Ok(existing) if existing == *text => unchanged += 1,
                Ok(_) => return Err(Error::Conflict { path: path.clone() }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::ReadFile {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::WriteFile {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut created = 0;
        for (path, text) in &files {
            if path.exists() {
                continue;
            }
            std::fs::write(path, text).map_err(|source| Error::WriteFile {
                path: path.clone(),
                source,
            })?;
            created += 1;
        }
        Ok(Written {
            created,
            unchanged,
            mapping,
        })
    }

    /// The dbops version of the newest migration `history` records, once
    /// every version it records is a migration of the folder and the
    /// applied ones are the oldest ones, without a gap. `None` when it
    /// records none.
    pub fn last_applied(&self, history: &History) -> Result<Option<i64>, Error> {
        let tool = self.tool.name();
        let known = |key: &Vec<u64>| self.migrations.iter().any(|m| &m.old.key == key);
        // A Flyway baseline may name a version without a file; golang-migrate's cannot.
        let up_to = history.up_to.iter().filter(|_| self.tool != Tool::Flyway);
        for key in history.versions.iter().chain(up_to) {
            if !known(key) {
                return Err(Error::UnknownApplied {
                    tool,
                    table: history.table.clone(),
                    version: key.iter().map(u64::to_string).collect::<Vec<_>>().join("."),
                });
            }
        }
        let applied: Vec<bool> = self
            .migrations
            .iter()
            .map(|m| {
                history.versions.contains(&m.old.key)
                    || history
                        .up_to
                        .as_ref()
                        .is_some_and(|up_to| m.old.key <= *up_to)
            })
            .collect();
        let done = applied.iter().take_while(|applied| **applied).count();
        if let Some(later) = applied[done..].iter().position(|applied| *applied) {
            let label = |m: &Imported| format!("{} ({})", m.old.version, m.old.name);
            return Err(Error::Gap {
                tool,
                table: history.table.clone(),
                missing: label(&self.migrations[done]),
                applied: label(&self.migrations[done + later]),
            });
        }
        Ok(done
            .checked_sub(1)
            .map(|last| self.migrations[last].version))
    }
}
