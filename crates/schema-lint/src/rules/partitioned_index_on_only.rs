//! `partitioned-index-on-only`: an index on a partitioned table whose partitions may hold data is created
//! `ON ONLY` the parent and attached, not built across every partition under lock.

use std::collections::{HashMap, HashSet};

use squawk_syntax::ast::{self, AstNode};

use crate::model::FileSpan;
use crate::rules::{At, Family, Findings, LiveView, MigrationSet, Rule, RuleInfo};
use crate::syntax::{name_parts, qualified_name};
use crate::violation::Severity;

pub(crate) struct PartitionedIndexOnOnly;

static INFO: RuleInfo = RuleInfo {
    id: "partitioned-index-on-only",
    family: Family::Partitions,
    severity: Severity::Error,
    summary: "Indexes on a partitioned table are created with the table, or ON ONLY the parent and then attached per partition.",
};

impl Rule for PartitionedIndexOnOnly {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    /// Live, an `ON ONLY` index not yet attached on every partition is invalid: the planner ignores it.
    fn check_live(&self, live: &LiveView<'_>, out: &mut Findings) {
        let tables = live
            .schema
            .tables
            .iter()
            .filter(|t| !live.config.ignored_schemas.contains(&t.schema));
        for table in tables.filter(|t| t.partitioning.is_some()) {
            for index in table.indexes.iter().filter(|i| !i.valid) {
                out.report(
                    &INFO,
                    At::Object(format!("index {} on {}", index.name, table.display_name())),
                    format!("index `{}` on partitioned `{}` is invalid: not attached on every partition", index.name, table.name),
                )
                .help("build the missing partitions' indexes CONCURRENTLY and ALTER INDEX ... ATTACH PARTITION each");
            }
        }
    }

    fn check_migrations(&self, set: &MigrationSet<'_>, out: &mut Findings) {
        // Partitioned table -> the file that first gave it a partition.
        let mut partitioned: HashSet<(String, String)> = HashSet::new();
        let mut first_partition: HashMap<(String, String), usize> = HashMap::new();
        // ON ONLY indexes still waiting for ALTER INDEX ... ATTACH PARTITION.
        let mut unattached: Vec<(String, FileSpan)> = Vec::new();
        for (file, source) in set.forward() {
            for stmt in source.parse.tree().stmts() {
                match &stmt {
                    ast::Stmt::CreateTable(create) => {
                        let name = create.table_name().and_then(|n| qualified_name(n.syntax()));
                        if let (Some(name), Some(_)) = (&name, create.partition_by()) {
                            partitioned.insert(name.clone());
                        }
                        if let Some(parent) = create
                            .partition_of()
                            .and_then(|p| p.table_name_ref())
                            .and_then(|n| qualified_name(n.syntax()))
                        {
                            first_partition.entry(parent).or_insert(file);
                        }
                    }
                    ast::Stmt::AlterTable(alter) => {
                        let table = alter
                            .table_relation_name()
                            .and_then(|r| r.table_name_ref())
                            .and_then(|n| qualified_name(n.syntax()));
                        let attaches = alter
                            .actions()
                            .any(|a| matches!(a, ast::AlterTableAction::AttachPartition(_)));
                        if let (Some(table), true) = (table, attaches) {
                            first_partition.entry(table).or_insert(file);
                        }
                    }
                    ast::Stmt::CreateIndex(create) => {
                        let relation = create.table_relation_name();
                        let Some(table) = relation
                            .as_ref()
                            .and_then(|r| r.table_name_ref())
                            .and_then(|n| qualified_name(n.syntax()))
                        else {
                            continue;
                        };
                        if !partitioned.contains(&table) {
                            continue;
                        }
                        let range = create.syntax().text_range();
                        let span = FileSpan {
                            file,
                            start: range.start().into(),
                            end: range.end().into(),
                        };
                        if relation.and_then(|r| r.only_token()).is_some() {
                            if let Some(name) =
                                create.index().and_then(|i| name_parts(i.syntax()).pop())
                            {
                                unattached.push((name, span));
                            }
                            continue;
                        }
                        if first_partition.get(&table).is_some_and(|&f| f < file) {
                            out.report(
                                &INFO,
                                At::Span(span),
                                format!("this builds the index on every partition of `{}` at once, blocking writes to all of them", table.1),
                            )
                            .help("create it ON ONLY the parent, build each partition's index CONCURRENTLY, then ALTER INDEX ... ATTACH PARTITION each");
                        }
                    }
                    ast::Stmt::AlterIndex(alter) => {
                        let attaches = alter
                            .syntax()
                            .children()
                            .any(|n| n.kind() == squawk_syntax::SyntaxKind::ATTACH_INDEX_PARTITION);
                        if let (true, Some(name)) = (
                            attaches,
                            alter.index_ref().and_then(|i| name_parts(i.syntax()).pop()),
                        ) {
                            unattached.retain(|(pending, _)| *pending != name);
                        }
                    }
                    _ => {}
                }
            }
        }
        for (name, span) in unattached {
            out.report(&INFO, At::Span(span), format!("index `{name}` is created ON ONLY the parent but never attached"))
                .help("it stays invalid (unused) until every partition's index is attached with ALTER INDEX ... ATTACH PARTITION");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check_files;

    #[test]
    fn indexes_on_partitioned_tables() {
        let create = "CREATE TABLE events (id bigint, at timestamptz, org_id bigint) PARTITION BY RANGE (at);
CREATE INDEX events_at_idx ON events (at);
CREATE TABLE events_default PARTITION OF events DEFAULT;";
        let later = "CREATE INDEX events_org_id_idx ON events (org_id);
CREATE INDEX events_id_idx ON ONLY events (id);
CREATE INDEX events_org_id_at_idx ON ONLY events (org_id, at);
CREATE INDEX CONCURRENTLY events_default_org_id_at_idx ON events_default (org_id, at);
ALTER INDEX events_org_id_at_idx ATTACH PARTITION events_default_org_id_at_idx;";
        check_files(
            "partitioned-index-on-only",
            &[
                ("202601010000_events.up.sql", create),
                ("202601020000_index.up.sql", later),
            ],
            expect_test::expect![[r#"
                error[partitioned-index-on-only]: this builds the index on every partition of `events` at once, blocking writes to all of them
                  --> 202601020000_index.up.sql:1:1
                   |
                 1 | CREATE INDEX events_org_id_idx ON events (org_id);
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: create it ON ONLY the parent, build each partition's index CONCURRENTLY, then ALTER INDEX ... ATTACH PARTITION each
                error[partitioned-index-on-only]: index `events_id_idx` is created ON ONLY the parent but never attached
                  --> 202601020000_index.up.sql:2:1
                   |
                 2 | CREATE INDEX events_id_idx ON ONLY events (id);
                   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                   = help: it stays invalid (unused) until every partition's index is attached with ALTER INDEX ... ATTACH PARTITION
            "#]],
        );
    }
}
