//! Before a migration: other sessions that hold or wait for locks on the
//! tables it touches, and transactions open longer than a threshold.
//!
//! A DDL statement queued behind such a session blocks every query that
//! arrives after it, so the check waits for them to finish, warns or refuses,
//! as configured. Lock holders in transactions younger than
//! `short_transaction` are left out: on a busy table there always is one, and
//! it finishes long before the migration's `lock_timeout`. Prepared
//! transactions holding locks count whatever their age. Query texts are not
//! reported: they may carry secrets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use migrate_core::hooks::{
    Finding, Hook, HookContext, HookError, HookFuture, Outcome, Prepared, Severity,
};
use serde::Serialize;

use crate::config::{BlockingSessionsConfig, OnBlocked, StillBlocked};
use crate::error::Error;
use crate::reading::Readings;
use crate::relations;

const NAME: &str = "blocking-sessions";

/// The blocking-sessions check: see the module documentation.
#[derive(Debug, Clone)]
pub struct BlockingSessions {
    config: BlockingSessionsConfig,
    pub(crate) readings: Arc<Readings>,
}

impl BlockingSessions {
    /// The check with its settings.
    pub fn new(config: BlockingSessionsConfig) -> BlockingSessions {
        BlockingSessions {
            config,
            readings: Arc::default(),
        }
    }

    async fn check(&self, ctx: &HookContext<'_>) -> Result<Prepared, Error> {
        let reading = self.readings.get(ctx.sql);
        let touched = &reading.touched;
        if touched.no_existing() {
            return Ok(Prepared::default());
        }
        let members = relations::members(ctx.client, touched.existing()).await?;
        if members.is_empty() {
            return Ok(Prepared::default());
        }
        let oids = relations::oids(&members);
        let started = Instant::now();
        // Whether blockers were found and waited for, and said so in the log.
        let mut announced = false;
        loop {
            let blockers = blockers(ctx.client, &oids, &self.config).await?;
            let waited = started.elapsed();
            if blockers.is_empty() {
                let findings = if !announced {
                    Vec::new()
                } else {
                    vec![finding(
                        Severity::Info,
                        format!("waited {} for blocking sessions to finish", seconds(waited)),
                        waited,
                        &[],
                    )]
                };
                return Ok(Prepared {
                    findings,
                    memo: serde_json::Value::Null,
                });
            }
            let severity = match self.config.action {
                OnBlocked::Warn => Some(Severity::Warning),
                OnBlocked::Refuse => Some(Severity::Refuse),
                OnBlocked::Wait if waited >= self.config.max_wait => {
                    Some(match self.config.when_still_blocked {
                        StillBlocked::Warn => Severity::Warning,
                        StillBlocked::Refuse => Severity::Refuse,
                    })
                }
                OnBlocked::Wait => None,
            };
            if let Some(severity) = severity {
                let waited_note = if self.config.action == OnBlocked::Wait {
                    format!(" after waiting {}", seconds(waited))
                } else {
                    String::new()
                };
                let message = format!(
                    "{} session(s) still block the tables this migration touches{waited_note}: {}",
                    count_sessions(&blockers),
                    describe(&blockers)
                );
                return Ok(Prepared {
                    findings: vec![finding(severity, message, waited, &blockers)],
                    memo: serde_json::Value::Null,
                });
            }
            if !announced {
                announced = true;
                tracing::info!(
                    sessions = count_sessions(&blockers),
                    "waiting for sessions blocking the migration: {}",
                    describe(&blockers)
                );
            }
            let left = self.config.max_wait.saturating_sub(waited);
            tokio::time::sleep(self.config.poll_interval.min(left)).await;
        }
    }
}

impl Hook for BlockingSessions {
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
        Box::pin(async move { self.check(ctx).await.map_err(|e| e.into_hook_error(NAME)) })
    }

    fn after<'a>(
        &'a self,
        _ctx: &'a HookContext<'a>,
        _prepared: &'a Prepared,
        _outcome: &'a Outcome,
    ) -> HookFuture<'a, Result<Vec<Finding>, HookError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Why a session counts as blocking.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
enum Reason {
    /// It holds a lock on a touched table.
    HoldsLock { table: String, mode: String },
    /// It waits for a lock on a touched table (and so will the migration).
    WaitsForLock { table: String, mode: String },
    /// Its transaction has been open longer than the threshold.
    LongTransaction,
}

/// One blocking session.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Blocker {
    pid: i32,
    user: String,
    application: String,
    state: String,
    /// Seconds since its transaction started, when it is in one.
    transaction_seconds: Option<f64>,
    #[serde(flatten)]
    reason: Reason,
}

const BLOCKERS: &str = "
SELECT coalesce(a.pid, 0), coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
       CASE WHEN l.pid IS NULL THEN 'prepared transaction'
            ELSE coalesce(a.state, a.backend_type, '') END,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
       l.relation::regclass::text, l.mode, l.granted
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation = ANY($1::oid[])
  AND (l.pid IS NULL
       OR (l.pid <> pg_backend_pid()
           AND a.xact_start <= clock_timestamp() - make_interval(secs => $3)))
UNION ALL
SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
       coalesce(a.state, ''),
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
       NULL, NULL, NULL
FROM pg_stat_activity a
WHERE a.datname = current_database()
  AND a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid()
  AND a.xact_start < clock_timestamp() - make_interval(secs => $2)
ORDER BY 1, 6";

async fn blockers(
    client: &tokio_postgres::Client,
    oids: &[u32],
    config: &BlockingSessionsConfig,
) -> Result<Vec<Blocker>, Error> {
    let rows = client
        .query(
            BLOCKERS,
            &[
                &oids,
                &config.long_transaction.as_secs_f64(),
                &config.short_transaction.as_secs_f64(),
            ],
        )
        .await
        .map_err(Error::db(
            "looking for sessions blocking the touched tables",
        ))?;
    Ok(rows
        .iter()
        .map(|row| {
            let table: Option<String> = row.get(5);
            let mode: Option<String> = row.get(6);
            let granted: Option<bool> = row.get(7);
            let reason = match (table, mode, granted) {
                (Some(table), Some(mode), Some(true)) => Reason::HoldsLock { table, mode },
                (Some(table), Some(mode), _) => Reason::WaitsForLock { table, mode },
                _ => Reason::LongTransaction,
            };
            Blocker {
                pid: row.get(0),
                user: row.get(1),
                application: row.get(2),
                state: row.get(3),
                transaction_seconds: row.get(4),
                reason,
            }
        })
        .collect())
}

fn count_sessions(blockers: &[Blocker]) -> usize {
    let mut pids: Vec<i32> = blockers.iter().map(|b| b.pid).collect();
    pids.dedup();
    pids.len()
}

/// The blockers in words: `pid 4242 (user app, application psql, idle in
/// transaction for 312s) holds RowExclusiveLock on users`.
fn describe(blockers: &[Blocker]) -> String {
    blockers
        .iter()
        .map(|b| {
            let mut who = format!("pid {} (user {}", b.pid, b.user);
            if !b.application.is_empty() {
                who.push_str(&format!(", application {}", b.application));
            }
            if !b.state.is_empty() {
                who.push_str(&format!(", {}", b.state));
            }
            if let Some(open) = b.transaction_seconds {
                who.push_str(&format!(", transaction open {open:.0}s"));
            }
            who.push(')');
            match &b.reason {
                Reason::HoldsLock { table, mode } => format!("{who} holds {mode} on {table}"),
                Reason::WaitsForLock { table, mode } => {
                    format!("{who} waits for {mode} on {table}")
                }
                Reason::LongTransaction => format!("{who} has a long-open transaction"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

fn finding(severity: Severity, message: String, waited: Duration, blockers: &[Blocker]) -> Finding {
    Finding {
        hook: NAME.to_string(),
        severity,
        message,
        data: serde_json::json!({
            "waited_ms": u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            "sessions": blockers,
        }),
    }
}
