//! The schema as the docs record it: the catalog model with partitions summarized by naming pattern.
//!
//! Daily partitions come and go (`dbops partitions ensure` adds tomorrow's
//! and retires old ones), so the docs must not list them: a dictionary that
//! named every partition would be out of date the next day. A partitioned
//! table records its key and one [`PartitionGroup`] per naming pattern
//! instead (`usage_events_pYYYYMMDD`, `usage_events_default`), which only
//! changes when the partitioning scheme does.

use catalog::model::{Partition, Schema, Table};
use serde::{Deserialize, Serialize};

/// Version of the embedded model's layout; bumped when it changes incompatibly.
pub const FORMAT: u32 = 1;

/// What the generated docs describe, and what `dbops docs validate` reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocModel {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// The tables, sorted by schema and name.
    pub tables: Vec<DocTable>,
}

/// One table as documented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocTable {
    /// The table, with [`catalog::model::Partitioning::partitions`] emptied:
    /// the groups below stand for them.
    #[serde(flatten)]
    pub table: Table,
    /// The partitions by naming pattern, for a partitioned table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_groups: Vec<PartitionGroup>,
}

/// Partitions that share a naming pattern and kind of bound.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionGroup {
    /// The name with digit runs replaced: eight digits by `YYYYMMDD`, six by
    /// `YYYYMM`, four by `YYYY`, others by as many `N`s.
    pub pattern: String,
    /// `range`, `list`, `hash` or `default`.
    pub bound: String,
    /// The key the partitions are themselves partitioned by, if they are.
    pub subpartition_key: Option<String>,
}

impl DocModel {
    /// The documented form of a live (classified) schema.
    pub fn from_schema(schema: &Schema) -> DocModel {
        let tables = schema
            .tables
            .iter()
            .map(|table| {
                let mut table = table.clone();
                let partition_groups = match &mut table.partitioning {
                    Some(partitioning) => groups(&std::mem::take(&mut partitioning.partitions)),
                    None => Vec::new(),
                };
                DocTable {
                    table,
                    partition_groups,
                }
            })
            .collect();
        DocModel {
            format: FORMAT,
            tables,
        }
    }

    /// The documented table with this display name.
    pub fn table(&self, display_name: &str) -> Option<&DocTable> {
        self.tables
            .iter()
            .find(|t| t.table.display_name() == display_name)
    }

    /// Every foreign key that references `table`: (referencing table, constraint name,
    /// referencing columns, referenced columns).
    pub fn references_to<'a>(&'a self, table: &'a Table) -> impl Iterator<Item = Reference<'a>> {
        self.tables.iter().flat_map(move |from| {
            from.table
                .constraints
                .iter()
                .filter_map(move |constraint| match &constraint.kind {
                    catalog::model::ConstraintKind::ForeignKey(fk)
                        if fk.referenced_schema == table.schema
                            && fk.referenced_table == table.name =>
                    {
                        Some(Reference {
                            from: &from.table,
                            constraint,
                            foreign_key: fk,
                        })
                    }
                    _ => None,
                })
        })
    }
}

/// A foreign key seen from the table it references.
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    /// The referencing table.
    pub from: &'a Table,
    /// The foreign key constraint.
    pub constraint: &'a catalog::model::Constraint,
    /// Its details.
    pub foreign_key: &'a catalog::model::ForeignKey,
}

/// Whether every referencing column of a foreign key is NOT NULL: each row
/// must have a parent.
pub(crate) fn reference_is_required(table: &Table, columns: &[String]) -> bool {
    columns
        .iter()
        .all(|name| table.column(name).is_some_and(|c| !c.nullable))
}

/// Whether the referencing columns are unique on their own (a primary key,
/// unique constraint or non-partial unique index on exactly those columns):
/// each parent then has at most one child.
pub(crate) fn reference_is_one_to_one(table: &Table, columns: &[String]) -> bool {
    let same = |other: &[String]| {
        let mut a: Vec<&String> = columns.iter().collect();
        let mut b: Vec<&String> = other.iter().collect();
        a.sort();
        b.sort();
        a == b
    };
    table
        .indexes
        .iter()
        .any(|i| i.unique && i.predicate.is_none() && same(&i.columns))
}

/// Groups partitions by naming pattern (directly attached ones only; a
/// partition of a partition is covered by its parent's subpartition key).
pub fn groups(partitions: &[Partition]) -> Vec<PartitionGroup> {
    let mut groups: Vec<PartitionGroup> = partitions
        .iter()
        .filter(|p| p.parent.is_none())
        .map(|p| PartitionGroup {
            pattern: name_pattern(&p.name),
            bound: bound_kind(&p.bound).to_owned(),
            subpartition_key: p.subpartition_key.clone(),
        })
        .collect();
    groups.sort();
    groups.dedup();
    groups
}

/// `usage_events_p20260101` → `usage_events_pYYYYMMDD`.
fn name_pattern(name: &str) -> String {
    let mut pattern = String::with_capacity(name.len());
    let mut digits = 0;
    let flush = |pattern: &mut String, digits: &mut usize| {
        match *digits {
            0 => {}
            8 => pattern.push_str("YYYYMMDD"),
            6 => pattern.push_str("YYYYMM"),
            4 => pattern.push_str("YYYY"),
            n => pattern.extend(std::iter::repeat_n('N', n)),
        }
        *digits = 0;
    };
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits += 1;
        } else {
            flush(&mut pattern, &mut digits);
            pattern.push(c);
        }
    }
    flush(&mut pattern, &mut digits);
    pattern
}

fn bound_kind(bound: &str) -> &'static str {
    if bound == "DEFAULT" {
        "default"
    } else if bound.starts_with("FOR VALUES FROM") {
        "range"
    } else if bound.starts_with("FOR VALUES IN") {
        "list"
    } else if bound.starts_with("FOR VALUES WITH") {
        "hash"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(name: &str, bound: &str) -> Partition {
        Partition {
            schema: "public".into(),
            name: name.into(),
            bound: bound.into(),
            parent: None,
            subpartition_key: None,
        }
    }

    #[test]
    fn partitions_fold_into_stable_groups() {
        let day = |d: &str| {
            partition(
                &format!("usage_events_p{d}"),
                "FOR VALUES FROM ('x') TO ('y')",
            )
        };
        let groups = groups(&[
            day("20260102"),
            partition("usage_events_default", "DEFAULT"),
            day("20260101"),
            partition("usage_events_2026", "FOR VALUES FROM ('x') TO ('y')"),
            partition(
                "usage_events_h1",
                "FOR VALUES WITH (modulus 2, remainder 1)",
            ),
        ]);
        let names: Vec<_> = groups
            .iter()
            .map(|g| format!("{} {}", g.pattern, g.bound))
            .collect();
        assert_eq!(
            names,
            [
                "usage_events_YYYY range",
                "usage_events_default default",
                "usage_events_hN hash",
                "usage_events_pYYYYMMDD range"
            ]
        );
    }
}
