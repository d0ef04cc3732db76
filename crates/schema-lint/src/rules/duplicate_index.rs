//! `duplicate-index`: no index duplicates another, or is a leading part of another (redundant).

use catalog::model::Index;

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::violation::Severity;

pub(crate) struct DuplicateIndex;

static INFO: RuleInfo = RuleInfo {
    id: "duplicate-index",
    family: Family::Indexes,
    severity: Severity::Error,
    summary: "No index duplicates another or is made redundant by one whose leading columns are its columns.",
};

/// Whether `a` and `b` can serve the same lookups: same method and predicate.
fn comparable(a: &Index, b: &Index) -> bool {
    a.method == b.method && a.predicate == b.predicate
}

impl Rule for DuplicateIndex {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for (i, index) in table.indexes.iter().enumerate() {
                // One finding per index is enough: the first index that makes it redundant.
                for (j, other) in table.indexes.iter().enumerate() {
                    if i == j || !comparable(index, other) {
                        continue;
                    }
                    let same = index.columns == other.columns;
                    // Report a duplicate once: on the one that is not a constraint's, else on the later name.
                    if same && index.unique == other.unique {
                        let report_this =
                            match (index.constraint.is_some(), other.constraint.is_some()) {
                                (false, true) => true,
                                (true, false) => false,
                                _ => i > j,
                            };
                        if report_this {
                            out.report(
                                &INFO,
                                view.index_at(table, index),
                                format!("index `{}` duplicates `{}`", index.name, other.name),
                            )
                            .help("drop one: every index slows down writes and takes space");
                            break;
                        }
                        continue;
                    }
                    let prefix = index.columns.len() < other.columns.len()
                        && other.columns.starts_with(&index.columns)
                        || same && !index.unique && other.unique;
                    if prefix && !index.unique && index.constraint.is_none() {
                        out.report(
                            &INFO,
                            view.index_at(table, index),
                            format!(
                                "index `{}` ({}) is redundant with `{}` ({})",
                                index.name,
                                index.columns.join(", "),
                                other.name,
                                other.columns.join(", ")
                            ),
                        )
                        .help(format!(
                            "`{}` serves the same lookups: drop `{}`",
                            other.name, index.name
                        ));
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn duplicates_and_prefixes() {
        check(
            "duplicate-index",
            "CREATE TABLE users (id bigint PRIMARY KEY, org_id bigint, email text, CONSTRAINT users_org_id_email_key UNIQUE (org_id, email));
             CREATE INDEX users_org_id_idx ON users (org_id);
             CREATE INDEX users_org_id_email_idx ON users (org_id, email);
             CREATE INDEX users_email_idx ON users (email);
             CREATE INDEX users_email_partial_idx ON users (email) WHERE org_id IS NULL;
             CREATE INDEX users_email_hash_idx ON users USING hash (email);
             CREATE UNIQUE INDEX users_id_key ON users (id);",
            expect_test::expect![[r#"
                error[duplicate-index]: index `users_org_id_idx` (org_id) is redundant with `users_org_id_email_idx` (org_id, email)
                  --> 202601010000_a.up.sql:2:14
                   |
                 2 |              CREATE INDEX users_org_id_idx ON users (org_id);
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: `users_org_id_email_idx` serves the same lookups: drop `users_org_id_idx`
                error[duplicate-index]: index `users_org_id_email_idx` (org_id, email) is redundant with `users_org_id_email_key` (org_id, email)
                  --> 202601010000_a.up.sql:3:14
                   |
                 3 |              CREATE INDEX users_org_id_email_idx ON users (org_id, email);
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: `users_org_id_email_key` serves the same lookups: drop `users_org_id_email_idx`
                error[duplicate-index]: index `users_id_key` duplicates `users_pkey`
                  --> 202601010000_a.up.sql:7:14
                   |
                 7 |              CREATE UNIQUE INDEX users_id_key ON users (id);
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: drop one: every index slows down writes and takes space
            "#]],
        );
    }
}
