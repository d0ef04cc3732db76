//! After a migration: constraints on the touched tables left `NOT VALID`.
//!
//! Adding a foreign key or check constraint `NOT VALID` and validating it in
//! a later migration is the safe way on a large table; the check makes sure
//! the second half is not forgotten. Constraints this migration left
//! unvalidated are warnings; those that were already unvalidated are
//! information.

use migrate_core::hooks::{Finding, Severity};

use crate::catalog::NotValidConstraint;

const NAME: &str = "not-valid-constraints";

/// One finding per constraint found NOT VALID after the migration. `before`
/// holds those found before it when the script can leave a constraint NOT
/// VALID; it is `None` when the script cannot, and every one was so already.
pub(crate) fn findings(
    before: Option<&[NotValidConstraint]>,
    after: &[NotValidConstraint],
) -> Vec<Finding> {
    after
        .iter()
        .map(|c| {
            let already = before.is_none_or(|before| before.iter().any(|b| b.oid == c.oid));
            let validate = format!(
                "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                c.table,
                quote_ident(&c.constraint)
            );
            let (severity, message) = if already {
                (
                    Severity::Info,
                    format!(
                        "{} constraint {} on {} is still NOT VALID, as it was before this migration; \
                         existing rows are unchecked until {validate}",
                        c.kind, c.constraint, c.table
                    ),
                )
            } else {
                (
                    Severity::Warning,
                    format!(
                        "{} constraint {} on {} was left NOT VALID: existing rows are unchecked until \
                         {validate} (a later migration; it takes only a SHARE UPDATE EXCLUSIVE lock)",
                        c.kind, c.constraint, c.table
                    ),
                )
            };
            Finding {
                hook: NAME.to_string(),
                severity,
                message,
                data: serde_json::json!({
                    "table": c.table,
                    "constraint": c.constraint,
                    "kind": c.kind,
                    "not_valid_before": already,
                }),
            }
        })
        .collect()
}

/// A constraint name as SQL needs it written.
fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}
