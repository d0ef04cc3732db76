//! One run's connection: dbops's tables, the target's lock, getting both back after a lost
//! connection, and the durable end of the run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Statement};

use crate::config::{Settings, pg_millis};
use crate::database::{Conn, Database};
use crate::error::Error;
use crate::history::Target;
use crate::hooks::Statements;
use crate::source::Direction;

/// The lock under which dbops's tables are created: concurrent `CREATE ...
/// IF NOT EXISTS` can still collide on the catalog's unique indexes.
const BOOTSTRAP_LOCK: i64 = 0x6462_6f70_735f_6273; // "dbops_bs"

/// The connection of one run, holding the target's session-level advisory lock.
pub(crate) struct Session<'a> {
    db: &'a Database,
    pub target: &'a Target,
    pub settings: &'a Settings,
    conn: Conn,
    /// The backend pids this run has used, one per connection: the run log
    /// tells this run's own work from another runner's by them.
    pub pids: Vec<i32>,
    /// The hooks' statements prepared on this connection.
    pub statements: Statements,
    /// The audit INSERT prepared on this connection, per chain table.
    pub audit_inserts: HashMap<&'static str, Statement>,
    locked: bool,
}

impl<'a> Session<'a> {
    /// Connects, creates dbops's tables when missing (and its audit tables,
    /// with `audit`), and takes the target's lock.
    pub async fn open(
        db: &'a Database,
        target: &'a Target,
        settings: &'a Settings,
        audit: bool,
    ) -> Result<Session<'a>, Error> {
        let mut session = Session::connect(db, target, settings).await?;
        session.bootstrap(audit).await?;
        session.lock().await?;
        Ok(session)
    }

    /// Connects for reading only: no lock, no DDL.
    ///
    /// Refuses a connection that does not keep its own server session (a
    /// pooler in transaction pooling mode) before anything else is sent:
    /// the lock and the prepared statements need one.
    pub async fn connect(
        db: &'a Database,
        target: &'a Target,
        settings: &'a Settings,
    ) -> Result<Session<'a>, Error> {
        let conn = db
            .connect(&format!("dbops migrate {}", target.name))
            .await?;
        check_session_kept(db, &conn).await?;
        let pid = backend_pid(&conn).await?;
        Ok(Session {
            db,
            target,
            settings,
            conn,
            pids: vec![pid],
            statements: Statements::default(),
            audit_inserts: HashMap::new(),
            locked: false,
        })
    }

    pub fn client(&self) -> &Client {
        &self.conn
    }

    /// Creates the bookkeeping tables and, with `audit`, dbops's audit tables,
    /// unless they are all there already (the usual case, which takes no
    /// lock and no DDL).
    pub async fn bootstrap(&self, audit: bool) -> Result<(), Error> {
        let ready: bool = self
            .client()
            .query_one(
                &format!(
                    "SELECT to_regclass($1) IS NOT NULL AND to_regclass('dbops.runs') IS NOT NULL
                        AND EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('dbops.run_log')
                                    AND attname = 'application_name' AND NOT attisdropped)
                        AND (NOT $2 OR {})",
                    crate::audit::FALLBACK_READY
                ),
                &[&self.target.history_table, &audit],
            )
            .await
            .map_err(Error::db("looking for dbops's bookkeeping tables"))?
            .get(0);
        if ready {
            return Ok(());
        }
        let audit = if audit {
            format!(
                "SELECT pg_advisory_xact_lock({}); {}",
                crate::audit::CHAIN_LOCK,
                crate::audit::FALLBACK_DDL
            )
        } else {
            String::new()
        };
        let sql = format!(
            "BEGIN; SELECT pg_advisory_xact_lock({BOOTSTRAP_LOCK}); {} {}; {audit} COMMIT;",
            crate::run_log::DDL,
            self.target.history_ddl()
        );
        if let Err(e) = self.client().batch_execute(&sql).await {
            let _ = self.client().batch_execute("ROLLBACK").await;
            return Err(Error::Database {
                context: "creating dbops's bookkeeping tables".to_string(),
                source: e,
            });
        }
        Ok(())
    }

    /// Takes the target's session-level advisory lock, waiting at most `lock_wait`.
    async fn lock(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        let wait = pg_millis(self.settings.lock_wait);
        let key = self.target.lock_key;
        let result = self
            .client()
            .batch_execute(&format!(
                "SET lock_timeout = '{wait}'; SELECT pg_advisory_lock({key}); RESET lock_timeout;"
            ))
            .await;
        match result {
            Ok(()) => {
                self.locked = true;
                tracing::debug!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "took the migration lock"
                );
                Ok(())
            }
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                let _ = self.client().batch_execute("RESET lock_timeout").await;
                Err(Error::LockTimeout {
                    target: self.target.name.clone(),
                    waited: started.elapsed(),
                    holder: self.describe_lock_holder().await,
                })
            }
            Err(e) => Err(Error::Database {
                context: "taking the migration lock".to_string(),
                source: e,
            }),
        }
    }

    /// Who holds the target's lock: pid, user, application, address, state
    /// and age; never what it runs, which may carry secrets.
    async fn describe_lock_holder(&self) -> String {
        let query = "
            SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
                   coalesce(host(a.client_addr), 'local socket'), coalesce(a.state, 'unknown'),
                   coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), 'unknown')
            FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid";
        match self
            .client()
            .query_opt(query, &[&self.target.lock_key])
            .await
        {
            Ok(Some(row)) => format!(
                "held by pid {} (user {:?}, application {:?}, from {}, state {}, connected since {})",
                row.get::<_, i32>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2),
                row.get::<_, String>(3),
                row.get::<_, String>(4),
                row.get::<_, String>(5),
            ),
            Ok(None) => "the holder released it just now; try again".to_string(),
            Err(e) => format!("the holder could not be looked up: {e}"),
        }
    }

    /// Gets a lost connection back: reconnects with backoff until it works
    /// or the reconnect budget is spent, then takes the lock again. The
    /// caller then reads the history afresh: a commit whose answer was lost
    /// may or may not have happened.
    pub async fn recover(&mut self, lost: &str) -> Result<(), Error> {
        let started = Instant::now();
        let budget = self.settings.reconnect_budget;
        tracing::warn!(error = %lost, budget_ms = budget.as_millis() as u64, "lost the database connection; reconnecting");
        let mut last = lost.to_string();
        for attempt in 1.. {
            let pause = self
                .settings
                .retry
                .backoff(attempt)
                .max(Duration::from_millis(50));
            if started.elapsed() + pause > budget {
                break;
            }
            tokio::time::sleep(pause).await;
            match self
                .db
                .connect(&format!("dbops migrate {}", self.target.name))
                .await
            {
                Ok(conn) => {
                    let pid = match backend_pid(&conn).await {
                        Ok(pid) => pid,
                        Err(e) => {
                            last = e.to_string();
                            continue;
                        }
                    };
                    std::mem::replace(&mut self.conn, conn).discard();
                    self.pids.push(pid);
                    self.statements = Statements::default();
                    self.audit_inserts.clear();
                    self.locked = false;
                    match self.lock().await {
                        Ok(()) => {
                            tracing::info!(
                                attempt,
                                after_ms = started.elapsed().as_millis() as u64,
                                "reconnected and took the migration lock again"
                            );
                            return Ok(());
                        }
                        Err(Error::Database { source, .. }) if is_connection_lost(&source) => {
                            last = source.to_string();
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(
                    e @ (Error::Authentication { .. } | Error::Config { .. } | Error::Connect(_)),
                ) => return Err(e),
                Err(e) => {
                    tracing::warn!(attempt, error = %crate::error::chain(&e), "reconnecting failed; trying again");
                    last = crate::error::chain(&e);
                }
            }
        }
        Err(Error::ConnectionLost {
            target: self.target.name.clone(),
            budget,
            last_error: last,
            applied_before: Vec::new(),
        })
    }

    /// Ends the run: makes what it committed durable when any of it is not
    /// yet, records the run, and releases the lock.
    ///
    /// The run's row is written with `synchronous_commit = on`. Its commit
    /// record follows every commit of the run in the WAL, and a commit that
    /// wrote a row waits until the WAL up to it is on disk, so once this
    /// returns every migration of the run survives a server crash.
    pub async fn close(
        &mut self,
        direction: Direction,
        plan_hash: &str,
        steps: usize,
        durable_needed: bool,
    ) -> Result<(), Error> {
        let mut sql = String::new();
        if durable_needed {
            sql.push_str(&format!(
                "BEGIN; SET LOCAL synchronous_commit = on;
                 INSERT INTO dbops.runs (target, direction, plan_hash, finished_at, steps)
                 VALUES ('{}', '{}', '{plan_hash}', clock_timestamp(), {steps}); COMMIT; ",
                self.target.name,
                direction.as_str(),
            ));
        }
        if self.locked {
            sql.push_str(&format!(
                "SELECT pg_advisory_unlock({}); ",
                self.target.lock_key
            ));
        }
        sql.push_str("RESET ALL;");
        self.client().batch_execute(&sql).await.map_err(Error::db(
            "recording the run and releasing the migration lock",
        ))?;
        self.locked = false;
        Ok(())
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // A session dropped while locked (an error path) must not hand a
        // locked connection back to a pool: close it, which frees the lock.
        if self.locked {
            self.conn.detach();
        }
    }
}

/// How long the pooling check waits for its second connection, which a
/// service's pool may not have to spare.
const SECOND_CONNECTION_WAIT: Duration = Duration::from_secs(2);

/// Refuses `conn` when it does not keep its own server session, checked
/// with a second connection to the same database (`pgconn::check_session_kept`).
async fn check_session_kept(db: &Database, conn: &Conn) -> Result<(), Error> {
    let second =
        tokio::time::timeout(SECOND_CONNECTION_WAIT, db.connect("dbops session check")).await;
    let second = match second {
        Ok(second) => Some(second?),
        Err(_) => {
            tracing::debug!(
                "no second connection within {SECOND_CONNECTION_WAIT:?}; checking the session alone"
            );
            None
        }
    };
    pgconn::check_session_kept(conn, second.as_deref())
        .await
        .map_err(Error::from_connect)
}

/// Readies a new connection and returns its backend pid.
///
/// dbops's own prepared statements (the hooks' catalog reads, the audit
/// INSERT) are planned once per connection, not at every execution:
/// `plan_cache_mode = force_generic_plan`. A migration's own statements run
/// with the server's setting, which each step restores for itself (`SET
/// LOCAL plan_cache_mode TO DEFAULT` in its transaction, a session `SET`
/// around a no-transaction script).
async fn backend_pid(client: &Client) -> Result<i32, Error> {
    let messages = client
        .simple_query("SET plan_cache_mode = force_generic_plan; SELECT pg_backend_pid()")
        .await
        .map_err(Error::db("setting up the connection"))?;
    let pid = messages.iter().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
        _ => None,
    });
    pid.ok_or_else(|| Error::Config {
        origin: "database connection".into(),
        message: "the server answered SELECT pg_backend_pid() without a row".into(),
    })
}

/// Whether an error means the connection is gone (or going) rather than that
/// a statement failed: the socket closed or failed, or the server is shutting
/// down, restarting or terminated this backend.
pub(crate) fn is_connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(db) => {
            let code = db.code();
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || code.code().starts_with("08")
        }
        None => std::error::Error::source(e)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some()),
    }
}
