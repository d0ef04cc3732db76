//! `partition-key-not-in-unique`: on a partitioned table, the partition key is part of the primary key and of every unique constraint and index.

use catalog::model::ConstraintKind;
use squawk_syntax::SyntaxKind;

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::syntax::referenced_names;
use crate::violation::Severity;

pub(crate) struct PartitionKeyInUnique;

static INFO: RuleInfo = RuleInfo {
    id: "partition-key-not-in-unique",
    family: Family::Partitions,
    severity: Severity::Error,
    summary: "The partition key is part of the primary key and of every unique constraint of a partitioned table.",
};

/// The columns of a partition key as `pg_get_partkeydef` prints it (`RANGE (occurred_at)`).
pub(crate) fn partition_key_columns(key: &str) -> Vec<String> {
    let tree = squawk_syntax::SourceFile::parse(&format!("CREATE TABLE t () PARTITION BY {key};"))
        .syntax_node();
    tree.descendants()
        .find(|n| n.kind() == SyntaxKind::PARTITION_ITEM_LIST)
        .map(|list| referenced_names(&list))
        .unwrap_or_default()
}

impl Rule for PartitionKeyInUnique {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            let Some(partitioning) = &table.partitioning else {
                continue;
            };
            let key = partition_key_columns(&partitioning.key);
            let missing = |columns: &[String]| {
                key.iter()
                    .filter(|k| !columns.contains(k))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            for constraint in &table.constraints {
                if !matches!(
                    constraint.kind,
                    ConstraintKind::PrimaryKey | ConstraintKind::Unique
                ) {
                    continue;
                }
                let absent = missing(&constraint.columns);
                if !absent.is_empty() {
                    out.report(
                        &INFO,
                        view.constraint_at(table, constraint),
                        format!("`{}` on partitioned `{}` does not include the partition key ({})", constraint.name, table.name, absent.join(", ")),
                    )
                    .help("PostgreSQL enforces uniqueness per partition: add the partition key columns");
                }
            }
            for index in table
                .indexes
                .iter()
                .filter(|i| i.unique && i.constraint.is_none())
            {
                let absent = missing(&index.columns);
                if !absent.is_empty() {
                    out.report(
                        &INFO,
                        view.index_at(table, index),
                        format!("unique index `{}` on partitioned `{}` does not include the partition key ({})", index.name, table.name, absent.join(", ")),
                    )
                    .help("PostgreSQL enforces uniqueness per partition: add the partition key columns");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn partition_key() {
        assert_eq!(
            super::partition_key_columns("RANGE (occurred_at)"),
            ["occurred_at"]
        );
        check(
            "partition-key-not-in-unique",
            "CREATE TABLE events (id bigint, at timestamptz, request_id uuid,
                 CONSTRAINT events_pkey PRIMARY KEY (id),
                 CONSTRAINT events_request_id_at_key UNIQUE (request_id, at)) PARTITION BY RANGE (at);
             CREATE UNIQUE INDEX events_request_id_key ON events (request_id);",
            expect_test::expect![[r#"
                error[partition-key-not-in-unique]: `events_pkey` on partitioned `events` does not include the partition key (at)
                  --> 202601010000_a.up.sql:2:18
                   |
                 1 | CREATE TABLE events (id bigint, at timestamptz, request_id uuid,
                 2 |                  CONSTRAINT events_pkey PRIMARY KEY (id),
                   |                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: PostgreSQL enforces uniqueness per partition: add the partition key columns
                error[partition-key-not-in-unique]: unique index `events_request_id_key` on partitioned `events` does not include the partition key (at)
                  --> 202601010000_a.up.sql:4:14
                   |
                 4 |              CREATE UNIQUE INDEX events_request_id_key ON events (request_id);
                   |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: PostgreSQL enforces uniqueness per partition: add the partition key columns
            "#]],
        );
    }
}
