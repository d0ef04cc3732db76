//! After a migration: constraints on the touched tables left `NOT VALID`.
//!
//! Adding a foreign key or check constraint `NOT VALID` and validating it in
//! a later migration is the safe way on a large table; the check makes sure
//! the second half is not forgotten. Constraints this migration left
//! unvalidated are warnings; those that were already unvalidated are
//! information.

use std::sync::Arc;

use migrate_core::hooks::{
    Finding, Hook, HookContext, HookError, HookFuture, Outcome, Prepared, Severity,
};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::leftover_check::{self, Leftover};
use crate::reading::Readings;
use crate::relations;
use crate::tables::Touched;

const NAME: &str = "not-valid-constraints";

/// The NOT VALID constraint check: see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct NotValidConstraints {
    pub(crate) readings: Arc<Readings>,
}

/// One constraint not validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NotValid {
    oid: u32,
    constraint: String,
    table: String,
    kind: String,
}

impl Leftover for NotValid {
    fn oid(&self) -> u32 {
        self.oid
    }
}

async fn not_valid(ctx: &HookContext<'_>, touched: &Touched) -> Result<Vec<NotValid>, Error> {
    let members = relations::members(ctx.client, &touched.tables).await?;
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let rows = ctx
        .client
        .query(
            "SELECT c.oid, c.conname::text, c.conrelid::regclass::text,
                    CASE c.contype WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check'
                                   WHEN 'n' THEN 'not null' ELSE c.contype::text END
             FROM pg_constraint c
             WHERE NOT c.convalidated AND c.conrelid = ANY($1::oid[])
             ORDER BY 3, 2",
            &[&relations::oids(&members)],
        )
        .await
        .map_err(Error::db(
            "looking for NOT VALID constraints on the touched tables",
        ))?;
    Ok(rows
        .iter()
        .map(|row| NotValid {
            oid: row.get(0),
            constraint: row.get(1),
            table: row.get(2),
            kind: row.get(3),
        })
        .collect())
}

impl NotValidConstraints {
    async fn before(&self, ctx: &HookContext<'_>) -> Result<Prepared, Error> {
        let reading = self.readings.get(ctx.sql);
        leftover_check::before(
            reading.leftovers.not_valid_constraints,
            not_valid(ctx, &reading.touched),
        )
        .await
    }

    async fn after(
        &self,
        ctx: &HookContext<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<Finding>, Error> {
        let reading = self.readings.get(ctx.sql);
        let find = not_valid(ctx, &reading.touched);
        let can_leave = reading.leftovers.not_valid_constraints;
        let found = leftover_check::after(&reading.touched, prepared, can_leave, find).await?;
        Ok(found
            .into_iter()
            .map(|(c, already)| {
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
            .collect())
    }
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

impl Hook for NotValidConstraints {
    fn name(&self) -> &str {
        NAME
    }

    fn look_ahead(&self, scripts: &[&str]) {
        self.readings.look_ahead(scripts);
    }

    fn before_reads_database(&self, sql: &str) -> bool {
        self.readings.get(sql).leftovers.not_valid_constraints
    }

    fn before<'a>(
        &'a self,
        ctx: &'a HookContext<'a>,
    ) -> HookFuture<'a, Result<Prepared, HookError>> {
        Box::pin(async move { self.before(ctx).await.map_err(|e| e.into_hook_error(NAME)) })
    }

    fn after<'a>(
        &'a self,
        ctx: &'a HookContext<'a>,
        prepared: &'a Prepared,
        _outcome: &'a Outcome,
    ) -> HookFuture<'a, Result<Vec<Finding>, HookError>> {
        Box::pin(async move {
            self.after(ctx, prepared)
                .await
                .map_err(|e| e.into_hook_error(NAME))
        })
    }
}
