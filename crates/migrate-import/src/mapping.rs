//! Each imported migration's dbops version and slug, and the mapping file
//! that records them.
//!
//! The rule, applied to the migrations in the tool's own order:
//!
//! 1. **timestamp**: a version of 12 or more digits whose first twelve are a
//!    valid `YYYYMMDDHHMM` UTC time keeps that minute (seconds dropped);
//! 2. **sequence**: any other single number `n` below 1,000,000,000 becomes
//!    the minute `n` minutes after 2000-01-01 00:00 UTC (`1` ->
//!    `200001010001`), so a sequence keeps its gaps and a file added later
//!    maps the same way;
//! 3. **next-minute**: a version that fits neither (Flyway's `1.2`, a
//!    timestamp with day `00`), or whose minute is not after the previous
//!    migration's (several migrations in one minute), takes the minute after
//!    the previous migration's, the first one 2000-01-01 00:00.
//!
//! The result is deterministic and keeps the tool's order; no two
//! migrations share a version. Slugs are the name after the version in
//! lowercase, every run of other characters than letters and digits made
//! one `_` (`Add users-table` -> `add_users_table`), `migration` when
//! nothing is left.

use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::{Conversion, OldMigration, Tool};

/// How a migration got its dbops version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The minute of the tool's timestamp version.
    Timestamp,
    /// 2000-01-01 00:00 UTC plus the tool's sequence number, in minutes.
    Sequence,
    /// The minute after the previous migration's.
    NextMinute,
}

impl Rule {
    /// The rule's name in the mapping file.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Timestamp => "timestamp",
            Rule::Sequence => "sequence",
            Rule::NextMinute => "next-minute",
        }
    }
}

/// One migration with its dbops name.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The migration as the tool sees it.
    pub old: OldMigration,
    /// The dbops version, `YYYYMMDDHHMM`.
    pub version: i64,
    /// The dbops slug.
    pub slug: String,
    /// How the version was chosen.
    pub rule: Rule,
}

/// 2000-01-01 00:00 UTC, where sequences start.
fn epoch() -> OffsetDateTime {
    PrimitiveDateTime::new(
        time::Date::from_calendar_date(2000, time::Month::January, 1).expect("a valid date"),
        time::Time::MIDNIGHT,
    )
    .assume_utc()
}

/// Gives each migration (sorted by the tool's order) its version and slug.
pub(crate) fn assign(old: Vec<OldMigration>) -> Vec<Imported> {
    let mut previous: Option<OffsetDateTime> = None;
    old.into_iter()
        .map(|old| {
            let wanted = timestamp(&old.version)
                .map(|at| (at, Rule::Timestamp))
                .or_else(|| sequence(&old.key).map(|at| (at, Rule::Sequence)));
            let (at, rule) = match (wanted, previous) {
                (Some((at, rule)), Some(previous)) if at > previous => (at, rule),
                (Some(wanted), None) => wanted,
                (_, Some(previous)) => (previous + Duration::minutes(1), Rule::NextMinute),
                (None, None) => (epoch(), Rule::NextMinute),
            };
            previous = Some(at);
            Imported {
                version: version_of(at),
                slug: slug(&old.name),
                rule,
                old,
            }
        })
        .collect()
}

/// The minute of a version of 12 or more digits that starts with a valid
/// `YYYYMMDDHHMM`.
fn timestamp(version: &str) -> Option<OffsetDateTime> {
    let digits = version.replace('-', "");
    if digits.len() < 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> { digits[range].parse().ok() };
    let year = i32::try_from(number(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let day = u8::try_from(number(6..8)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let at = time::Time::from_hms(
        u8::try_from(number(8..10)?).ok()?,
        u8::try_from(number(10..12)?).ok()?,
        0,
    )
    .ok()?;
    (year >= 1000).then(|| PrimitiveDateTime::new(date, at).assume_utc())
}

/// 2000-01-01 plus `n` minutes, for a single number below 1,000,000,000.
fn sequence(key: &[u64]) -> Option<OffsetDateTime> {
    match key {
        [n] if *n < 1_000_000_000 => Some(epoch() + Duration::minutes(i64::try_from(*n).ok()?)),
        _ => None,
    }
}

fn version_of(at: OffsetDateTime) -> i64 {
    migrate_core::scaffold::format_version(at)
        .parse()
        .expect("twelve digits")
}

/// A dbops slug from a tool's migration name.
pub fn slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    let slug = slug.trim_matches('_');
    if slug.is_empty() {
        "migration".to_string()
    } else {
        slug.to_string()
    }
}

/// The up and down files of one converted migration.
pub(crate) fn scripts(tool: Tool, migration: &Imported) -> (String, String) {
    let old = &migration.old;
    let origin = format!(
        "-- Imported from {} migration {} ({}); see {}.\n",
        tool.name(),
        old.version,
        old.name,
        tool.mapping_file()
    );
    let up = script(&origin, &old.up.sql, old.up.no_transaction, "");
    let down = match &old.down {
        Some(down) => script(
            &origin,
            &down.sql,
            down.no_transaction,
            &format!("-- The {} down migration was empty.\n", tool.name()),
        ),
        None => format!(
            "{origin}-- {} had no down migration for it: rolling it back fails until one is written here.\n\
             DO $$ BEGIN RAISE EXCEPTION 'migration {}_{} was imported from {} without a down migration'; END $$;\n",
            tool.name(),
            migration.version,
            migration.slug,
            tool.name()
        ),
    };
    (up, down)
}

fn script(origin: &str, sql: &str, no_transaction: bool, empty_note: &str) -> String {
    let mut text = String::new();
    if no_transaction {
        text.push_str(migrate_core::source::NO_TRANSACTION_DIRECTIVE);
        text.push('\n');
    }
    text.push_str(origin);
    let body = sql.trim_matches('\n');
    if migrate_core::split::split_statements(body).is_empty() {
        text.push_str(migrate_core::source::EMPTY_DIRECTIVE);
        text.push('\n');
        text.push_str(empty_note);
    }
    if !body.is_empty() {
        text.push_str(body);
        text.push('\n');
    }
    text
}

/// The mapping file: one row per migration, old version and name to new
/// version and slug, with the rule used.
pub(crate) fn render(conversion: &Conversion) -> String {
    let tool = conversion.tool.name();
    let mut text = format!(
        "# Migrations imported from {tool}\n\n\
         Written by `dbops migrate import --from {tool}`; commit it with the migrations.\n\
         Each {tool} migration became the dbops pair named by its new version and slug.\n\
         The version rule (docs/adopting.md): `timestamp` keeps the minute of a\n\
         timestamp version, `sequence` counts minutes from 2000-01-01 00:00 UTC,\n\
         `next-minute` takes the minute after the previous migration's.\n\
         The checksums in dbops's history cover the new version and slug, so this\n\
         mapping is permanent: do not rename these files.\n\n\
         | {tool} version | {tool} name | dbops version | dbops slug | rule |\n\
         |---|---|---|---|---|\n"
    );
    for migration in &conversion.migrations {
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            migration.old.version,
            migration.old.name.replace('|', "\\|"),
            migration.version,
            migration.slug,
            migration.rule.name()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Script;

    fn old(version: &str, name: &str) -> OldMigration {
        OldMigration {
            version: version.to_string(),
            name: name.to_string(),
            files: Vec::new(),
            up: Script {
                sql: String::new(),
                no_transaction: false,
            },
            down: None,
            key: crate::files::version_key(version).unwrap(),
        }
    }

    fn check(versions: &[&str], expected: &[(i64, &str)]) {
        let assigned: Vec<(i64, &str)> = assign(versions.iter().map(|v| old(v, "x")).collect())
            .iter()
            .map(|m| (m.version, m.rule.name()))
            .collect();
        assert_eq!(assigned, expected, "{versions:?}");
    }

    #[test]
    fn versions_keep_order_and_never_collide() {
        // Timestamps keep their minute; several in one minute move on.
        check(
            &[
                "20240101120000",
                "20240101120030",
                "20240101120059",
                "20240101120100",
            ],
            &[
                (202401011200, "timestamp"),
                (202401011201, "next-minute"),
                (202401011202, "next-minute"),
                (202401011203, "next-minute"),
            ],
        );
        // Sequences count minutes from 2000-01-01, keeping gaps; an
        // all-zero setup version is the epoch itself.
        check(
            &["00000000000000", "1", "2", "10"],
            &[
                (200001010000, "sequence"),
                (200001010001, "sequence"),
                (200001010002, "sequence"),
                (200001010010, "sequence"),
            ],
        );
        // A day 00, dotted versions and a mix of both kinds.
        check(
            &["3", "20190100120000", "20190102120000"],
            &[
                (200001010003, "sequence"),
                (200001010004, "next-minute"),
                (201901021200, "timestamp"),
            ],
        );
        check(
            &["1.1", "1.2", "1.10"],
            &[
                (200001010000, "next-minute"),
                (200001010001, "next-minute"),
                (200001010002, "next-minute"),
            ],
        );
        // Longer than minutes: goose's 14 digits, a 17-digit one.
        check(
            &["20230615093012", "20230615093512345"],
            &[(202306150930, "timestamp"), (202306150935, "timestamp")],
        );
    }

    #[test]
    fn slugs_follow_dbops_rules() {
        for (name, expected) in [
            ("create_users", "create_users"),
            ("Add users-table", "add_users_table"),
            ("  __weird__ ", "weird"),
            ("Grüße", "gr_e"),
            ("", "migration"),
            ("__", "migration"),
        ] {
            assert_eq!(slug(name), expected, "{name:?}");
        }
    }
}
