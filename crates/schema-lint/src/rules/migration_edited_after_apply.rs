//! `migration-edited-after-apply` (`--db`): no applied migration's file changed since it was applied.

use crate::rules::{At, Family, Findings, LiveView, Rule, RuleInfo};
use crate::violation::Severity;

pub(crate) struct MigrationEditedAfterApply;

static INFO: RuleInfo = RuleInfo {
    id: "migration-edited-after-apply",
    family: Family::MigrationHygiene,
    severity: Severity::Error,
    summary: "An applied migration's file is never edited: databases that applied the old text would differ.",
};

impl Rule for MigrationEditedAfterApply {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_live(&self, live: &LiveView<'_>, out: &mut Findings) {
        for applied in live.history.iter().filter(|m| m.changed_since_applied) {
            let at = match &applied.path {
                Some(path) => At::Path(path.clone()),
                None => At::Object(format!(
                    "migration {:012}_{}",
                    applied.version, applied.name
                )),
            };
            out.report(
                &INFO,
                at,
                format!(
                    "migration {:012}_{} was edited after it was applied (its checksum differs from the history's)",
                    applied.version, applied.name
                ),
            )
            .help("restore the applied text and put the change in a new migration");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::{LiveExtras, check_live_with};
    use crate::{AppliedMigration, Config};

    #[test]
    fn edited_files() {
        let entry = |version, changed_since_applied| AppliedMigration {
            version,
            name: "core".into(),
            changed_since_applied,
            path: Some(format!("m/{version}_core.up.sql").into()),
        };
        let history = [entry(202601010000, false), entry(202601020000, true)];
        let extras = LiveExtras {
            history: &history,
            pending: &[],
        };
        check_live_with(
            &Config::default(),
            "migration-edited-after-apply",
            "",
            extras,
            expect_test::expect![[r#"
                error[migration-edited-after-apply]: migration 202601020000_core was edited after it was applied (its checksum differs from the history's)
                  --> m/202601020000_core.up.sql
                   = help: restore the applied text and put the change in a new migration
            "#]],
        );
    }
}
