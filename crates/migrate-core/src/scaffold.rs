//! Writing a new migration's pair of files, with a version that is the current UTC minute, or
//! the minute after the newest migration of the folder when that is later, so that a new
//! migration never collides with an existing one and never lands out of order.

use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::source::{FileName, NO_TRANSACTION_DIRECTIVE};

/// The files [`new_migration`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMigration {
    /// The version it chose.
    pub version: i64,
    /// The up script.
    pub up: PathBuf,
    /// The down script.
    pub down: PathBuf,
}

/// Writes `VERSION_slug.up.sql` and `.down.sql` in `dir`, from templates
/// that say what goes where. `now` is the current time (a parameter, for
/// tests). Refuses a slug that is not lowercase letters, digits and `_`.
pub fn new_migration(
    dir: &Path,
    slug: &str,
    no_transaction: bool,
    now: OffsetDateTime,
) -> Result<NewMigration, Error> {
    let newest = newest_version_time(dir)?;
    let minute = now
        .replace_second(0)
        .unwrap_or(now)
        .replace_nanosecond(0)
        .unwrap_or(now);
    let at = match newest {
        Some(newest) if newest >= minute => newest + Duration::minutes(1),
        _ => minute,
    };
    let version = format_version(at);
    let up = dir.join(format!("{version}_{slug}.up.sql"));
    let down = dir.join(format!("{version}_{slug}.down.sql"));
    // The same rules as for any migration file name.
    let name = FileName::parse(&up)?;
    let header = if no_transaction {
        format!("{NO_TRANSACTION_DIRECTIVE}\n")
    } else {
        String::new()
    };
    let up_text = format!(
        "{header}-- {version}_{slug}: what this changes, and why.\n--\n{}",
        if no_transaction {
            UP_NO_TRANSACTION
        } else {
            UP
        }
    );
    let down_text = format!("{header}-- Undoes {version}_{slug}.\n--\n{DOWN}");
    for (path, text) in [(&up, up_text), (&down, down_text)] {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
            .map_err(|source| Error::ReadFile {
                path: path.clone(),
                source,
            })?;
    }
    Ok(NewMigration {
        version: name.version,
        up,
        down,
    })
}

const UP: &str = "\
-- It runs in one transaction, with its history row and audit entry, under the
-- lock_timeout and statement_timeout of configs/migrate.toml. Until it holds a
-- statement, dbops refuses the folder: write the SQL below.
--
-- A new table: a plural name, `id bigint GENERATED ALWAYS AS IDENTITY` with
-- `CONSTRAINT <table>_pkey PRIMARY KEY (id)`, and an entry for each of its
-- columns in configs/data-classification.toml (docs/quickstart.md).
-- An index on a table that holds rows: a migration of its own, made with
-- `dbops migrate new SLUG --no-transaction`, using CREATE INDEX CONCURRENTLY.

";

const UP_NO_TRANSACTION: &str = "\
-- It runs outside a transaction, one statement at a time, its progress kept
-- in the run log: write statements that can run again safely (IF NOT EXISTS),
-- one per line of work, such as
--   CREATE INDEX CONCURRENTLY IF NOT EXISTS widgets_org_id_idx ON widgets (org_id);

";

const DOWN: &str = "\
-- Put the schema back as it was before the up script, statement for
-- statement in reverse order. When nothing can be undone, say so with a line
-- `-- dbops:empty` and why.

";

/// The time the newest migration file of `dir` stands for.
fn newest_version_time(dir: &Path) -> Result<Option<OffsetDateTime>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut newest = None;
    for entry in entries.flatten() {
        if let Ok(name) = FileName::parse(&entry.path()) {
            newest = newest.max(Some(name.written_at));
        }
    }
    Ok(newest)
}

/// The `YYYYMMDDHHMM` version of the minute `at` (seconds dropped).
pub fn format_version(at: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_new_migration_takes_the_minute_or_the_one_after_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let now = datetime!(2026-12-06 04:59:42 UTC);
        let first = new_migration(dir.path(), "add_widgets", false, now).unwrap();
        assert_eq!(first.version, 202612060459);
        // Within the same minute, the next one is a minute later.
        let second = new_migration(dir.path(), "add_gadgets", true, now).unwrap();
        assert_eq!(second.version, 202612060500);
        let up = std::fs::read_to_string(&second.up).unwrap();
        assert!(up.starts_with("-- dbops:no-transaction\n"), "{up}");
        // Never before the newest, whatever the clock says.
        let third =
            new_migration(dir.path(), "fix", false, datetime!(2020-01-01 0:00 UTC)).unwrap();
        assert_eq!(third.version, 202612060501);
        // An unwritten migration is refused until it holds a statement.
        assert!(matches!(
            crate::Source::load(dir.path()),
            Err(Error::EmptyScript { .. })
        ));
    }

    #[test]
    fn a_bad_slug_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let error =
            new_migration(dir.path(), "Add-Widgets", false, OffsetDateTime::now_utc()).unwrap_err();
        assert!(error.to_string().contains("slug"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
