//! Structural comparison of the live schema with the documented one, object by object.
//!
//! Tables, columns, constraints and indexes are matched by name; each
//! missing, extra or changed one gives a [`Finding`] that says what differs
//! in words. A foreign key's validation and trigger state are left to
//! [`crate::enforcement`], which checks them against the database alone.

use std::collections::BTreeMap;

use catalog::classification::ColumnClassification;
use catalog::model::{Column, Constraint, ConstraintKind, Index};

use crate::finding::{Finding, FindingKind};
use crate::model::{DocModel, DocTable, PartitionGroup};

/// Every difference between `live` (the database) and `docs` (the dictionary).
pub fn compare(live: &DocModel, docs: &DocModel) -> Vec<Finding> {
    let mut findings = Vec::new();
    let live_tables = by_name(&live.tables, |t| t.table.display_name());
    let doc_tables = by_name(&docs.tables, |t| t.table.display_name());
    for (name, live_table) in &live_tables {
        match doc_tables.get(name) {
            Some(doc_table) => compare_tables(&mut findings, live_table, doc_table),
            None => findings.push(Finding::new(
                FindingKind::NotInDocs,
                format!("table `{name}`"),
                "in the database but not in the dictionary",
            )),
        }
    }
    for name in doc_tables
        .keys()
        .filter(|name| !live_tables.contains_key(*name))
    {
        findings.push(Finding::new(
            FindingKind::NotInDatabase,
            format!("table `{name}`"),
            "in the dictionary but not in the database",
        ));
    }
    findings
}

fn compare_tables(findings: &mut Vec<Finding>, live: &DocTable, docs: &DocTable) {
    let name = live.table.display_name();
    let subject = format!("table `{name}`");
    if live.table.comment != docs.table.comment {
        findings.push(changed(
            &subject,
            "comment",
            live.table.comment.as_deref(),
            docs.table.comment.as_deref(),
        ));
    }
    compare_partitioning(findings, &subject, live, docs);

    let (live, docs) = (&live.table, &docs.table);
    compare_objects(
        findings,
        &name,
        "column",
        &live.columns,
        &docs.columns,
        |c| &c.name,
        compare_columns,
    );
    compare_objects(
        findings,
        &name,
        "constraint",
        &live.constraints,
        &docs.constraints,
        |c| &c.name,
        compare_constraints,
    );
    compare_objects(
        findings,
        &name,
        "index",
        &live.indexes,
        &docs.indexes,
        |i| &i.name,
        compare_indexes,
    );
}

fn compare_partitioning(
    findings: &mut Vec<Finding>,
    subject: &str,
    live: &DocTable,
    docs: &DocTable,
) {
    let key = |t: &DocTable| t.table.partitioning.as_ref().map(|p| p.key.clone());
    match (key(live), key(docs)) {
        (Some(live_key), Some(doc_key)) if live_key != doc_key => {
            findings.push(changed(
                subject,
                "partition key",
                Some(&live_key),
                Some(&doc_key),
            ));
        }
        (Some(live_key), None) => findings.push(Finding::new(
            FindingKind::Changed,
            subject,
            format!(
                "partitioned by `{live_key}` in the database, not partitioned in the dictionary"
            ),
        )),
        (None, Some(doc_key)) => findings.push(Finding::new(
            FindingKind::Changed,
            subject,
            format!(
                "not partitioned in the database, partitioned by `{doc_key}` in the dictionary"
            ),
        )),
        _ => {}
    }
    let describe = |g: &PartitionGroup| format!("partitions `{}` ({})", g.pattern, g.bound);
    for group in live
        .partition_groups
        .iter()
        .filter(|g| !docs.partition_groups.contains(g))
    {
        findings.push(Finding::new(
            FindingKind::NotInDocs,
            subject,
            format!(
                "{} in the database but not in the dictionary",
                describe(group)
            ),
        ));
    }
    for group in docs
        .partition_groups
        .iter()
        .filter(|g| !live.partition_groups.contains(g))
    {
        findings.push(Finding::new(
            FindingKind::NotInDatabase,
            subject,
            format!(
                "{} in the dictionary but not in the database",
                describe(group)
            ),
        ));
    }
}

/// Matches two sets of objects of one kind by name and compares the pairs.
fn compare_objects<T>(
    findings: &mut Vec<Finding>,
    table: &str,
    noun: &str,
    live: &[T],
    docs: &[T],
    name: fn(&T) -> &String,
    compare_pair: fn(&mut Vec<Finding>, &str, &T, &T),
) {
    let live = by_name(live, |o| name(o).clone());
    let docs = by_name(docs, |o| name(o).clone());
    for (name, live_object) in &live {
        let subject = format!("{noun} `{table}.{name}`");
        match docs.get(name) {
            Some(doc_object) => compare_pair(findings, &subject, live_object, doc_object),
            None => findings.push(Finding::new(
                FindingKind::NotInDocs,
                subject,
                "in the database but not in the dictionary",
            )),
        }
    }
    for name in docs.keys().filter(|name| !live.contains_key(*name)) {
        findings.push(Finding::new(
            FindingKind::NotInDatabase,
            format!("{noun} `{table}.{name}`"),
            "in the dictionary but not in the database",
        ));
    }
}

fn compare_columns(findings: &mut Vec<Finding>, subject: &str, live: &Column, docs: &Column) {
    if live.data_type != docs.data_type {
        findings.push(changed(
            subject,
            "type",
            Some(&live.data_type),
            Some(&docs.data_type),
        ));
    }
    if live.nullable != docs.nullable {
        let null = |nullable: bool| if nullable { "nullable" } else { "NOT NULL" };
        findings.push(Finding::new(
            FindingKind::Changed,
            subject,
            format!(
                "{} in the database, {} in the dictionary",
                null(live.nullable),
                null(docs.nullable)
            ),
        ));
    }
    if live.default != docs.default {
        findings.push(changed(
            subject,
            "default",
            live.default.as_deref(),
            docs.default.as_deref(),
        ));
    }
    if live.identity != docs.identity {
        let identity = |i: Option<catalog::model::Identity>| i.map(|i| i.sql());
        findings.push(changed(
            subject,
            "identity",
            identity(live.identity),
            identity(docs.identity),
        ));
    }
    if live.generated != docs.generated {
        findings.push(changed(
            subject,
            "generation expression",
            live.generated.as_deref(),
            docs.generated.as_deref(),
        ));
    }
    if live.comment != docs.comment {
        findings.push(changed(
            subject,
            "comment",
            live.comment.as_deref(),
            docs.comment.as_deref(),
        ));
    }
    compare_classification(
        findings,
        subject,
        live.classification.as_ref(),
        docs.classification.as_ref(),
    );
}

fn compare_classification(
    findings: &mut Vec<Finding>,
    subject: &str,
    live: Option<&ColumnClassification>,
    docs: Option<&ColumnClassification>,
) {
    let (live, docs) = match (live, docs) {
        (Some(live), Some(docs)) => (live, docs),
        (None, None) => return,
        (None, Some(_)) => {
            findings.push(Finding::new(
                FindingKind::Changed,
                subject,
                "unclassified in the data-classification map, classified in the dictionary",
            ));
            return;
        }
        (Some(_), None) => {
            findings.push(Finding::new(
                FindingKind::Changed,
                subject,
                "classified in the data-classification map, unclassified in the dictionary",
            ));
            return;
        }
    };
    let mut differ = |setting: &str, live: String, docs: String| {
        if live != docs {
            findings.push(Finding::new(
                FindingKind::Changed,
                subject,
                format!(
                    "{setting} `{live}` in the data-classification map, `{docs}` in the dictionary"
                ),
            ));
        }
    };
    differ("class", live.class.to_string(), docs.class.to_string());
    differ(
        "protection",
        live.protection.to_string(),
        docs.protection.to_string(),
    );
    differ(
        "retention",
        live.retention.to_string(),
        docs.retention.to_string(),
    );
}

fn compare_constraints(
    findings: &mut Vec<Finding>,
    subject: &str,
    live: &Constraint,
    docs: &Constraint,
) {
    if live.kind.describe() != docs.kind.describe() {
        findings.push(changed(
            subject,
            "kind",
            Some(live.kind.describe()),
            Some(docs.kind.describe()),
        ));
    }
    if live.definition != docs.definition {
        findings.push(changed(
            subject,
            "definition",
            Some(&live.definition),
            Some(&docs.definition),
        ));
    }
    // A foreign key's validation is checked by `enforcement` against the
    // database alone; for other constraints it is part of the documented state.
    if !matches!(live.kind, ConstraintKind::ForeignKey(_)) && live.validated != docs.validated {
        let state = |validated: bool| if validated { "validated" } else { "NOT VALID" };
        findings.push(Finding::new(
            FindingKind::Changed,
            subject,
            format!(
                "{} in the database, {} in the dictionary",
                state(live.validated),
                state(docs.validated)
            ),
        ));
    }
    if live.comment != docs.comment {
        findings.push(changed(
            subject,
            "comment",
            live.comment.as_deref(),
            docs.comment.as_deref(),
        ));
    }
}

fn compare_indexes(findings: &mut Vec<Finding>, subject: &str, live: &Index, docs: &Index) {
    if live.definition != docs.definition {
        findings.push(changed(
            subject,
            "definition",
            Some(&live.definition),
            Some(&docs.definition),
        ));
    }
    if live.valid != docs.valid {
        let state = |valid: bool| {
            if valid {
                "valid"
            } else {
                "invalid (a failed concurrent build?)"
            }
        };
        findings.push(Finding::new(
            FindingKind::Changed,
            subject,
            format!(
                "{} in the database, {} in the dictionary",
                state(live.valid),
                state(docs.valid)
            ),
        ));
    }
}

/// ``<what> `x` in the database, `y` in the dictionary``, with `none` for an absent value.
fn changed(subject: &str, what: &str, live: Option<&str>, docs: Option<&str>) -> Finding {
    let show = |value: Option<&str>| value.map_or_else(|| "none".to_owned(), |v| format!("`{v}`"));
    Finding::new(
        FindingKind::Changed,
        subject,
        format!(
            "{what} {} in the database, {} in the dictionary",
            show(live),
            show(docs)
        ),
    )
}

fn by_name<T>(items: &[T], name: impl Fn(&T) -> String) -> BTreeMap<String, &T> {
    items.iter().map(|item| (name(item), item)).collect()
}
