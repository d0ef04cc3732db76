//! `migration-file-name`: files are named `<12-digit version>_<slug>.<up|down>.sql`.

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
        for (file, source) in set
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name.is_none())
        {
            out.report(
                &INFO,
                At::File(file),
                format!("`{}` is not named like a migration", source.file_name()),
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
        ];
        check_files(
            "migration-file-name",
            &bad,
            expect_test::expect![[r#"
            error[migration-file-name]: `202601010000_add-users.down.sql` is not named like a migration
              --> 202601010000_add-users.down.sql
               = help: name it `<YYYYMMDDHHMM>_<slug>.up.sql` (and its `.down.sql`), the slug in lowercase snake_case
            error[migration-file-name]: `2026010100_AddUsers.up.sql` is not named like a migration
              --> 2026010100_AddUsers.up.sql
               = help: name it `<YYYYMMDDHHMM>_<slug>.up.sql` (and its `.down.sql`), the slug in lowercase snake_case
        "#]],
        );
    }
}
