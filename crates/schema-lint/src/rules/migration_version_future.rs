//! `migration-version-future`: a version, the UTC time (`YYYYMMDDHHMM`) a migration was written, is not in the future.

use crate::rules::{At, Family, Findings, MigrationSet, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct MigrationVersionFuture;

static INFO: RuleInfo = RuleInfo {
    id: "migration-version-future",
    family: Family::MigrationHygiene,
    severity: Severity::Error,
    summary: "A migration's version is the UTC time it was written, YYYYMMDDHHMM, and not in the future.",
};

impl Rule for MigrationVersionFuture {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        let latest = set.now + set.config.future_version_tolerance;
        for (file, source) in set.sources.iter().enumerate() {
            // A version that is no real time is not a migration's name at
            // all: `migration-file-name` reports it.
            let Ok(name) = &source.name else { continue };
            if name.written_at > latest {
                out.report(&INFO, At::File(file), format!("version {:012} is in the future", name.version)).help(
                    "a future version sorts after migrations written later and makes them look out of order; use the current UTC time",
                );
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
        // A version that is no real time is `migration-file-name`'s finding.
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
        "#]],
        );
    }
}
