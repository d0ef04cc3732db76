//! diesel: one folder per migration, `{version}_{name}/up.sql` and
//! `down.sql`, with an optional `metadata.toml` whose `run_in_transaction =
//! false` runs it outside a transaction. The version is the folder name's
//! part before the first `_`, dashes removed (`2024-01-01-120000` ->
//! `20240101120000`). diesel records `__diesel_schema_migrations (version
//! VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT
//! CURRENT_TIMESTAMP)`, one row per applied migration.

use std::path::Path;

use crate::files;
use crate::{Error, History, OldMigration, Script, Tool};

const TOOL: Tool = Tool::Diesel;

/// Reads a diesel folder.
pub fn read(dir: &Path) -> Result<Vec<OldMigration>, Error> {
    let mut migrations = Vec::new();
    for (path, name) in files::candidates(dir, false)? {
        let parsed = name
            .split_once('_')
            .map(|(version, rest)| (version.replace('-', ""), rest))
            .filter(|(version, _)| {
                !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())
            });
        let (Some((version, rest)), true) = (parsed, path.is_dir()) else {
            return Err(Error::Unsupported {
                tool: TOOL.name(),
                path,
                reason: "diesel runs only folders named VERSION_NAME holding up.sql and down.sql"
                    .into(),
            });
        };
        let up = path.join("up.sql");
        let down = path.join("down.sql");
        if !up.is_file() {
            return Err(Error::Malformed {
                tool: TOOL.name(),
                path,
                line: None,
                reason: "no up.sql in it".into(),
            });
        }
        let no_transaction = run_outside_transaction(&path.join("metadata.toml"))?;
        let script = |path: &Path| -> Result<Script, Error> {
            Ok(Script {
                sql: files::read(path)?,
                no_transaction,
            })
        };
        migrations.push(OldMigration {
            key: files::version_key(&version).expect("digits"),
            version,
            name: rest.to_string(),
            up: script(&up)?,
            down: if down.is_file() {
                Some(script(&down)?)
            } else {
                None
            },
            files: vec![up],
        });
    }
    Ok(migrations)
}

/// Whether `metadata.toml` says `run_in_transaction = false`.
fn run_outside_transaction(metadata: &Path) -> Result<bool, Error> {
    if !metadata.is_file() {
        return Ok(false);
    }
    Ok(files::read(metadata)?.lines().any(|line| {
        let line = line.split('#').next().unwrap_or_default();
        matches!(line.split_once('='), Some((key, value))
            if key.trim() == "run_in_transaction" && value.trim() == "false")
    }))
}

/// Reads `__diesel_schema_migrations`.
pub async fn history(client: &tokio_postgres::Client, table: &str) -> Result<History, Error> {
    let rows = crate::query_history(client, table, &format!("SELECT version FROM {table}")).await?;
    History::of(TOOL, table, rows.iter().map(|row| row.get::<_, String>(0)))
}
