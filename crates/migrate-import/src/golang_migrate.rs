//! golang-migrate: `{version}_{title}.up.sql` and `{version}_{title}.down.sql`
//! (the down file optional), run as they are. Its PostgreSQL driver records
//! one row, `schema_migrations (version bigint not null primary key, dirty
//! boolean not null)`: every migration up to `version` is applied, and a
//! `dirty` row means the last one failed half-way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::files;
use crate::{Error, History, OldMigration, Script, Tool};

const TOOL: Tool = Tool::GolangMigrate;

/// Reads a golang-migrate folder.
pub fn read(dir: &Path) -> Result<Vec<OldMigration>, Error> {
    let mut pairs: BTreeMap<String, (String, Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    for (path, name) in files::candidates(dir, false)? {
        let parsed = name
            .strip_suffix(".up.sql")
            .map(|stem| (stem, true))
            .or_else(|| name.strip_suffix(".down.sql").map(|stem| (stem, false)))
            .and_then(|(stem, up)| files::split_version(stem).map(|(v, t)| (v, t, up)));
        let Some((version, title, up)) = parsed else {
            return Err(Error::Unsupported {
                tool: TOOL.name(),
                path,
                reason: "golang-migrate runs only files named VERSION_TITLE.up.sql and VERSION_TITLE.down.sql".into(),
            });
        };
        let entry = pairs
            .entry(files::as_number(version))
            .or_insert_with(|| (title.to_string(), None, None));
        let side = if up { &mut entry.1 } else { &mut entry.2 };
        if let Some(first) = side.replace(path.clone()) {
            return Err(Error::DuplicateVersion {
                version: files::as_number(version),
                first,
                second: path,
            });
        }
    }
    let mut migrations = Vec::new();
    for (version, (title, up, down)) in pairs {
        let Some(up) = up else {
            return Err(Error::Malformed {
                tool: TOOL.name(),
                path: down.expect("a down file when there is no up file"),
                line: None,
                reason: "a down migration without its up migration".into(),
            });
        };
        let script = |path: &Path| -> Result<Script, Error> {
            Ok(Script {
                sql: files::read(path)?,
                no_transaction: false,
            })
        };
        migrations.push(OldMigration {
            key: files::version_key(&version).expect("digits"),
            version,
            name: title,
            up: script(&up)?,
            down: down.as_deref().map(script).transpose()?,
            files: [Some(up), down].into_iter().flatten().collect(),
        });
    }
    Ok(migrations)
}

/// Reads `schema_migrations`; refuses a dirty version.
pub async fn history(client: &tokio_postgres::Client, table: &str) -> Result<History, Error> {
    let rows = crate::query_history(
        client,
        table,
        &format!("SELECT version, dirty FROM {table}"),
    )
    .await?;
    let mut history = History::of(TOOL, table, [])?;
    for row in rows {
        let version: i64 = row.get(0);
        if row.get::<_, bool>(1) {
            return Err(Error::Dirty {
                tool: TOOL.name(),
                table: table.to_string(),
                version: version.to_string(),
                state: "dirty",
            });
        }
        if version >= 0 {
            history.up_to = Some(vec![version.unsigned_abs()]);
        }
    }
    Ok(history)
}
