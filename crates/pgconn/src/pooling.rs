//! Whether a connection keeps a server session of its own, which session-level
//! advisory locks, session settings and prepared statements need.
//!
//! A pooler in transaction or statement pooling mode (PgBouncer's
//! `pool_mode = transaction` or `statement`) lends a server session to a
//! client for one transaction and hands it to another client afterwards. A
//! session-level lock taken through it stays with the server session, held
//! by nobody, and a later statement of the client may run in another session.
//!
//! [`check_session_kept`] marks the session with a setting of its own
//! (`dbops.session_probe`) and notes its backend pid, each in a transaction of
//! its own. A second connection then looks for the mark, and the first reads
//! pid and mark again; three rounds, each with a fresh mark. The session is shared or swapped when the second
//! connection sees the mark (a pooler handed it the same server session, as
//! PgBouncer does by default, reusing the most recently released one), or
//! when the first one's pid or mark changed (it got another server session,
//! or the pooler reset it). Last, it prepares a statement and runs it twice,
//! each in a transaction of its own, as dbops's own statements are: a
//! statement the server session no longer knows, or another pid, is the same
//! evidence. A pooler that hands the same session back every time can pass
//! all of this by luck; callers treat a prepared statement lost later on as
//! the same refusal (`migrate_core`'s errors do).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::Error;

/// The setting that marks the session; a placeholder setting any user may set.
const MARK: &str = "dbops.session_probe";

/// How many rounds of marking and looking the check makes.
const ROUNDS: usize = 3;

/// Checks that `client` keeps one server session of its own across
/// transactions; `second` is another connection to the same target,
/// opened by the caller, which this only reads from.
///
/// Call it before taking a session-level advisory lock or preparing
/// statements. Without `second` (when none can be had, such as from a full
/// pool) only a swapped or reset session is found, not a shared one.
///
/// # Errors
/// [`Error::SessionNotKept`] naming what showed it, or
/// [`Error::SessionCheck`] when a query failed.
pub async fn check_session_kept(client: &Client, second: Option<&Client>) -> Result<(), Error> {
    // A pooler hands a released server session to the next transaction, so
    // one round can miss by luck (another idle session was handed out); a
    // few rounds with fresh marks make that unlikely.
    let pid = mark_and_look(client, second).await?;
    for _ in 1..ROUNDS {
        let pid_now = mark_and_look(client, second).await?;
        if pid_now != pid {
            return Err(pid_changed(pid, pid_now));
        }
    }
    let lost = |source: tokio_postgres::Error| {
        if source.code() == Some(&tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME) {
            Error::SessionNotKept {
                evidence: "a statement it prepared in one transaction was gone in the next".into(),
            }
        } else {
            Error::SessionCheck { source }
        }
    };
    let statement = client
        .prepare("SELECT pg_backend_pid()")
        .await
        .map_err(lost)?;
    for _ in 0..2 {
        let pid_now: i32 = client
            .query_one(&statement, &[])
            .await
            .map_err(lost)?
            .get(0);
        if pid_now != pid {
            return Err(pid_changed(pid, pid_now));
        }
    }
    Ok(())
}

/// The refusal for a connection whose backend pid went from `before` to `after`.
fn pid_changed(before: i32, after: i32) -> Error {
    Error::SessionNotKept {
        evidence: format!(
            "its server session changed between two of its transactions: backend pid {before}, then pid {after}"
        ),
    }
}

/// One round of [`check_session_kept`]: a fresh mark set by `client`,
/// looked for by `second`, and read back by `client`. Returns the backend
/// pid `client` had.
async fn mark_and_look(client: &Client, second: Option<&Client>) -> Result<i32, Error> {
    let mark = unique_mark();
    query(client, &format!("SET {MARK} = '{mark}'")).await?;
    let (pid, _) = pid_and_mark(client).await?;
    if let Some(second) = second {
        let (other_pid, seen) = pid_and_mark(second).await?;
        if seen == mark {
            return Err(Error::SessionNotKept {
                evidence: format!(
                    "a second connection was handed the same server session, pid {other_pid}"
                ),
            });
        }
    }
    let (pid_after, kept) = pid_and_mark(client).await?;
    if pid_after != pid || kept != mark {
        return Err(Error::SessionNotKept {
            evidence: format!(
                "its server session changed between two of its transactions: backend pid {pid}, then pid {pid_after}, and a session setting {}",
                if kept == mark { "kept" } else { "lost" }
            ),
        });
    }
    query(client, &format!("RESET {MARK}")).await?;
    Ok(pid)
}

/// The backend pid and the session's mark ("" when unset), in one transaction.
async fn pid_and_mark(client: &Client) -> Result<(i32, String), Error> {
    let messages = query(
        client,
        &format!("SELECT pg_backend_pid(), coalesce(current_setting('{MARK}', true), '')"),
    )
    .await?;
    let row = messages.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => Some((
            row.get(0).and_then(|pid| pid.parse().ok()).unwrap_or(0),
            row.get(1).unwrap_or_default().to_string(),
        )),
        _ => None,
    });
    // A server always answers with one row; no row (or no pid) counts as a
    // session without the mark, which the caller reports as changed.
    Ok(row.unwrap_or_default())
}

async fn query(client: &Client, sql: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
    client
        .simple_query(sql)
        .await
        .map_err(|source| Error::SessionCheck { source })
}

/// A mark no other process or call uses: process id, time and a counter.
fn unique_mark() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
