//! `migration-version-order`: versions are unique, and (with `--db`) no pending migration is older than an applied one.

use std::collections::HashMap;

use migrate_core::source::Direction;

use crate::rules::{At, Family, Findings, LiveView, MigrationSet, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct MigrationVersionOrder;

static INFO: RuleInfo = RuleInfo {
    id: "migration-version-order",
    family: Family::MigrationHygiene,
    severity: Severity::Error,
    summary: "Migration versions are unique and increase: a new migration is newer than every applied one.",
};

impl Rule for MigrationVersionOrder {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        let ups: Vec<(usize, i64, &str)> = set
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.name
                    .as_ref()
                    .ok()
                    .filter(|n| n.direction == Direction::Up)
                    .map(|n| (i, n.version, s.file_name()))
            })
            .collect();
        // The first file of each version, in file order.
        let mut first_of: HashMap<i64, &str> = HashMap::new();
        for &(file, version, name) in &ups {
            let first = *first_of.entry(version).or_insert(name);
            if first != name {
                out.report(&INFO, At::File(file), format!("`{name}` has the same version as `{first}`"))
                    .help("give each migration its own version: the UTC time it was written, YYYYMMDDHHMM");
            }
        }
    }

    fn check_live(&self, live: &LiveView<'_>, out: &mut Findings) {
        let Some(newest) = live.history.iter().map(|m| m.version).max() else {
            return;
        };
        for pending in live.pending.iter().filter(|p| p.version < newest) {
            out.report(
                &INFO,
                At::Path(pending.path.clone()),
                format!("pending migration {} is older than applied migration {newest}", pending.version),
            )
            .help("rename it to a version newer than every applied migration, so every database applies migrations in the same order");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::{LiveExtras, check_files, check_live_with};
    use crate::{AppliedMigration, Config, PendingMigration};

    #[test]
    fn duplicate_versions() {
        let files = [
            ("202601010000_a.up.sql", ""),
            ("202601010000_a.down.sql", ""),
            ("202601010000_b.up.sql", ""),
            ("202601010000_b.down.sql", ""),
        ];
        check_files(
            "migration-version-order",
            &files,
            expect_test::expect![[r#"
            error[migration-version-order]: `202601010000_b.up.sql` has the same version as `202601010000_a.up.sql`
              --> 202601010000_b.up.sql
               = help: give each migration its own version: the UTC time it was written, YYYYMMDDHHMM
        "#]],
        );
    }

    #[test]
    fn pending_older_than_applied() {
        let applied = |version| AppliedMigration {
            version,
            name: "x".into(),
            changed_since_applied: false,
            path: None,
        };
        let history = [applied(202601010000), applied(202603010000)];
        let pending = [
            PendingMigration {
                version: 202602010000,
                path: "m/202602010000_late.up.sql".into(),
            },
            PendingMigration {
                version: 202604010000,
                path: "m/202604010000_new.up.sql".into(),
            },
        ];
        let extras = LiveExtras {
            history: &history,
            pending: &pending,
        };
        check_live_with(
            &Config::default(),
            "migration-version-order",
            "",
            extras,
            expect_test::expect![[r#"
            error[migration-version-order]: pending migration 202602010000 is older than applied migration 202603010000
              --> m/202602010000_late.up.sql
               = help: rename it to a version newer than every applied migration, so every database applies migrations in the same order
        "#]],
        );
    }
}
