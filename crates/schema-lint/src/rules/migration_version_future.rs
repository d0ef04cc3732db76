//! `migration-version-future`: a version is a real UTC time (`YYYYMMDDHHMM`) that is not in the future.

use time::{Date, Month, PrimitiveDateTime, Time};

use crate::rules::{At, Family, Findings, MigrationSet, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct MigrationVersionFuture;

static INFO: RuleInfo = RuleInfo {
    id: "migration-version-future",
    family: Family::MigrationHygiene,
    severity: Severity::Error,
    summary: "A migration's version is the UTC time it was written, YYYYMMDDHHMM, and not in the future.",
};

/// The UTC time a version stands for, if it is a valid `YYYYMMDDHHMM`.
fn version_time(version: u64) -> Option<time::OffsetDateTime> {
    let digits = format!("{version:012}");
    let field = |range: std::ops::Range<usize>| digits[range].parse::<u16>().ok();
    let date = Date::from_calendar_date(
        i32::from(field(0..4)?),
        Month::try_from(u8::try_from(field(4..6)?).ok()?).ok()?,
        u8::try_from(field(6..8)?).ok()?,
    )
    .ok()?;
    let time = Time::from_hms(
        u8::try_from(field(8..10)?).ok()?,
        u8::try_from(field(10..12)?).ok()?,
        0,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

impl Rule for MigrationVersionFuture {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        let latest = set.now + set.config.future_version_tolerance;
        for (file, source) in set.sources.iter().enumerate() {
            let Some(name) = &source.name else { continue };
            match version_time(name.version) {
                None => {
                    out.report(
                        &INFO,
                        At::File(file),
                        format!(
                            "version {:012} is not a valid YYYYMMDDHHMM time",
                            name.version
                        ),
                    )
                    .help("use the UTC time the migration was written, e.g. `date -u +%Y%m%d%H%M`");
                }
                Some(at) if at > latest => {
                    out.report(&INFO, At::File(file), format!("version {:012} is in the future", name.version)).help(
                        "a future version sorts after migrations written later and makes them look out of order; use the current UTC time",
                    );
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check_files;

    #[test]
    fn versions() {
        // The tests' clock is 2026-06-01 12:00 UTC; one hour of skew is tolerated.
        let files = [
            ("202606011259_ok.up.sql", ""),
            ("202606011301_future.up.sql", ""),
            ("202613010000_bad_month.up.sql", ""),
        ];
        check_files(
            "migration-version-future",
            &files,
            expect_test::expect![[r#"
            error[migration-version-future]: version 202606011301 is in the future
              --> 202606011301_future.up.sql
               = help: a future version sorts after migrations written later and makes them look out of order; use the current UTC time
            error[migration-version-future]: version 202613010000 is not a valid YYYYMMDDHHMM time
              --> 202613010000_bad_month.up.sql
               = help: use the UTC time the migration was written, e.g. `date -u +%Y%m%d%H%M`
        "#]],
        );
    }
}
