//! dbmate: `{version}_{name}.sql`, one file with `-- migrate:up` and
//! `-- migrate:down` sections, either of which may say `transaction:false`.
//! dbmate's PostgreSQL driver records `schema_migrations (version
//! varchar(128) primary key)`, one row per applied migration, the version as
//! written in the file name.

use std::path::Path;

use crate::files;
use crate::{Error, History, OldMigration, Script, Tool};

const TOOL: Tool = Tool::Dbmate;

/// Reads a dbmate folder.
pub fn read(dir: &Path) -> Result<Vec<OldMigration>, Error> {
    let mut migrations = Vec::new();
    for (path, name) in files::candidates(dir, false)? {
        let Some((version, rest)) = name.strip_suffix(".sql").and_then(files::split_version) else {
            return Err(Error::Unsupported {
                tool: TOOL.name(),
                path,
                reason: "dbmate runs only files named VERSION_NAME.sql".into(),
            });
        };
        let (up, down) = sections(&path, &files::read(&path)?)?;
        migrations.push(OldMigration {
            version: version.to_string(),
            key: files::version_key(version).expect("digits"),
            name: rest.to_string(),
            up,
            down,
            files: vec![path],
        });
    }
    Ok(migrations)
}

/// The up and down sections of a dbmate file, and their options.
fn sections(path: &Path, text: &str) -> Result<(Script, Option<Script>), Error> {
    let malformed = |line: usize, reason: String| Error::Malformed {
        tool: TOOL.name(),
        path: path.to_path_buf(),
        line: Some(line),
        reason,
    };
    let mut up: Option<Script> = None;
    let mut down: Option<Script> = None;
    let mut in_up = None;
    for (index, line) in text.lines().enumerate() {
        let directive = line
            .trim()
            .strip_prefix("--")
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix("migrate:"));
        if let Some(directive) = directive {
            let mut words = directive.split_whitespace();
            let which = words.next().unwrap_or_default();
            let mut no_transaction = false;
            for option in words {
                match option {
                    "transaction:false" => no_transaction = true,
                    "transaction:true" => {}
                    other => {
                        return Err(malformed(index + 1, format!("unknown option `{other}`")));
                    }
                }
            }
            let script = Script {
                sql: String::new(),
                no_transaction,
            };
            match which {
                "up" => {
                    up = Some(script);
                    in_up = Some(true);
                }
                "down" => {
                    down = Some(script);
                    in_up = Some(false);
                }
                other => {
                    return Err(malformed(
                        index + 1,
                        format!("unknown section `-- migrate:{other}`"),
                    ));
                }
            }
            continue;
        }
        let target = match in_up {
            Some(true) => up.as_mut(),
            Some(false) => down.as_mut(),
            None if migrate_core::split::split_statements(line).is_empty() => None,
            None => {
                return Err(malformed(
                    index + 1,
                    "SQL before `-- migrate:up`".to_string(),
                ));
            }
        };
        if let Some(script) = target {
            script.sql.push_str(line);
            script.sql.push('\n');
        }
    }
    let up = up.ok_or_else(|| malformed(1, "no `-- migrate:up` section".to_string()))?;
    Ok((up, down))
}

/// Reads `schema_migrations` as dbmate writes it.
pub async fn history(client: &tokio_postgres::Client, table: &str) -> Result<History, Error> {
    let rows =
        crate::query_history(client, table, &format!("SELECT version::text FROM {table}")).await?;
    History::of(TOOL, table, rows.iter().map(|row| row.get::<_, String>(0)))
}
