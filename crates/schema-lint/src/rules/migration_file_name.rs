//! `migration-file-name`: files are named `<12-digit version>_<slug>.<up|down>.sql`, the version a
//! real UTC time, as the migration engine reads them (migrate-core's `FileName::parse`).

use crate::rules::{At, Family, Findings, MigrationSet, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct MigrationFileName;

static INFO: RuleInfo = RuleInfo {
    id: "migration-file-name",
    family: Family::MigrationHygiene,
    severity: Severity::Error,
    summary: "Migration files are named `YYYYMMDDHHMM_slug.up.sql` / `.down.sql` (lowercase snake_case slug).",
};

impl Rule for MigrationFileName {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        for (file, source) in set.sources.iter().enumerate() {
            let Err(problem) = &source.name else { continue };
            out.report(
                &INFO,
                At::File(file),
                format!("`{}` is not named like a migration: {problem}", source.file_name()),
            )
            .help("name it `<YYYYMMDDHHMM>_<slug>.up.sql` (and its `.down.sql`), the slug in lowercase snake_case");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check_files;

    #[test]
    fn names() {
        let ok = [
            ("202601010000_add_users.up.sql", ""),
            ("202601010000_add_users.down.sql", ""),
        ];
        check_files("migration-file-name", &ok, expect_test::expect![""]);
        let bad = [
            ("2026010100_AddUsers.up.sql", ""),
            ("202601010000_add-users.down.sql", ""),
            ("202613010000_bad_month.up.sql", ""),
            ("202602290000_leap.up.sql", ""),
        ];
        check_files(
            "migration-file-name",
            &bad,
            expect_test::expect![[r#"
            error[migration-file-name]: `202601010000_add-users.down.sql` is not named like a migration: the slug must be lowercase letters, digits and '_'
              --> 202601010000_add-users.down.sql
               = help: name it `<YYYYMMDDHHMM>_<slug>.up.sql` (and its `.down.sql`), the slug in lowercase snake_case
            error[migration-file-name]: `2026010100_AddUsers.up.sql` is not named like a migration: the version must be 12 digits, YYYYMMDDHHMM
              --> 2026010100_AddUsers.up.sql
               = help: name it `<YYYYMMDDHHMM>_<slug>.up.sql` (and its `.down.sql`), the slug in lowercase snake_case
            error[migration-file-name]: `202602290000_leap.up.sql` is not named like a migration: the version is not a valid YYYYMMDDHHMM UTC time: its day, 29, is not a day of February 2026
              --> 202602290000_leap.up.sql
               = help: name it `<YYYYMMDDHHMM>_<slug>.up.sql` (and its `.down.sql`), the slug in lowercase snake_case
            error[migration-file-name]: `202613010000_bad_month.up.sql` is not named like a migration: the version is not a valid YYYYMMDDHHMM UTC time: its month, 13, is not 01 to 12
              --> 202613010000_bad_month.up.sql
               = help: name it `<YYYYMMDDHHMM>_<slug>.up.sql` (and its `.down.sql`), the slug in lowercase snake_case
        "#]],
        );
    }
}
