//! Before a migration: other sessions that hold or wait for locks on the
//! tables it touches, and transactions open longer than a threshold.
//!
//! A DDL statement queued behind such a session blocks every query that
//! arrives after it, so the check waits for them to finish, warns or refuses,
//! as configured. The sessions come from `pg_locks` on the touched relations,
//! which every role sees, with `pg_blocking_pids()` for what each of them
//! waits for in turn.
//!
//! Lock holders in transactions younger than `short_transaction` are left
//! out: on a busy table there always is one, and it finishes long before the
//! migration's `lock_timeout`. A role without `pg_read_all_stats` does not see
//! when another role's transaction began; such a lock holder counts once the
//! check has seen the same transaction (`pg_locks.virtualtransaction`) hold
//! locks on the touched tables for `short_transaction`, so the check looks a
//! second time when the first look found only such holders. Prepared
//! transactions holding locks count whatever their age. Query texts are not
//! reported: they may carry secrets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use migrate_core::hooks::{Finding, Severity};
use serde::Serialize;

use crate::catalog::{Before, Session};
use crate::config::{BlockingSessionsConfig, OnBlocked, StillBlocked};
use crate::error::Error;

const NAME: &str = "blocking-sessions";

/// Looks at the catalog with `look` (the before-read), and again while
/// waiting for blocking sessions to go, as configured; returns the last look
/// and the findings.
pub(crate) async fn check<F>(
    config: &BlockingSessionsConfig,
    look: impl Fn() -> F,
) -> Result<(Before, Vec<Finding>), Error>
where
    F: Future<Output = Result<Before, Error>>,
{
    let started = Instant::now();
    let mut sightings = Sightings::default();
    // Whether blockers were found and waited for, and said so in the log.
    let mut announced = false;
    let mut first_look = true;
    loop {
        let before = look().await?;
        let (blockers, undecided) = sightings.blockers(&before.sessions, config.short_transaction);
        let waited = started.elapsed();
        if blockers.is_empty() {
            if undecided && first_look {
                // Holders of another role, of unknown age: look again when
                // those still there have been seen long enough to count.
                first_look = false;
                tokio::time::sleep(config.short_transaction).await;
                continue;
            }
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
            return Ok((before, findings));
        }
        first_look = false;
        let severity = match config.action {
            OnBlocked::Warn => Some(Severity::Warning),
            OnBlocked::Refuse => Some(Severity::Refuse),
            OnBlocked::Wait if waited >= config.max_wait => Some(match config.when_still_blocked {
                StillBlocked::Warn => Severity::Warning,
                StillBlocked::Refuse => Severity::Refuse,
            }),
            OnBlocked::Wait => None,
        };
        if let Some(severity) = severity {
            let waited_note = if config.action == OnBlocked::Wait {
                format!(" after waiting {}", seconds(waited))
            } else {
                String::new()
            };
            let message = format!(
                "{} session(s) still block the tables this migration touches{waited_note}: {}",
                count_sessions(&blockers),
                describe(&blockers)
            );
            let findings = vec![finding(severity, message, waited, &blockers)];
            return Ok((before, findings));
        }
        if !announced {
            announced = true;
            tracing::info!(
                sessions = count_sessions(&blockers),
                "waiting for sessions blocking the migration: {}",
                describe(&blockers)
            );
        }
        let left = config.max_wait.saturating_sub(waited);
        tokio::time::sleep(config.poll_interval.min(left)).await;
    }
}

/// The warning, given once per run, that the role cannot see when other
/// roles' transactions began, and the grant that lets it.
pub(crate) fn hidden_transactions(role: &str, config: &BlockingSessionsConfig) -> Finding {
    let grant = format!("GRANT pg_read_all_stats TO {role}");
    Finding {
        hook: NAME.to_string(),
        severity: Severity::Warning,
        message: format!(
            "role {role} cannot see when other roles' transactions began: their transactions open \
             longer than {} go unnoticed, and their locks on a touched table count once seen held \
             for {}; {grant} lets the check see them",
            humantime::format_duration(config.long_transaction),
            humantime::format_duration(config.short_transaction)
        ),
        data: serde_json::json!({
            "role": role,
            "missing_role": "pg_read_all_stats",
            "grant": grant,
        }),
    }
}

/// When the check first saw each transaction whose start the role cannot see.
#[derive(Debug, Default)]
struct Sightings {
    first_seen: HashMap<String, Instant>,
}

impl Sightings {
    /// The sessions of `sessions` that count as blocking, and whether some
    /// were left out only because they have not been seen long enough yet.
    fn blockers(&mut self, sessions: &[Session], short: Duration) -> (Vec<Blocker>, bool) {
        let now = Instant::now();
        self.first_seen.retain(|transaction, _| {
            sessions
                .iter()
                .any(|s| s.transaction.as_ref() == Some(transaction))
        });
        let mut blockers = Vec::new();
        let mut undecided = false;
        for session in sessions {
            let hidden_age = session.pid != 0 && session.transaction_seconds.is_none();
            let seen_seconds = match (&session.transaction, hidden_age) {
                (Some(transaction), true) => {
                    let first = *self.first_seen.entry(transaction.clone()).or_insert(now);
                    Some(now.duration_since(first))
                }
                _ => None,
            };
            let old_enough = match (session.transaction_seconds, seen_seconds) {
                // A transaction open longer than long_transaction.
                _ if session.table.is_none() => true,
                (Some(open), _) => open >= short.as_secs_f64(),
                (None, Some(seen)) => seen >= short,
                // A prepared transaction.
                (None, None) => true,
            };
            if !old_enough {
                undecided |= seen_seconds.is_some();
                continue;
            }
            blockers.push(Blocker::new(session, seen_seconds));
        }
        (blockers, undecided)
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
    /// Seconds since its transaction started, when it is in one and the role may see it.
    transaction_seconds: Option<f64>,
    /// When the role may not see its transaction's start: for how long the
    /// check has seen that transaction hold its locks.
    seen_seconds: Option<f64>,
    /// The sessions it waits for.
    blocked_by: Vec<i32>,
    #[serde(flatten)]
    reason: Reason,
}

impl Blocker {
    fn new(session: &Session, seen: Option<Duration>) -> Blocker {
        let reason = match (&session.table, &session.mode, session.granted) {
            (Some(table), Some(mode), Some(true)) => Reason::HoldsLock {
                table: table.clone(),
                mode: mode.clone(),
            },
            (Some(table), Some(mode), _) => Reason::WaitsForLock {
                table: table.clone(),
                mode: mode.clone(),
            },
            _ => Reason::LongTransaction,
        };
        Blocker {
            pid: session.pid,
            user: session.user.clone(),
            application: session.application.clone(),
            state: session.state.clone(),
            transaction_seconds: session.transaction_seconds,
            seen_seconds: seen.map(|seen| seen.as_secs_f64()),
            blocked_by: session.blocked_by.clone(),
            reason,
        }
    }
}

fn count_sessions(blockers: &[Blocker]) -> usize {
    let mut pids: Vec<i32> = blockers.iter().map(|b| b.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len()
}

/// The blockers in words: `pid 4242 (user app, application psql, idle in
/// transaction, transaction open 312s) holds RowExclusiveLock on users`.
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
            if let Some(seen) = b.seen_seconds {
                who.push_str(&format!(", transaction start hidden, seen for {seen:.1}s"));
            }
            who.push(')');
            let mut text = match &b.reason {
                Reason::HoldsLock { table, mode } => format!("{who} holds {mode} on {table}"),
                Reason::WaitsForLock { table, mode } => {
                    format!("{who} waits for {mode} on {table}")
                }
                Reason::LongTransaction => format!("{who} has a long-open transaction"),
            };
            if !b.blocked_by.is_empty() {
                let pids: Vec<String> = b.blocked_by.iter().map(i32::to_string).collect();
                text.push_str(&format!(", blocked by pid {}", pids.join(", ")));
            }
            text
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

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(transaction: &str, transaction_seconds: Option<f64>) -> Session {
        Session {
            pid: 42,
            transaction: Some(transaction.to_string()),
            user: "other".to_string(),
            application: "psql".to_string(),
            state: String::new(),
            transaction_seconds,
            blocked_by: Vec::new(),
            table: Some("users".to_string()),
            mode: Some("RowExclusiveLock".to_string()),
            granted: Some(true),
        }
    }

    #[test]
    fn a_hidden_transaction_counts_once_seen_long_enough() {
        let short = Duration::from_millis(50);
        let mut sightings = Sightings::default();
        let sessions = [holder("3/7", None)];
        let (blockers, undecided) = sightings.blockers(&sessions, short);
        assert!(blockers.is_empty() && undecided);
        std::thread::sleep(short);
        let (blockers, _) = sightings.blockers(&sessions, short);
        assert_eq!(blockers.len(), 1);
        assert!(blockers[0].seen_seconds.unwrap() >= 0.05);
        assert!(
            describe(&blockers).starts_with(
                "pid 42 (user other, application psql, transaction start hidden, seen for"
            ),
            "{}",
            describe(&blockers)
        );
        // Another transaction of the same session starts the clock again.
        let (blockers, undecided) = sightings.blockers(&[holder("3/8", None)], short);
        assert!(blockers.is_empty() && undecided);
    }

    #[test]
    fn a_visible_transaction_counts_by_its_age() {
        let short = Duration::from_secs(1);
        let mut sightings = Sightings::default();
        let (blockers, undecided) = sightings.blockers(&[holder("3/7", Some(0.5))], short);
        assert!(blockers.is_empty() && !undecided);
        let (blockers, _) = sightings.blockers(&[holder("3/7", Some(1.4))], short);
        assert_eq!(blockers[0].seen_seconds, None);
        assert_eq!(
            describe(&blockers),
            "pid 42 (user other, application psql, transaction open 1s) holds RowExclusiveLock on users"
        );
    }
}
