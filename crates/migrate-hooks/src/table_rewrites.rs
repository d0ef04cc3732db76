//! After a migration: tables whose storage it replaced.
//!
//! `ALTER TABLE ... ALTER COLUMN ... TYPE`, adding a column with a volatile
//! default, `SET LOGGED`, `TRUNCATE`, `CLUSTER` and `VACUUM FULL` give a
//! table a new `relfilenode`. All of them hold an `ACCESS EXCLUSIVE` lock
//! while they work, so on a large table they are an outage; the check
//! compares each touched table's (and partition's) `relfilenode` before and
//! after.

use migrate_core::hooks::{Finding, Severity};

use crate::catalog::{Relation, Rewritten};

const NAME: &str = "table-rewrites";

/// The relations to compare: those with storage, each once.
pub(crate) fn to_compare(relations: &[Relation]) -> Vec<Relation> {
    let mut seen = std::collections::HashSet::new();
    relations
        .iter()
        .filter(|r| r.relfilenode != 0 && seen.insert(r.oid))
        .cloned()
        .collect()
}

/// One finding per relation of `compared` that was rewritten, in their order.
pub(crate) fn findings(compared: &[Relation], rewritten: &[Rewritten]) -> Vec<Finding> {
    compared
        .iter()
        .filter_map(|old| {
            let new = rewritten.iter().find(|r| r.oid == old.oid)?;
            let which = if old.name == old.table {
                old.name.clone()
            } else {
                format!("{} (partition of {})", old.name, old.table)
            };
            Some(Finding {
                hook: NAME.to_string(),
                severity: Severity::Warning,
                message: format!(
                    "{which} was rewritten: its storage was replaced (relfilenode {} → {}, now {} bytes) \
                     under an ACCESS EXCLUSIVE lock",
                    old.relfilenode, new.relfilenode, new.size
                ),
                data: serde_json::json!({
                    "table": old.table,
                    "relation": old.name,
                    "relfilenode_before": old.relfilenode,
                    "relfilenode_after": new.relfilenode,
                    "size_bytes": new.size,
                }),
            })
        })
        .collect()
}
