//! sqlx: `{version}_{description}.sql` (no down), or reversible
//! `{version}_{description}.up.sql` and `.down.sql`; a script whose first
//! line is `-- no-transaction` runs outside a transaction. sqlx's PostgreSQL
//! driver records `_sqlx_migrations (version BIGINT PRIMARY KEY, description
//! TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success
//! BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT
//! NULL)`; `success = false` is a migration that failed half-way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::files;
use crate::{Error, History, OldMigration, Script, Tool};

const TOOL: Tool = Tool::Sqlx;

#[derive(Default)]
struct Files {
    name: String,
    simple: Option<PathBuf>,
    up: Option<PathBuf>,
    down: Option<PathBuf>,
}

/// Reads a sqlx folder.
pub fn read(dir: &Path) -> Result<Vec<OldMigration>, Error> {
    let mut found: BTreeMap<String, Files> = BTreeMap::new();
    for (path, name) in files::candidates(dir, false)? {
        let (stem, kind) = if let Some(stem) = name.strip_suffix(".up.sql") {
            (stem, 1)
        } else if let Some(stem) = name.strip_suffix(".down.sql") {
            (stem, 2)
        } else if let Some(stem) = name.strip_suffix(".sql") {
            (stem, 0)
        } else {
            (name.as_str(), 3)
        };
        let parsed = files::split_version(stem).filter(|_| kind < 3);
        let Some((version, description)) = parsed else {
            return Err(Error::Unsupported {
                tool: TOOL.name(),
                path,
                reason: "sqlx runs only files named VERSION_DESCRIPTION.sql, .up.sql or .down.sql"
                    .into(),
            });
        };
        let entry = found.entry(files::as_number(version)).or_default();
        entry.name = description.to_string();
        let slot = match kind {
            0 => &mut entry.simple,
            1 => &mut entry.up,
            _ => &mut entry.down,
        };
        if let Some(first) = slot.replace(path.clone()) {
            return Err(Error::DuplicateVersion {
                version: files::as_number(version),
                first,
                second: path,
            });
        }
    }
    let mut migrations = Vec::new();
    for (version, found) in found {
        let malformed = |path: PathBuf, reason: &str| Error::Malformed {
            tool: TOOL.name(),
            path,
            line: None,
            reason: reason.to_string(),
        };
        let (up, down) = match (found.simple, found.up, found.down) {
            (Some(simple), None, None) => (simple, None),
            (None, Some(up), Some(down)) => (up, Some(down)),
            (Some(simple), _, _) => {
                return Err(malformed(
                    simple,
                    "the version also has a reversible .up.sql or .down.sql",
                ));
            }
            (None, Some(up), None) => return Err(malformed(up, "no .down.sql beside it")),
            (None, None, Some(down)) => return Err(malformed(down, "no .up.sql beside it")),
            (None, None, None) => unreachable!("an entry has at least one file"),
        };
        migrations.push(OldMigration {
            key: files::version_key(&version).expect("digits"),
            version,
            name: found.name,
            up: script(&up)?,
            down: down.as_deref().map(script).transpose()?,
            files: [Some(up), down].into_iter().flatten().collect(),
        });
    }
    Ok(migrations)
}

fn script(path: &Path) -> Result<Script, Error> {
    let sql = files::read(path)?;
    Ok(Script {
        no_transaction: sql.starts_with("-- no-transaction"),
        sql,
    })
}

/// Reads `_sqlx_migrations`; refuses a migration that did not succeed.
pub async fn history(client: &tokio_postgres::Client, table: &str) -> Result<History, Error> {
    let rows = crate::query_history(
        client,
        table,
        &format!("SELECT version, success FROM {table} ORDER BY version"),
    )
    .await?;
    let mut versions = Vec::new();
    for row in rows {
        let version: i64 = row.get(0);
        if !row.get::<_, bool>(1) {
            return Err(Error::Dirty {
                tool: TOOL.name(),
                table: table.to_string(),
                version: version.to_string(),
                state: "failed (success = false)",
            });
        }
        versions.push(version.to_string());
    }
    History::of(TOOL, table, versions)
}
