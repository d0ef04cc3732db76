//! refinery: `V{version}__{name}.sql` (or `U` for unversioned ones), in the
//! folder or its subfolders; there are no down migrations, and `.rs`
//! migrations cannot be converted. refinery records `refinery_schema_history
//! (version INT4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255),
//! checksum VARCHAR(255))` (refinery-core's `ASSERT_MIGRATIONS_TABLE_QUERY`;
//! `INT8` with its `int8-versions` feature), one row per applied migration.
//! dbops's own history uses the same format under another name; its
//! versions and checksums differ, so the rows are written anew.

use std::path::Path;

use crate::files;
use crate::{Error, History, OldMigration, Script, Tool};

const TOOL: Tool = Tool::Refinery;

/// Reads a refinery folder.
pub fn read(dir: &Path) -> Result<Vec<OldMigration>, Error> {
    let mut migrations = Vec::new();
    for (path, name) in files::candidates(dir, true)? {
        let unsupported = |reason: &str| Error::Unsupported {
            tool: TOOL.name(),
            path: path.clone(),
            reason: reason.to_string(),
        };
        if name.ends_with(".rs") {
            if name == "mod.rs" {
                continue;
            }
            return Err(unsupported(
                "a Rust migration runs code, which dbops cannot convert; rewrite it as SQL",
            ));
        }
        let parsed = name
            .strip_suffix(".sql")
            .and_then(|stem| stem.strip_prefix('V').or_else(|| stem.strip_prefix('U')))
            .and_then(|stem| stem.split_once("__"))
            .filter(|(version, name)| {
                !version.is_empty()
                    && version.bytes().all(|b| b.is_ascii_digit())
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_')
            });
        let Some((version, rest)) = parsed else {
            return Err(unsupported(
                "refinery runs only files named V{version}__{name}.sql or U{version}__{name}.sql",
            ));
        };
        migrations.push(OldMigration {
            version: files::as_number(version),
            key: files::version_key(version).expect("digits"),
            name: rest.to_string(),
            up: Script {
                sql: files::read(&path)?,
                no_transaction: false,
            },
            down: None,
            files: vec![path],
        });
    }
    Ok(migrations)
}

/// Reads `refinery_schema_history`.
pub async fn history(client: &tokio_postgres::Client, table: &str) -> Result<History, Error> {
    let rows =
        crate::query_history(client, table, &format!("SELECT version::text FROM {table}")).await?;
    History::of(TOOL, table, rows.iter().map(|row| row.get::<_, String>(0)))
}
