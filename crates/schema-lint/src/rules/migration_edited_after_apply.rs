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
        for applied in live.history {
            let (Some(recorded), Some(current)) =
                (applied.applied_checksum, applied.current_checksum)
            else {
                continue;
            };
            if recorded == current {
                continue;
            }
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
                    "migration {:012}_{} was edited after it was applied (checksum {recorded} when applied, {current} now)",
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
        let entry = |version, applied_checksum, current_checksum| AppliedMigration {
            version,
            name: "core".into(),
            applied_checksum,
            current_checksum,
            path: Some(format!("m/{version}_core.up.sql").into()),
        };
        let history = [
            entry(202601010000, Some(1), Some(1)),
            entry(202601020000, Some(1), Some(2)),
            entry(202601030000, Some(1), None),
        ];
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
            error[migration-edited-after-apply]: migration 202601020000_core was edited after it was applied (checksum 1 when applied, 2 now)
              --> m/202601020000_core.up.sql
               = help: restore the applied text and put the change in a new migration
        "#]],
        );
    }
}
