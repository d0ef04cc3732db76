//! After a migration: how many rows each existing touched table gained or lost.
//!
//! Tables estimated at no more than `exact_max_rows` rows are counted with
//! `count(*)` before and after; larger ones are estimated from the
//! statistics (`pg_stat_all_tables.n_live_tup`, else `pg_class.reltuples`),
//! and the finding says so. The method chosen before is used after too, so
//! the two figures compare. Writes of other sessions in between are counted
//! as well: the figure is what changed, not only what the migration did.

use std::collections::BTreeMap;
use std::sync::Arc;

use migrate_core::hooks::{
    Finding, Hook, HookContext, HookError, HookFuture, Outcome, Prepared, Severity,
};
use serde::{Deserialize, Serialize};

use crate::config::RowCountsConfig;
use crate::error::Error;
use crate::reading::Readings;
use crate::relations::{self, Member};

const NAME: &str = "row-counts";

/// The row-count check: see the module documentation.
#[derive(Debug, Clone)]
pub struct RowCounts {
    config: RowCountsConfig,
    pub(crate) readings: Arc<Readings>,
}

/// One table's count before the migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counted {
    table: String,
    oid: u32,
    exact: bool,
    rows: i64,
}

impl RowCounts {
    /// The check with its settings.
    pub fn new(config: RowCountsConfig) -> RowCounts {
        RowCounts {
            config,
            readings: Arc::default(),
        }
    }

    async fn before(&self, ctx: &HookContext<'_>) -> Result<Prepared, Error> {
        let reading = self.readings.get(ctx.sql);
        let touched = &reading.touched;
        if touched.no_existing() {
            return Ok(Prepared::default());
        }
        let members = relations::members(ctx.client, touched.existing()).await?;
        let mut counted = Vec::new();
        for (table, tree) in trees(&members) {
            let estimate: i64 = tree
                .iter()
                .filter(|m| m.leaf)
                .map(|m| m.estimated_rows)
                .sum();
            let exact = u64::try_from(estimate).unwrap_or(0) <= self.config.exact_max_rows;
            let rows = if exact {
                count(ctx.client, &table).await?
            } else {
                estimate
            };
            counted.push(Counted {
                table,
                oid: tree[0].oid,
                exact,
                rows,
            });
        }
        Ok(Prepared {
            findings: Vec::new(),
            memo: serde_json::to_value(counted).map_err(Error::Memo)?,
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
        let counted: Vec<Counted> =
            serde_json::from_value(prepared.memo.clone()).map_err(Error::Memo)?;
        if counted.iter().any(|c| !c.exact) {
            flush_own_statistics(ctx.client).await?;
        }
        let mut findings = Vec::with_capacity(counted.len());
        for before in counted {
            let Some(now) = current_name(ctx.client, before.oid).await? else {
                findings.push(dropped(&before));
                continue;
            };
            let after = if before.exact {
                count(ctx.client, &now).await?
            } else {
                estimate(ctx.client, before.oid).await?
            };
            findings.push(difference(&before, &now, after));
        }
        Ok(findings)
    }
}

impl Hook for RowCounts {
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

/// The members grouped by touched table, each tree's root first.
fn trees(members: &[Member]) -> BTreeMap<String, Vec<&Member>> {
    let mut trees: BTreeMap<String, Vec<&Member>> = BTreeMap::new();
    for member in members {
        trees.entry(member.table.clone()).or_default().push(member);
    }
    for tree in trees.values_mut() {
        tree.retain(|m| m.leaf || m.name == m.table);
        tree.sort_by_key(|m| m.name != m.table);
    }
    trees
}

/// `count(*)` of a table and its partitions. `table` is a name as `regclass`
/// prints it, quoted where needed, so it is safe to splice.
async fn count(client: &tokio_postgres::Client, table: &str) -> Result<i64, Error> {
    let row = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .map_err(Error::db("counting the rows of a touched table"))?;
    Ok(row.get(0))
}

/// The statistics' row estimate for a table and its partitions, with the
/// rows the current transaction inserted and deleted: the engine runs the
/// after-checks of a transactional migration before it commits, when its
/// writes are only in `pg_stat_xact_all_tables`.
async fn estimate(client: &tokio_postgres::Client, oid: u32) -> Result<i64, Error> {
    let row = client
        .query_one(
            // The statistics functions behind pg_stat_all_tables and
            // pg_stat_xact_all_tables, for these relations only (the views
            // compute every table of the database first).
            "SELECT coalesce(sum(CASE WHEN pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_deleted(c.oid)
                                           + pg_stat_get_live_tuples(c.oid) > 0 THEN pg_stat_get_live_tuples(c.oid)
                                      ELSE greatest(c.reltuples, 0)::bigint END
                                 + pg_stat_get_xact_tuples_inserted(c.oid) - pg_stat_get_xact_tuples_deleted(c.oid)), 0)::bigint
             FROM pg_class c
             WHERE (c.oid = $1 AND c.relkind <> 'p')
                OR c.oid IN (SELECT relid FROM pg_partition_tree($1::oid::regclass) WHERE isleaf)",
            &[&oid],
        )
        .await
        .map_err(Error::db("estimating the rows of a touched table"))?;
    Ok(row.get(0))
}

/// The table's name now, or `None` when the migration dropped it.
async fn current_name(client: &tokio_postgres::Client, oid: u32) -> Result<Option<String>, Error> {
    let row = client
        .query_opt(
            "SELECT oid::regclass::text FROM pg_class WHERE oid = $1",
            &[&oid],
        )
        .await
        .map_err(Error::db("looking up a touched table"))?;
    Ok(row.map(|row| row.get(0)))
}

/// The statistics of this backend's own writes reach the shared statistics
/// at most once a second; PostgreSQL 15 and later can be asked to flush them
/// at the end of the current statement, so that the next query sees them.
async fn flush_own_statistics(client: &tokio_postgres::Client) -> Result<(), Error> {
    client
        .batch_execute(
            "DO $$ BEGIN
                 IF current_setting('server_version_num')::int >= 150000 THEN
                     PERFORM pg_stat_force_next_flush();
                 END IF;
             END $$",
        )
        .await
        .map_err(Error::db(
            "flushing the statistics of the migration's writes",
        ))
}

fn method(exact: bool) -> &'static str {
    if exact {
        "exact count"
    } else {
        "estimated from statistics"
    }
}

fn difference(before: &Counted, table: &str, after: i64) -> Finding {
    let change = after - before.rows;
    let severity = if change < 0 {
        Severity::Warning
    } else {
        Severity::Info
    };
    let change_text = match change {
        0 => "unchanged".to_string(),
        c if c > 0 => format!("+{c}"),
        c => c.to_string(),
    };
    Finding {
        hook: NAME.to_string(),
        severity,
        message: format!(
            "{table}: {} → {after} rows ({change_text}, {})",
            before.rows,
            method(before.exact)
        ),
        data: serde_json::json!({
            "table": table,
            "before": before.rows,
            "after": after,
            "difference": change,
            "exact": before.exact,
        }),
    }
}

fn dropped(before: &Counted) -> Finding {
    Finding {
        hook: NAME.to_string(),
        severity: if before.rows > 0 {
            Severity::Warning
        } else {
            Severity::Info
        },
        message: format!(
            "{}: dropped with {} rows ({})",
            before.table,
            before.rows,
            method(before.exact)
        ),
        data: serde_json::json!({
            "table": before.table,
            "before": before.rows,
            "after": null,
            "difference": -before.rows,
            "exact": before.exact,
            "dropped": true,
        }),
    }
}
