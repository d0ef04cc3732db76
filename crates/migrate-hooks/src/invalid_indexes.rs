//! After a migration: indexes on the touched tables that are left invalid.
//!
//! A `CREATE INDEX CONCURRENTLY` that fails or is interrupted leaves its
//! index behind, invalid: never used by queries, yet maintained on every
//! write. The check lists the invalid indexes of every touched table
//! (created ones and partitions included), and tells those this migration
//! left (a warning) from those that were invalid already (information).

use migrate_core::hooks::{Finding, Severity};

use crate::catalog::InvalidIndex;

const NAME: &str = "invalid-indexes";

/// One finding per index found invalid after the migration. `before` holds
/// those found before it when the script can leave an index invalid; it is
/// `None` when the script cannot, and every invalid index was so already.
pub(crate) fn findings(before: Option<&[InvalidIndex]>, after: &[InvalidIndex]) -> Vec<Finding> {
    after
        .iter()
        .map(|invalid| {
            let already = before.is_none_or(|before| before.iter().any(|b| b.oid == invalid.oid));
            let (severity, message) = if already {
                (
                    Severity::Info,
                    format!(
                        "index {} on {} is still invalid, as it was before this migration",
                        invalid.index, invalid.table
                    ),
                )
            } else {
                (
                    Severity::Warning,
                    format!(
                        "index {} on {} was left invalid: queries never use it but every write \
                         maintains it; drop it and create it again (DROP INDEX CONCURRENTLY {})",
                        invalid.index, invalid.table, invalid.index
                    ),
                )
            };
            Finding {
                hook: NAME.to_string(),
                severity,
                message,
                data: serde_json::json!({
                    "table": invalid.table,
                    "index": invalid.index,
                    "invalid_before": already,
                }),
            }
        })
        .collect()
}
