//! `foreign-key-without-index`: every foreign key's columns lead some index (a unique constraint's counts).

use catalog::model::ConstraintKind;

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct ForeignKeyWithoutIndex;

static INFO: RuleInfo = RuleInfo {
    id: "foreign-key-without-index",
    family: Family::Indexes,
    severity: Severity::Error,
    summary: "Every foreign key is covered by an index whose leading columns are the key's columns.",
};

impl Rule for ForeignKeyWithoutIndex {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for constraint in table
                .constraints
                .iter()
                .filter(|c| matches!(c.kind, ConstraintKind::ForeignKey(_)))
            {
                let n = constraint.columns.len();
                let covered = table.indexes.iter().any(|index| {
                    index.columns.len() >= n
                        && index.columns[..n]
                            .iter()
                            .all(|c| constraint.columns.contains(c))
                });
                if !covered {
                    let columns = constraint.columns.join(", ");
                    out.report(
                        &INFO,
                        view.constraint_at(table, constraint),
                        format!("foreign key `{}` ({columns}) has no index leading with its columns", constraint.name),
                    )
                    .help(format!(
                        "deleting or updating a referenced row scans `{}` without one: `CREATE INDEX {}_{}_idx ON {} ({columns})`",
                        table.name,
                        table.name,
                        constraint.columns.join("_"),
                        table.name
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn coverage() {
        check(
            "foreign-key-without-index",
            "CREATE TABLE orgs (id bigint PRIMARY KEY);
             CREATE TABLE users (id bigint PRIMARY KEY, org_id bigint REFERENCES orgs, team_id bigint, boss_id bigint,
                 CONSTRAINT users_org_id_id_key UNIQUE (org_id, id),
                 CONSTRAINT users_team_id_fkey FOREIGN KEY (team_id) REFERENCES orgs (id),
                 CONSTRAINT users_boss_id_fkey FOREIGN KEY (boss_id) REFERENCES orgs (id));
             CREATE INDEX users_id_team_id_idx ON users (id, team_id);
             CREATE INDEX users_boss_id_idx ON users (boss_id) WHERE boss_id IS NOT NULL;",
            expect_test::expect![[r#"
                error[foreign-key-without-index]: foreign key `users_team_id_fkey` (team_id) has no index leading with its columns
                  --> 202601010000_a.up.sql:4:18
                   |
                 2 |              CREATE TABLE users (id bigint PRIMARY KEY, org_id bigint REFERENCES orgs, team_id bigint, boss_id bigint,
                   | ...
                 4 |                  CONSTRAINT users_team_id_fkey FOREIGN KEY (team_id) REFERENCES orgs (id),
                   |                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: deleting or updating a referenced row scans `users` without one: `CREATE INDEX users_team_id_idx ON users (team_id)`
            "#]],
        );
    }
}
