//! Migration files on disk: discovery, naming rules, pairing and checksums.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The first-line directive that makes a migration run outside a transaction.
pub const NO_TRANSACTION_DIRECTIVE: &str = "-- dbops:no-transaction";

/// The line that marks a script with no statement as empty on purpose (a
/// rollback that has nothing to undo, say): without it, such a script is
/// refused, being more likely a file saved before it was written.
pub const EMPTY_DIRECTIVE: &str = "-- dbops:empty";

/// Which way a script moves the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Applies a change.
    Up,
    /// Reverts a change.
    Down,
}

impl Direction {
    /// `"up"` or `"down"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// One `.up.sql` or `.down.sql` file.
#[derive(Debug, Clone)]
pub struct Script {
    /// Where the file is.
    pub path: PathBuf,
    /// The SQL, with line endings normalized to `\n` and any byte-order mark removed.
    pub sql: String,
    /// Whether the file starts with [`NO_TRANSACTION_DIRECTIVE`].
    pub no_transaction: bool,
}

/// A versioned migration: an up script and its down script.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The 12-digit `YYYYMMDDHHMM` version.
    pub version: i64,
    /// The part of the file name after the version.
    pub slug: String,
    /// The up script.
    pub up: Script,
    /// The down script.
    pub down: Script,
    /// The checksum recorded in the history table when the migration is applied.
    ///
    /// It is refinery's checksum of the slug, version and normalized up SQL,
    /// so a file that only changed between CRLF and LF keeps its checksum.
    pub checksum: u64,
}

impl Migration {
    /// The refinery migration for the up script.
    pub(crate) fn refinery(&self) -> Result<refinery_core::Migration, Error> {
        refinery_core::Migration::unapplied(
            &format!("V{}__{}", self.version, self.slug),
            &self.up.sql,
        )
        .map_err(|e| Error::BadFileName {
            path: self.up.path.clone(),
            reason: format!("refinery cannot name this migration: {e}"),
        })
    }

    /// `VERSION_slug`, the way people refer to a migration.
    pub fn label(&self) -> String {
        format!("{}_{}", self.version, self.slug)
    }
}

/// All migrations of one folder, sorted by version.
#[derive(Debug, Clone)]
pub struct Source {
    dir: PathBuf,
    migrations: Vec<Migration>,
}

impl Source {
    /// Reads and checks every migration in `dir`.
    ///
    /// Every file must be named `YYYYMMDDHHMM_slug.up.sql` or
    /// `YYYYMMDDHHMM_slug.down.sql`; besides them only notes (`*.md`,
    /// `*.txt`, `README`) and hidden files (`.gitkeep`) may sit in the folder,
    /// and anything else is reported rather than skipped. Every up script
    /// needs its down script, versions must be unique, and a script without
    /// a statement must say it is empty on purpose ([`EMPTY_DIRECTIVE`]).
    pub fn load(dir: &Path) -> Result<Source, Error> {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut ups: BTreeMap<i64, (String, PathBuf)> = BTreeMap::new();
        let mut downs: BTreeMap<i64, (String, PathBuf)> = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::ReadDir {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            if !is_migration(&path)? {
                continue;
            }
            let name = FileName::parse(&path)?;
            let side = match name.direction {
                Direction::Up => &mut ups,
                Direction::Down => &mut downs,
            };
            if let Some((_, first)) = side.get(&name.version) {
                let (first, second) = ordered(first.clone(), path.clone());
                return Err(Error::DuplicateVersion {
                    version: name.version,
                    first,
                    second,
                });
            }
            side.insert(name.version, (name.slug, path));
        }
        let mut migrations = Vec::with_capacity(ups.len());
        for (version, (slug, up_path)) in &ups {
            let Some((down_slug, down_path)) = downs.get(version) else {
                return Err(Error::MissingPair {
                    path: up_path.clone(),
                    expected: format!("{version}_{slug}.down.sql"),
                });
            };
            if down_slug != slug {
                return Err(Error::DuplicateVersion {
                    version: *version,
                    first: up_path.clone(),
                    second: down_path.clone(),
                });
            }
            let up = read_script(up_path)?;
            let down = read_script(down_path)?;
            let mut migration = Migration {
                version: *version,
                slug: slug.clone(),
                up,
                down,
                checksum: 0,
            };
            migration.checksum = migration.refinery()?.checksum();
            migrations.push(migration);
        }
        if let Some((version, (slug, path))) =
            downs.iter().find(|(version, _)| !ups.contains_key(version))
        {
            return Err(Error::MissingPair {
                path: path.clone(),
                expected: format!("{version}_{slug}.up.sql"),
            });
        }
        Ok(Source {
            dir: dir.to_path_buf(),
            migrations,
        })
    }

    /// The folder the migrations came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The migrations, oldest first.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The migration with this version, if any.
    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }
}

fn ordered(a: PathBuf, b: PathBuf) -> (PathBuf, PathBuf) {
    if a <= b { (a, b) } else { (b, a) }
}

/// A parsed migration file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// The 12-digit version.
    pub version: i64,
    /// The slug.
    pub slug: String,
    /// Up or down.
    pub direction: Direction,
    /// The UTC time the version stands for.
    pub written_at: time::OffsetDateTime,
}

impl FileName {
    /// Parses `YYYYMMDDHHMM_slug.(up|down).sql`, naming what is wrong when it does not match.
    pub fn parse(path: &Path) -> Result<FileName, Error> {
        let bad = |reason: &str| Error::BadFileName {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad("the name is not UTF-8"))?;
        let (stem, direction) = if let Some(stem) = name.strip_suffix(".up.sql") {
            (stem, Direction::Up)
        } else if let Some(stem) = name.strip_suffix(".down.sql") {
            (stem, Direction::Down)
        } else {
            return Err(bad("it must end in .up.sql or .down.sql"));
        };
        let (digits, slug) = stem
            .split_once('_')
            .ok_or_else(|| bad("no '_' between version and slug"))?;
        if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the version must be 12 digits, YYYYMMDDHHMM"));
        }
        let written_at = version_time(digits).map_err(|part| {
            bad(&format!(
                "the version is not a valid YYYYMMDDHHMM UTC time: {part}"
            ))
        })?;
        if slug.is_empty()
            || !slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad("the slug must be lowercase letters, digits and '_'"));
        }
        let version = digits
            .parse()
            .map_err(|_| bad("the version is not a number"))?;
        Ok(FileName {
            version,
            slug: slug.to_string(),
            direction,
            written_at,
        })
    }
}

/// The UTC time that 12 ASCII digits, `YYYYMMDDHHMM`, stand for, or which part is out of range.
fn version_time(digits: &str) -> Result<time::OffsetDateTime, String> {
    let two = |at: usize| -> u8 { digits[at..at + 2].parse().expect("two ASCII digits") };
    let year: i32 = digits[..4].parse().expect("four ASCII digits");
    let (month, day, hour, minute) = (two(4), two(6), two(8), two(10));
    let month = time::Month::try_from(month)
        .map_err(|_| format!("its month, {month:02}, is not 01 to 12"))?;
    let date = time::Date::from_calendar_date(year, month, day)
        .map_err(|_| format!("its day, {day:02}, is not a day of {month} {year}"))?;
    let time = time::Time::from_hms(hour, minute, 0).map_err(|e| match e.name() {
        "hour" => format!("its hour, {hour:02}, is not 00 to 23"),
        _ => format!("its minute, {minute:02}, is not 00 to 59"),
    })?;
    Ok(time::PrimitiveDateTime::new(date, time).assume_utc())
}

/// Whether a folder entry is a migration file (`Ok(false)`: a note or hidden
/// file, which may sit there); anything else is an error naming it.
fn is_migration(path: &Path) -> Result<bool, Error> {
    let bad = |reason: &str| Error::BadFileName {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let named_like_one = name.ends_with(".up.sql") || name.ends_with(".down.sql");
    // Following a symbolic link; a loop or a dangling link is a read error.
    let metadata = std::fs::metadata(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if named_like_one {
        return if metadata.is_file() {
            Ok(true)
        } else {
            Err(bad("it is a folder, not a file"))
        };
    }
    let note = lower.ends_with(".md") || lower.ends_with(".txt") || lower == "readme";
    if name.starts_with('.') || (note && metadata.is_file()) {
        return Ok(false);
    }
    Err(bad(
        if lower.ends_with(".up.sql") || lower.ends_with(".down.sql") {
            "the extension must be written in lower case, .up.sql or .down.sql"
        } else if lower.trim_end().ends_with(".sql") && lower.trim_end() != lower {
            "the name ends in white space"
        } else if lower.ends_with(".sql") {
            "it must end in .up.sql or .down.sql"
        } else if metadata.is_dir() {
            "a folder in a migrations folder; migrations are files directly in it"
        } else {
            "only migrations, notes (*.md, *.txt, README) and hidden files (.gitkeep) may sit in a migrations folder"
        },
    ))
}

fn read_script(path: &Path) -> Result<Script, Error> {
    let raw = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let sql = normalize(&raw);
    if crate::split::split_statements(&sql).is_empty()
        && !sql.lines().any(|line| line.trim_end() == EMPTY_DIRECTIVE)
    {
        return Err(Error::EmptyScript {
            path: path.to_path_buf(),
        });
    }
    let no_transaction = sql
        .lines()
        .next()
        .is_some_and(|first| first.trim_end() == NO_TRANSACTION_DIRECTIVE);
    Ok(Script {
        path: path.to_path_buf(),
        sql,
        no_transaction,
    })
}

/// Normalizes line endings to `\n` and drops a UTF-8 byte-order mark, so that
/// checksums do not change when a file moves between Windows and Unix.
pub fn normalize(sql: &str) -> String {
    sql.strip_prefix('\u{feff}')
        .unwrap_or(sql)
        .replace("\r\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads a folder holding a valid pair and `extra` (a file, or with a
    /// trailing `/` a folder), and returns the error's text, if any.
    fn load_with(extra: &str, contents: &str) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("202501010000_a.up.sql"), "SELECT 1;").unwrap();
        std::fs::write(dir.path().join("202501010000_a.down.sql"), "SELECT 1;").unwrap();
        match extra.strip_suffix('/') {
            Some(folder) => std::fs::create_dir(dir.path().join(folder)).unwrap(),
            None => std::fs::write(dir.path().join(extra), contents).unwrap(),
        }
        Source::load(dir.path()).err().map(|e| e.to_string())
    }

    #[test]
    fn every_entry_of_a_migrations_folder_is_a_migration_a_note_or_reported() {
        for allowed in ["README.md", "README", "notes.txt", ".gitkeep"] {
            assert_eq!(load_with(allowed, "x"), None, "{allowed}");
        }
        for (entry, reason) in [
            ("202501010100_b.UP.SQL", "lower case"),
            ("202501010100_b.up.sql ", "white space"),
            ("202501010100_b.sql", "must end in .up.sql or .down.sql"),
            ("202501010100_b.up.sql/", "it is a folder"),
            ("old/", "a folder in a migrations folder"),
            ("schema.json", "only migrations, notes"),
        ] {
            let error =
                load_with(entry, "SELECT 1;").unwrap_or_else(|| panic!("{entry} was skipped"));
            assert!(error.contains(reason), "{entry}: {error}");
        }
    }

    #[test]
    fn a_symlink_loop_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("202501010000_a.up.sql"),
            dir.path().join("202501010000_a.up.sql"),
        )
        .unwrap();
        let error = Source::load(dir.path()).unwrap_err();
        assert!(matches!(error, Error::ReadFile { .. }), "{error}");
    }

    #[test]
    fn an_empty_script_is_refused_unless_marked() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("202501010000_a.up.sql");
        let down = dir.path().join("202501010000_a.down.sql");
        std::fs::write(&up, "CREATE TABLE a (id int);").unwrap();
        std::fs::write(&down, "-- later\n").unwrap();
        let error = Source::load(dir.path()).unwrap_err();
        assert!(
            matches!(error, Error::EmptyScript { ref path } if *path == down),
            "{error}"
        );
        std::fs::write(&down, "-- dbops:empty\n-- irreversible\n").unwrap();
        assert!(Source::load(dir.path()).is_ok());
    }

    fn check_name(name: &str, expected: Result<(i64, &str, Direction), &str>) {
        let got = FileName::parse(Path::new(name));
        match (got, expected) {
            (Ok(parsed), Ok((version, slug, direction))) => assert_eq!(
                (parsed.version, parsed.slug.as_str(), parsed.direction),
                (version, slug, direction),
                "{name}"
            ),
            (Err(Error::BadFileName { reason, .. }), Err(expected)) => {
                assert!(reason.contains(expected), "{name}: {reason}")
            }
            (got, expected) => panic!("{name}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn file_names() {
        check_name(
            "202511150001_core_entities.up.sql",
            Ok((202511150001, "core_entities", Direction::Up)),
        );
        check_name(
            "202511150001_core_entities.down.sql",
            Ok((202511150001, "core_entities", Direction::Down)),
        );
        check_name("20251115001_x.up.sql", Err("12 digits"));
        check_name("202511150001-x.up.sql", Err("no '_'"));
        check_name("202511150001_X.up.sql", Err("lowercase"));
        check_name("202511150001_x.sql", Err(".up.sql or .down.sql"));
        check_name("202511150001_.up.sql", Err("lowercase"));
    }

    #[test]
    fn versions_are_real_utc_times() {
        let ok = |name: &str, version: i64| check_name(name, Ok((version, "x", Direction::Up)));
        ok("202402291200_x.up.sql", 202402291200);
        ok("200002290000_x.up.sql", 200002290000);
        ok("202512312359_x.up.sql", 202512312359);
        ok("000001010000_x.up.sql", 1010000);
        let parsed = FileName::parse(Path::new("202402291201_x.down.sql")).unwrap();
        assert_eq!(
            parsed.written_at,
            time::macros::datetime!(2024-02-29 12:01 UTC)
        );
        let refused = "the version is not a valid YYYYMMDDHHMM UTC time: ";
        let check_refused =
            |name: &str, part: &str| check_name(name, Err(&format!("{refused}{part}")));
        check_refused("202513150001_x.up.sql", "its month, 13, is not 01 to 12");
        check_refused("202500150001_x.up.sql", "its month, 00, is not 01 to 12");
        check_refused(
            "202502311200_x.up.sql",
            "its day, 31, is not a day of February 2025",
        );
        check_refused(
            "202502291200_x.up.sql",
            "its day, 29, is not a day of February 2025",
        );
        check_refused(
            "190002290000_x.up.sql",
            "its day, 29, is not a day of February 1900",
        );
        check_refused(
            "202504310000_x.up.sql",
            "its day, 31, is not a day of April 2025",
        );
        check_refused(
            "202501000000_x.up.sql",
            "its day, 00, is not a day of January 2025",
        );
        check_refused("202501012400_x.up.sql", "its hour, 24, is not 00 to 23");
        check_refused("202501012360_x.up.sql", "its minute, 60, is not 00 to 59");
        check_refused("202501019999_x.down.sql", "its hour, 99, is not 00 to 23");
    }

    #[test]
    fn crlf_does_not_change_the_checksum() {
        let lf = tempfile::tempdir().unwrap();
        let crlf = tempfile::tempdir().unwrap();
        let write = |dir: &Path, sep: &str| {
            std::fs::write(
                dir.join("202501010000_a.up.sql"),
                format!("CREATE TABLE a (id bigint);{sep}SELECT 1;{sep}"),
            )
            .unwrap();
            std::fs::write(dir.join("202501010000_a.down.sql"), "DROP TABLE a;").unwrap();
        };
        write(lf.path(), "\n");
        write(crlf.path(), "\r\n");
        let a = Source::load(lf.path()).unwrap();
        let b = Source::load(crlf.path()).unwrap();
        assert_eq!(a.migrations()[0].checksum, b.migrations()[0].checksum);
    }

    #[test]
    fn directive_on_the_first_line_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("202501010000_a.up.sql"),
            "-- dbops:no-transaction\r\nCREATE INDEX CONCURRENTLY i ON t (c);",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("202501010000_a.down.sql"),
            "SELECT 1;\n-- dbops:no-transaction\n",
        )
        .unwrap();
        let source = Source::load(dir.path()).unwrap();
        assert!(source.migrations()[0].up.no_transaction);
        assert!(!source.migrations()[0].down.no_transaction);
    }
}
