//! `migration-missing-down`: every `.up.sql` has its `.down.sql`, and every `.down.sql` its `.up.sql`.

use std::collections::HashSet;

use migrate_core::source::Direction;

use crate::rules::{At, Family, Findings, MigrationSet, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct MigrationMissingDown;

static INFO: RuleInfo = RuleInfo {
    id: "migration-missing-down",
    family: Family::MigrationHygiene,
    severity: Severity::Error,
    summary: "Every `.up.sql` has a `.down.sql` of the same version and slug, and the other way round.",
};

impl Rule for MigrationMissingDown {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        // Every (version, slug, direction) of the folder, so that each file finds its pair at once.
        let present: HashSet<(i64, &str, bool)> = set
            .sources
            .iter()
            .filter_map(|s| s.name.as_ref().ok())
            .map(|n| (n.version, n.slug.as_str(), n.direction == Direction::Up))
            .collect();
        for (file, source) in set.sources.iter().enumerate() {
            let Ok(name) = &source.name else { continue };
            let has_pair = present.contains(&(
                name.version,
                name.slug.as_str(),
                name.direction != Direction::Up,
            ));
            if has_pair {
                continue;
            }
            let (missing, what) = match name.direction {
                Direction::Up => ("down", "undoes"),
                Direction::Down => ("up", "it undoes"),
            };
            let sibling = format!("{:012}_{}.{missing}.sql", name.version, name.slug);
            out.report(
                &INFO,
                At::File(file),
                format!("`{}` has no `{sibling}`", source.file_name()),
            )
            .help(match name.direction {
                Direction::Up => format!("add `{sibling}`, which {what} it completely"),
                Direction::Down => format!("add `{sibling}` ({what}), or remove this file"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check_files;

    #[test]
    fn pairs() {
        let complete = [
            ("202601010000_a.up.sql", ""),
            ("202601010000_a.down.sql", ""),
        ];
        check_files(
            "migration-missing-down",
            &complete,
            expect_test::expect![""],
        );
        let lonely = [
            ("202601010000_a.up.sql", ""),
            ("202601020000_b.down.sql", ""),
            ("202601030000_c.up.sql", ""),
            ("202601030000_d.down.sql", ""),
        ];
        check_files(
            "migration-missing-down",
            &lonely,
            expect_test::expect![[r#"
            error[migration-missing-down]: `202601010000_a.up.sql` has no `202601010000_a.down.sql`
              --> 202601010000_a.up.sql
               = help: add `202601010000_a.down.sql`, which undoes it completely
            error[migration-missing-down]: `202601020000_b.down.sql` has no `202601020000_b.up.sql`
              --> 202601020000_b.down.sql
               = help: add `202601020000_b.up.sql` (it undoes), or remove this file
            error[migration-missing-down]: `202601030000_c.up.sql` has no `202601030000_c.down.sql`
              --> 202601030000_c.up.sql
               = help: add `202601030000_c.down.sql`, which undoes it completely
            error[migration-missing-down]: `202601030000_d.down.sql` has no `202601030000_d.up.sql`
              --> 202601030000_d.down.sql
               = help: add `202601030000_d.up.sql` (it undoes), or remove this file
        "#]],
        );
    }
}
