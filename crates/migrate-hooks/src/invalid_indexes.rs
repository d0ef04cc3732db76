//! After a migration: indexes on the touched tables that are left invalid.
//!
//! A `CREATE INDEX CONCURRENTLY` that fails or is interrupted leaves its
//! index behind, invalid: never used by queries, yet maintained on every
//! write. The check lists the invalid indexes of every touched table
//! (created ones and partitions included), and tells those this migration
//! left (a warning) from those that were invalid already (information).

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

const NAME: &str = "invalid-indexes";

/// The invalid-index check: see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct InvalidIndexes {
    pub(crate) readings: Arc<Readings>,
}

/// One invalid index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Invalid {
    oid: u32,
    index: String,
    table: String,
}

impl Leftover for Invalid {
    fn oid(&self) -> u32 {
        self.oid
    }
}

async fn invalid_indexes(ctx: &HookContext<'_>, touched: &Touched) -> Result<Vec<Invalid>, Error> {
    let members = relations::members(ctx.client, &touched.tables).await?;
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let rows = ctx
        .client
        .query(
            "SELECT i.indexrelid, i.indexrelid::regclass::text, i.indrelid::regclass::text
             FROM pg_index i
             WHERE NOT i.indisvalid AND i.indrelid = ANY($1::oid[])
             ORDER BY 3, 2",
            &[&relations::oids(&members)],
        )
        .await
        .map_err(Error::db(
            "looking for invalid indexes on the touched tables",
        ))?;
    Ok(rows
        .iter()
        .map(|row| Invalid {
            oid: row.get(0),
            index: row.get(1),
            table: row.get(2),
        })
        .collect())
}

impl InvalidIndexes {
    async fn before(&self, ctx: &HookContext<'_>) -> Result<Prepared, Error> {
        let reading = self.readings.get(ctx.sql);
        leftover_check::before(
            reading.leftovers.invalid_indexes,
            invalid_indexes(ctx, &reading.touched),
        )
        .await
    }

    async fn after(
        &self,
        ctx: &HookContext<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<Finding>, Error> {
        let reading = self.readings.get(ctx.sql);
        let find = invalid_indexes(ctx, &reading.touched);
        let can_leave = reading.leftovers.invalid_indexes;
        let found = leftover_check::after(&reading.touched, prepared, can_leave, find).await?;
        Ok(found
            .into_iter()
            .map(|(invalid, already)| {
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
            .collect())
    }
}

impl Hook for InvalidIndexes {
    fn name(&self) -> &str {
        NAME
    }

    fn look_ahead(&self, scripts: &[&str]) {
        self.readings.look_ahead(scripts);
    }

    fn before_reads_database(&self, sql: &str) -> bool {
        self.readings.get(sql).leftovers.invalid_indexes
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
