//! Flyway (SQL migrations): versioned `V{version}__{description}.sql`
//! (the version's parts separated by `.` or `_`), undo
//! `U{version}__{description}.sql` (which become the down migrations), run
//! outside a transaction when a `.sql.conf` beside the script says
//! `executeInTransaction=false` or when it holds a statement Flyway detects as
//! non-transactional (`CREATE INDEX CONCURRENTLY`, `VACUUM`, ...), in the folder or its subfolders. Repeatable
//! (`R__`) and baseline (`B`) migrations and callbacks have no dbops
//! equivalent and are refused, naming them. Flyway records
//! `flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version
//! VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL,
//! script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT
//! NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), execution_time INT
//! NOT NULL, success BOOLEAN NOT NULL)`: `SQL` rows apply a version,
//! `UNDO_SQL` rows undo it, a `BASELINE` row stands for every version up to
//! its own, and `success = false` is a failed migration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::files;
use crate::{Error, History, OldMigration, Script, Tool};

const TOOL: Tool = Tool::Flyway;

/// Reads a Flyway folder.
pub fn read(dir: &Path) -> Result<Vec<OldMigration>, Error> {
    let mut versioned: BTreeMap<Vec<u64>, OldMigration> = BTreeMap::new();
    let mut undo: Vec<(Vec<u64>, PathBuf, Script)> = Vec::new();
    let mut refused: Vec<PathBuf> = Vec::new();
    for (path, name) in files::candidates(dir, true)? {
        if name.ends_with(".sql.conf") {
            continue;
        }
        let unsupported = |reason: &str| Error::Unsupported {
            tool: TOOL.name(),
            path: path.clone(),
            reason: reason.to_string(),
        };
        let Some(stem) = name.strip_suffix(".sql") else {
            return Err(unsupported(
                "only SQL migrations can be imported (a Java migration runs code)",
            ));
        };
        if stem.starts_with("R__") {
            refused.push(path.clone());
            continue;
        }
        let parsed = stem
            .split_once("__")
            .and_then(|(prefix, description)| {
                let kind = prefix.chars().next()?;
                let version = prefix[kind.len_utf8()..].replace('_', ".");
                Some((kind, version, description))
            })
            .filter(|(kind, _, _)| matches!(kind, 'V' | 'U'));
        let Some((kind, version, description)) = parsed else {
            return Err(unsupported(
                "neither a versioned (V) nor an undo (U) migration: baseline migrations (B) and callbacks have no dbops equivalent",
            ));
        };
        let Some(key) = files::version_key(&version) else {
            return Err(Error::Malformed {
                tool: TOOL.name(),
                path,
                line: None,
                reason: format!("the version {version:?} is not numbers separated by . or _"),
            });
        };
        let sql = files::read(&path)?;
        let script = Script {
            no_transaction: outside_transaction(&path)? || needs_no_transaction(&sql),
            sql,
        };
        if kind == 'U' {
            undo.push((key, path, script));
            continue;
        }
        let migration = OldMigration {
            version,
            key: key.clone(),
            name: description.to_string(),
            up: script,
            down: None,
            files: vec![path.clone()],
        };
        if let Some(first) = versioned.insert(key, migration) {
            return Err(Error::DuplicateVersion {
                version: first.version,
                first: first.files[0].clone(),
                second: path,
            });
        }
    }
    if let Some(first) = refused.first() {
        return Err(Error::Unsupported {
            tool: TOOL.name(),
            path: first.clone(),
            reason: format!(
                "a repeatable migration, which Flyway runs again whenever it changes; dbops has none ({} R__ file(s) in all). Move them out of the folder (make each a versioned migration, or apply them another way) and import again",
                refused.len()
            ),
        });
    }
    for (key, path, script) in undo {
        let Some(migration) = versioned.get_mut(&key) else {
            return Err(Error::Malformed {
                tool: TOOL.name(),
                path,
                line: None,
                reason: "an undo migration without the versioned migration it undoes".into(),
            });
        };
        migration.files.push(path);
        migration.down = Some(script);
    }
    Ok(versioned.into_values().collect())
}

/// Whether a script holds a statement that PostgreSQL refuses inside a
/// transaction, which Flyway's PostgreSQL parser detects and runs the script
/// outside one for: `CREATE`/`DROP INDEX CONCURRENTLY`, `REINDEX ...
/// CONCURRENTLY`, `VACUUM`, `CREATE`/`DROP DATABASE` or `TABLESPACE`, `ALTER
/// SYSTEM`.
fn needs_no_transaction(sql: &str) -> bool {
    migrate_core::split::split_statements(sql)
        .iter()
        .any(|statement| {
            let code: String = statement
                .text
                .lines()
                .map(|line| line.split("--").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_uppercase();
            let words: Vec<&str> = code.split_whitespace().collect();
            let starts = |prefix: &[&str]| words.starts_with(prefix);
            let concurrently = words.contains(&"CONCURRENTLY");
            (starts(&["CREATE", "INDEX"])
                || starts(&["CREATE", "UNIQUE", "INDEX"])
                || starts(&["DROP", "INDEX"])
                || starts(&["REINDEX"]))
                && concurrently
                || starts(&["VACUUM"])
                || starts(&["ALTER", "SYSTEM"])
                || starts(&["CREATE", "DATABASE"])
                || starts(&["DROP", "DATABASE"])
                || starts(&["CREATE", "TABLESPACE"])
                || starts(&["DROP", "TABLESPACE"])
        })
}

/// Whether the script's `.conf` file says `executeInTransaction=false`.
fn outside_transaction(script: &Path) -> Result<bool, Error> {
    let mut conf = script.as_os_str().to_owned();
    conf.push(".conf");
    let conf = PathBuf::from(conf);
    if !conf.is_file() {
        return Ok(false);
    }
    Ok(files::read(&conf)?.lines().any(|line| {
        matches!(line.split_once('='), Some((key, value))
            if key.trim() == "executeInTransaction" && value.trim() == "false")
    }))
}

/// Reads `flyway_schema_history` in installation order.
pub async fn history(client: &tokio_postgres::Client, table: &str) -> Result<History, Error> {
    let rows = crate::query_history(
        client,
        table,
        &format!("SELECT version, type, success FROM {table} ORDER BY installed_rank"),
    )
    .await?;
    let mut history = History::of(TOOL, table, [])?;
    for row in rows {
        let (version, kind, success): (Option<String>, String, bool) =
            (row.get(0), row.get(1), row.get(2));
        let Some(version) = version else {
            // Repeatable migrations and the schema-creation marker have no version.
            continue;
        };
        if !success {
            return Err(Error::Dirty {
                tool: TOOL.name(),
                table: table.to_string(),
                version,
                state: "failed (success = false)",
            });
        }
        let key = history.key(TOOL, &version)?;
        match kind.as_str() {
            "BASELINE" => history.up_to = Some(key),
            "UNDO_SQL" => {
                history.versions.remove(&key);
            }
            _ => {
                history.versions.insert(key);
            }
        }
    }
    Ok(history)
}
