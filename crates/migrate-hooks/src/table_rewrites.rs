//! After a migration: tables whose storage it replaced.
//!
//! `ALTER TABLE ... ALTER COLUMN ... TYPE`, adding a column with a volatile
//! default, `SET LOGGED`, `TRUNCATE`, `CLUSTER` and `VACUUM FULL` give a
//! table a new `relfilenode`. All of them hold an `ACCESS EXCLUSIVE` lock
//! while they work, so on a large table they are an outage; the check
//! compares each touched table's (and partition's) `relfilenode` before and
//! after.

use std::sync::Arc;

use migrate_core::hooks::{
    Finding, Hook, HookContext, HookError, HookFuture, Outcome, Prepared, Severity,
};

use crate::error::Error;
use crate::reading::Readings;
use crate::relations::{self, Member};

const NAME: &str = "table-rewrites";

/// The table-rewrite check: see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct TableRewrites {
    pub(crate) readings: Arc<Readings>,
}

impl TableRewrites {
    async fn before(&self, ctx: &HookContext<'_>) -> Result<Prepared, Error> {
        let reading = self.readings.get(ctx.sql);
        let touched = &reading.touched;
        if touched.no_existing() {
            return Ok(Prepared::default());
        }
        let mut members = relations::members(ctx.client, touched.existing()).await?;
        members.retain(|m| m.relfilenode != 0);
        Ok(Prepared {
            findings: Vec::new(),
            memo: serde_json::to_value(members).map_err(Error::Memo)?,
        })
    }

    async fn after(
        &self,
        ctx: &HookContext<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<Finding>, Error> {
        if prepared.memo.is_null() {
            return Ok(Vec::new());
        }
        let before: Vec<Member> =
            serde_json::from_value(prepared.memo.clone()).map_err(Error::Memo)?;
        let oids = relations::oids(&before);
        let rows = ctx
            .client
            .query(
                "SELECT oid, relfilenode, pg_relation_size(oid) FROM pg_class WHERE oid = ANY($1::oid[])",
                &[&oids],
            )
            .await
            .map_err(Error::db("comparing the storage of the touched tables"))?;
        let mut findings = Vec::new();
        for row in rows {
            let oid: u32 = row.get(0);
            let relfilenode: u32 = row.get(1);
            let size: i64 = row.get(2);
            let Some(old) = before.iter().find(|m| m.oid == oid) else {
                continue;
            };
            if old.relfilenode == relfilenode {
                continue;
            }
            let which = if old.name == old.table {
                old.name.clone()
            } else {
                format!("{} (partition of {})", old.name, old.table)
            };
            findings.push(Finding {
                hook: NAME.to_string(),
                severity: Severity::Warning,
                message: format!(
                    "{which} was rewritten: its storage was replaced (relfilenode {} → {relfilenode}, now {size} bytes) \
                     under an ACCESS EXCLUSIVE lock",
                    old.relfilenode
                ),
                data: serde_json::json!({
                    "table": old.table,
                    "relation": old.name,
                    "relfilenode_before": old.relfilenode,
                    "relfilenode_after": relfilenode,
                    "size_bytes": size,
                }),
            });
        }
        Ok(findings)
    }
}

impl Hook for TableRewrites {
    fn name(&self) -> &str {
        NAME
    }

    fn look_ahead(&self, scripts: &[&str]) {
        self.readings.look_ahead(scripts);
    }

    fn before_reads_database(&self, sql: &str) -> bool {
        !self.readings.get(sql).touched.no_existing()
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
