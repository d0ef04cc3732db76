//! One run's connection: bookkeeping tables, the target lock, and applying one script with retries.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;

use crate::audit::{AuditEntry, ChainTarget};
use crate::config::{Settings, pg_millis};
use crate::database::{Conn, Database};
use crate::error::Error;
use crate::source::{Direction, Migration, Script};
use crate::split::{line_column, split_statements};
use crate::status::{PartialMigration, RunLogEntry};

/// The schema that holds dbops's own bookkeeping.
pub const BOOKKEEPING_SCHEMA: &str = "dbops";

const BOOTSTRAP_LOCK: i64 = 0x6462_6f70_735f_6273; // "dbops_bs"

const BOOKKEEPING_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS dbops;
COMMENT ON SCHEMA dbops IS 'Bookkeeping of the dbops migration tool: history, run log, audit fallback.';
CREATE TABLE IF NOT EXISTS dbops.run_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target text NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('up', 'down')),
    transactional boolean NOT NULL,
    checksum text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    outcome text NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'resolved')),
    error text,
    statements_done integer NOT NULL DEFAULT 0,
    statements_total integer NOT NULL DEFAULT 0,
    backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
    resolution text,
    resolved_at timestamptz
);
CREATE INDEX IF NOT EXISTS run_log_target_version_idx ON dbops.run_log (target, version);
CREATE INDEX IF NOT EXISTS run_log_open_idx ON dbops.run_log (target) WHERE outcome IN ('running', 'failed') AND NOT transactional;
";

/// The names of one target's bookkeeping objects.
#[derive(Debug, Clone)]
pub(crate) struct TargetNames {
    pub name: String,
    pub history_table: String,
    pub lock_key: i64,
}

impl TargetNames {
    pub fn new(name: &str) -> Result<TargetNames, Error> {
        let valid = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && name.as_bytes()[0].is_ascii_lowercase();
        if !valid {
            return Err(Error::Config {
                origin: format!("target {name:?}"),
                message:
                    "target names are lowercase letters, digits and '_', starting with a letter"
                        .to_string(),
            });
        }
        let history_table = format!("{BOOKKEEPING_SCHEMA}.{name}_schema_history");
        let digest = Sha256::digest(format!("dbops migrate {history_table}").as_bytes());
        let lock_key = i64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
        Ok(TargetNames {
            name: name.to_string(),
            history_table,
            lock_key,
        })
    }
}

/// A row of the history table.
#[derive(Debug, Clone)]
pub(crate) struct AppliedRow {
    pub version: i64,
    pub name: String,
    pub applied_on: Option<OffsetDateTime>,
    pub checksum: Option<u64>,
}

/// What one script run is: which migration, which way, which file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step<'a> {
    pub migration: &'a Migration,
    pub direction: Direction,
}

impl<'a> Step<'a> {
    pub fn script(&self) -> &'a Script {
        match self.direction {
            Direction::Up => &self.migration.up,
            Direction::Down => &self.migration.down,
        }
    }
}

/// Whether a commit took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committed {
    /// The step is recorded.
    Yes,
    /// The connection dropped and the step is not recorded: run it again.
    Lost,
}

/// What [`Session::hand_off`] did: the previous step's commit, and the next
/// step's transaction.
pub(crate) struct Handoff {
    /// Whether the previous step committed; an error when its audit entry or
    /// its `COMMIT` failed, and it was rolled back.
    pub prev: Result<Committed, Error>,
    /// The next step's open transaction once the previous step committed, or
    /// its error; `None` when it was not attempted (the previous step failed,
    /// or the connection dropped and it must be run again the usual way).
    pub next: Option<Result<(Applied, Option<ChainTarget>), Error>>,
}

/// The outcome of applying one script.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Applied {
    pub attempts: u32,
}

enum Failure {
    Retryable(tokio_postgres::Error, &'static str),
    ConnectionLost(tokio_postgres::Error),
    Fatal(Error),
}

/// The connection of one run, holding the target's session-level advisory lock.
pub(crate) struct Session<'a> {
    db: &'a Database,
    pub target: &'a TargetNames,
    settings: &'a Settings,
    conn: Option<Conn>,
    locked: bool,
    /// Whether a migration committed without waiting for its WAL flush, so
    /// that [`Session::close`] must make it durable.
    unflushed: bool,
    /// The audit INSERT, prepared on this connection for one chain table.
    /// The audit tables whose INSERT is prepared on this connection.
    audit_prepared: Vec<&'static str>,
}

impl<'a> Session<'a> {
    /// Connects, creates the bookkeeping tables if needed, and takes the target lock.
    pub async fn open(
        db: &'a Database,
        target: &'a TargetNames,
        settings: &'a Settings,
    ) -> Result<Session<'a>, Error> {
        let conn = db
            .connect(&format!("dbops migrate {}", target.name))
            .await?;
        let mut session = Session {
            db,
            target,
            settings,
            conn: Some(conn),
            locked: false,
            unflushed: false,
            audit_prepared: Vec::new(),
        };
        session.bootstrap().await?;
        session.lock().await?;
        Ok(session)
    }

    /// Connects for reading only: no lock, no bookkeeping DDL.
    pub async fn open_read_only(
        db: &'a Database,
        target: &'a TargetNames,
        settings: &'a Settings,
    ) -> Result<Session<'a>, Error> {
        let conn = db.connect(&format!("dbops status {}", target.name)).await?;
        Ok(Session {
            db,
            target,
            settings,
            conn: Some(conn),
            locked: false,
            unflushed: false,
            audit_prepared: Vec::new(),
        })
    }

    /// Connects, creates the bookkeeping tables if needed (and, with `audit`,
    /// dbops's own audit tables), and disconnects: no lock is left behind.
    pub async fn prepare(
        db: &'a Database,
        target: &'a TargetNames,
        settings: &'a Settings,
        audit: bool,
    ) -> Result<(), Error> {
        let mut session = Session::open_read_only(db, target, settings).await?;
        session.bootstrap_with(audit).await?;
        session.conn = None;
        Ok(())
    }

    pub fn client(&self) -> &tokio_postgres::Client {
        self.conn
            .as_ref()
            .expect("a session has a connection until it is closed")
    }

    async fn bootstrap(&self) -> Result<(), Error> {
        self.bootstrap_with(false).await
    }

    /// Creates the bookkeeping tables and, with `audit`, the audit tables.
    async fn bootstrap_with(&self, audit: bool) -> Result<(), Error> {
        // Concurrent `CREATE ... IF NOT EXISTS` can still collide on the
        // catalog's unique indexes, so bootstrap runs under a lock of its own
        // that every target shares; the audit tables are created under the
        // audit chain's lock, as the audit writers create them.
        let history = refinery_history_ddl(&self.target.history_table);
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
            "BEGIN; SELECT pg_advisory_xact_lock({BOOTSTRAP_LOCK}); {BOOKKEEPING_DDL} {history}; {audit} COMMIT;"
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
                tracing::debug!(target = %self.target.name, waited_ms = started.elapsed().as_millis() as u64, "took the migration lock");
                Ok(())
            }
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                let _ = self.client().batch_execute("RESET lock_timeout").await;
                let holder = self.describe_lock_holder().await;
                Err(Error::LockTimeout {
                    target: self.target.name.clone(),
                    waited: started.elapsed(),
                    holder,
                })
            }
            Err(e) => Err(Error::Database {
                context: "taking the migration lock".to_string(),
                source: e,
            }),
        }
    }

    async fn describe_lock_holder(&self) -> String {
        let key = self.target.lock_key;
        let query = "
            SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
                   coalesce(host(a.client_addr), 'local socket'), coalesce(a.state, ''),
                   coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), ''),
                   coalesce(left(a.query, 120), '')
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid";
        match self.client().query_opt(query, &[&key]).await {
            Ok(Some(row)) => format!(
                "held by pid {} (user {:?}, application {:?}, from {}, connected since {}, state {:?}, last query {:?})",
                row.get::<_, i32>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2),
                row.get::<_, String>(3),
                row.get::<_, String>(5),
                row.get::<_, String>(4),
                row.get::<_, String>(6),
            ),
            Ok(None) => "the holder released it just now; try again".to_string(),
            Err(e) => format!("the holder could not be looked up: {e}"),
        }
    }

    /// Replaces a lost connection and takes the lock again.
    async fn reconnect(&mut self) -> Result<(), Error> {
        if let Some(conn) = self.conn.take() {
            conn.discard();
        }
        self.locked = false;
        self.audit_prepared.clear();
        self.conn = Some(
            self.db
                .connect(&format!("dbops migrate {}", self.target.name))
                .await?,
        );
        self.lock().await
    }

    /// Releases the lock and the connection.
    pub async fn close(mut self) -> Result<(), Error> {
        if self.unflushed {
            // A transaction with an xid commits with synchronous_commit on:
            // its commit waits for the WAL up to it to be flushed, which
            // includes every migration this run committed before.
            self.client()
                .batch_execute("BEGIN; SELECT txid_current(); COMMIT;")
                .await
                .map_err(Error::db("flushing the migrations' commits to disk"))?;
            self.unflushed = false;
        }
        if self.locked {
            let key = self.target.lock_key;
            self.client()
                .batch_execute(&format!("SELECT pg_advisory_unlock({key}); RESET ALL;"))
                .await
                .map_err(Error::db("releasing the migration lock"))?;
            self.locked = false;
        }
        Ok(())
    }

    pub async fn applied(&self) -> Result<Vec<AppliedRow>, Error> {
        let exists: bool = self
            .client()
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&self.target.history_table],
            )
            .await
            .map_err(Error::db("looking for the history table"))?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT version, name, applied_on, checksum FROM {} ORDER BY version",
                    self.target.history_table
                ),
                &[],
            )
            .await
            .map_err(Error::db("reading the migration history"))?;
        Ok(rows
            .into_iter()
            .map(|row| AppliedRow {
                version: row.get(0),
                name: row.get::<_, Option<String>>(1).unwrap_or_default(),
                applied_on: row.get::<_, Option<String>>(2).and_then(|s| {
                    OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).ok()
                }),
                checksum: row.get::<_, Option<String>>(3).and_then(|s| s.parse().ok()),
            })
            .collect())
    }

    async fn run_log_exists(&self) -> Result<bool, Error> {
        Ok(self
            .client()
            .query_one("SELECT to_regclass('dbops.run_log') IS NOT NULL", &[])
            .await
            .map_err(Error::db("looking for the run log"))?
            .get(0))
    }

    /// Unresolved non-transactional runs. A `running` entry whose backend is
    /// still alive is a run in progress, not a partial one.
    pub async fn partial(&self) -> Result<Vec<PartialMigration>, Error> {
        if !self.run_log_exists().await? {
            return Ok(Vec::new());
        }
        let rows = self
            .client()
            .query(
                "SELECT r.version, r.name, r.direction, r.started_at, r.statements_done, r.statements_total, r.error
                 FROM dbops.run_log r
                 WHERE r.target = $1 AND NOT r.transactional AND r.outcome IN ('running', 'failed')
                   AND NOT (r.outcome = 'running' AND r.backend_pid <> pg_backend_pid() AND EXISTS (
                        SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.backend_pid AND a.backend_start <= r.started_at))
                 ORDER BY r.version, r.id",
                &[&self.target.name],
            )
            .await
            .map_err(Error::db("reading the run log"))?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let findings = self.catalog_findings().await?;
        Ok(rows
            .into_iter()
            .map(|row| PartialMigration {
                version: row.get(0),
                name: row.get(1),
                direction: if row.get::<_, String>(2) == "down" {
                    Direction::Down
                } else {
                    Direction::Up
                },
                started_at: row.get(3),
                statements_done: row.get(4),
                statements_total: row.get(5),
                error: row.get(6),
                findings: findings.clone(),
            })
            .collect())
    }

    /// What an interrupted non-transactional migration typically leaves in the catalog.
    async fn catalog_findings(&self) -> Result<Vec<String>, Error> {
        let rows = self
            .client()
            .query(
                "SELECT format('invalid index %I.%I on %I.%I (indisvalid = false)', n.nspname, ic.relname, n.nspname, t.relname)
                 FROM pg_index i
                 JOIN pg_class ic ON ic.oid = i.indexrelid
                 JOIN pg_class t ON t.oid = i.indrelid
                 JOIN pg_namespace n ON n.oid = ic.relnamespace
                 WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 UNION ALL
                 SELECT format('constraint %I on %I.%I is NOT VALID', c.conname, n.nspname, t.relname)
                 FROM pg_constraint c
                 JOIN pg_class t ON t.oid = c.conrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                 WHERE NOT c.convalidated AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(Error::db("inspecting the catalog for leftovers"))?;
        Ok(rows.into_iter().map(|row| row.get(0)).collect())
    }

    pub async fn last_outcome(&self) -> Result<Option<RunLogEntry>, Error> {
        if !self.run_log_exists().await? {
            return Ok(None);
        }
        let row = self
            .client()
            .query_opt(
                "SELECT version, name, direction, outcome, started_at, finished_at, error
                 FROM dbops.run_log WHERE target = $1 ORDER BY id DESC LIMIT 1",
                &[&self.target.name],
            )
            .await
            .map_err(Error::db("reading the run log"))?;
        Ok(row.map(|row| RunLogEntry {
            version: row.get(0),
            name: row.get(1),
            direction: if row.get::<_, String>(2) == "down" {
                Direction::Down
            } else {
                Direction::Up
            },
            outcome: row.get(3),
            started_at: row.get(4),
            finished_at: row.get(5),
            error: row.get(6),
        }))
    }

    /// Whether the history shows `step` as done: a row for an up, no row for a down.
    async fn is_done(&self, step: &Step<'_>) -> Result<bool, Error> {
        let present: bool = self
            .client()
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE version = $1)",
                    self.target.history_table
                ),
                &[&step.migration.version],
            )
            .await
            .map_err(Error::db("checking the history after a lost connection"))?
            .get(0);
        Ok(present == (step.direction == Direction::Up))
    }

    /// The statements that record `step` in the history table.
    pub fn history_statement(&self, step: &Step<'_>) -> String {
        let m = step.migration;
        match step.direction {
            Direction::Up => format!(
                "INSERT INTO {} (version, name, applied_on, checksum) VALUES ({}, '{}', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '{}')",
                self.target.history_table, m.version, m.slug, m.checksum
            ),
            Direction::Down => format!(
                "DELETE FROM {} WHERE version = {}",
                self.target.history_table, m.version
            ),
        }
    }

    /// Opens the step's transaction and runs, in one round trip, `BEGIN`, the
    /// timeouts, the script, `record` (the history change) and the run-log
    /// row. The transaction is left open: the caller runs its after-checks
    /// and audit entry in it, then calls [`Session::commit`]. Lock timeouts
    /// and lost connections are retried with backoff; nothing was committed
    /// when they happen, so a retry is always safe.
    pub async fn begin_transactional(
        &mut self,
        step: &Step<'_>,
        record: &str,
        audit: bool,
    ) -> Result<(Applied, Option<ChainTarget>), Error> {
        self.begin_transactional_after(step, record, audit, None)
            .await
    }

    /// [`Session::begin_transactional`], whose first attempt already ran
    /// (and failed) when `first` is given.
    async fn begin_transactional_after(
        &mut self,
        step: &Step<'_>,
        record: &str,
        audit: bool,
        mut first: Option<(Failure, OffsetDateTime)>,
    ) -> Result<(Applied, Option<ChainTarget>), Error> {
        let policy = self.settings.retry.clone();
        let mut attempt = 1;
        loop {
            let (failure, started_at) = match first.take() {
                Some(first) => first,
                None => {
                    let started_at = OffsetDateTime::now_utc();
                    match self.try_transaction(step, record, started_at, audit).await {
                        Ok(chain) => return Ok((Applied { attempts: attempt }, chain)),
                        Err(failure) => (failure, started_at),
                    }
                }
            };
            match failure {
                Failure::Fatal(error) => {
                    self.log_failure(step, true, started_at, &error).await;
                    return Err(error);
                }
                Failure::Retryable(e, why) if attempt < policy.max_attempts => {
                    let pause = policy.backoff(attempt);
                    tracing::warn!(version = step.migration.version, attempt, pause_ms = millis(pause), error = %e, "{why}; retrying");
                    tokio::time::sleep(pause).await;
                }
                Failure::ConnectionLost(e) if attempt < policy.max_attempts => {
                    let pause = policy.backoff(attempt);
                    tracing::warn!(version = step.migration.version, attempt, pause_ms = millis(pause), error = %e, "connection lost before commit; reconnecting");
                    tokio::time::sleep(pause).await;
                    self.reconnect().await?;
                }
                Failure::Retryable(e, _) | Failure::ConnectionLost(e) => {
                    let error = sql_error(step, e, Vec::new());
                    self.log_failure(step, true, started_at, &error).await;
                    return Err(error);
                }
            }
            attempt += 1;
        }
    }

    /// Commits the transaction [`Session::begin_transactional`] opened,
    /// writing `audit`'s entry in it first: one query, one round trip. Should
    /// the INSERT fail, the query stops there, the transaction is rolled
    /// back, and the migration is not applied.
    ///
    /// When the connection drops during `COMMIT`, the engine reconnects, takes
    /// the lock again and reads the history: the commit may have gone
    /// through with only its acknowledgement lost.
    pub async fn commit(
        &mut self,
        step: &Step<'_>,
        audit: Option<(&AuditEntry, ChainTarget)>,
    ) -> Result<Committed, Error> {
        let query = match self.commit_statements(audit).await {
            Ok(query) => query,
            Err(e) => {
                self.rollback().await;
                return Err(e);
            }
        };
        let result = match (run_batch(self.client(), &query).await, audit) {
            (Ok(_), _) => Ok(()),
            // The entry's INSERT failed: the transaction is aborted, and the
            // COMMIT did not run.
            (Err((e, 0)), Some((_, chain))) if e.as_db_error().is_some() => {
                self.rollback().await;
                return Err(audit_write_error(step, chain, e));
            }
            (Err((e, _)), _) => Err(e),
        };
        match result {
            Ok(()) => {
                self.unflushed = true;
                Ok(Committed::Yes)
            }
            Err(e) if e.is_closed() || e.as_db_error().is_none() => {
                tracing::warn!(version = step.migration.version, error = %e, "connection lost during commit; reconnecting");
                self.reconnect().await?;
                if self.is_done(step).await? {
                    Ok(Committed::Yes)
                } else {
                    Ok(Committed::Lost)
                }
            }
            Err(e) => {
                self.rollback().await;
                Err(sql_error(step, e, Vec::new()))
            }
        }
    }

    /// The statements that end the open transaction: `audit`'s entry, written
    /// by an `EXECUTE` of the prepared INSERT, then `COMMIT`.
    async fn commit_statements(
        &mut self,
        audit: Option<(&AuditEntry, ChainTarget)>,
    ) -> Result<String, Error> {
        let Some((entry, chain)) = audit else {
            return Ok("COMMIT".to_string());
        };
        self.prepare_audit(chain).await?;
        Ok(format!(
            "{}; COMMIT",
            crate::audit::execute_sql(chain.table, entry)
        ))
    }

    /// Prepares the audit INSERT into `chain`'s table on this connection, once
    /// (creating dbops's audit tables first when they are missing): entries
    /// are then written by an `EXECUTE` in the same query as the `COMMIT`.
    async fn prepare_audit(&mut self, chain: ChainTarget) -> Result<(), Error> {
        if self.audit_prepared.contains(&chain.table) {
            return Ok(());
        }
        let client = self.client();
        chain
            .ensure(client)
            .await
            .map_err(Error::db("creating dbops's audit tables"))?;
        client
            .batch_execute(&crate::audit::prepare_sql(chain.table))
            .await
            .map_err(|e| Error::Database {
                context: format!("preparing the audit INSERT into {}", chain.table),
                source: e,
            })?;
        self.audit_prepared.push(chain.table);
        Ok(())
    }

    /// Commits `prev`'s open transaction (with `prev_audit`'s entry) and
    /// opens `step`'s, in one query and one round trip: the entry's
    /// `EXECUTE`, `COMMIT`, then `step`'s batch. The engine calls it when
    /// `step`'s before-checks did not need the database, so nothing had to
    /// wait for `prev`'s commit.
    ///
    /// A query stops at its first error, so `step` never runs unless `prev`
    /// committed. A failure in `step`'s part is retried or reported as
    /// [`Session::begin_transactional`] would. When nothing ran (the entry or
    /// the `COMMIT` failed, or the query did not parse because of a syntax
    /// error in `step`'s script, which aborts the open transaction too),
    /// `prev` is [`Committed::Lost`]: applied again on its own, it reports its
    /// own failure if it has one. When the connection drops, the history
    /// says whether `prev` committed, and `step` is left to be run again.
    pub async fn hand_off(
        &mut self,
        prev: &Step<'_>,
        prev_audit: Option<(&AuditEntry, ChainTarget)>,
        step: &Step<'_>,
        record: &str,
        audit: bool,
    ) -> Handoff {
        let lead = match self.commit_statements(prev_audit).await {
            Ok(statements) => format!("{statements};\n"),
            Err(e) => {
                self.rollback().await;
                return Handoff {
                    prev: Err(e),
                    next: None,
                };
            }
        };
        // The statements of `prev`'s part: the entry's EXECUTE and the COMMIT.
        let prev_statements = if prev_audit.is_some() { 2 } else { 1 };
        let started_at = OffsetDateTime::now_utc();
        let (batch, skip) = self.transaction_batch(step, record, started_at, audit, &lead);
        let (e, completed) = match run_batch(self.client(), &batch).await {
            Ok(messages) => {
                self.unflushed = true;
                return Handoff {
                    prev: Ok(Committed::Yes),
                    next: Some(Ok((
                        Applied { attempts: 1 },
                        chain_target(&messages, audit),
                    ))),
                };
            }
            Err(failed) => failed,
        };
        if e.is_closed() || e.as_db_error().is_none() {
            tracing::warn!(version = prev.migration.version, error = %e, "connection lost during commit; reconnecting");
            if let Err(e) = self.reconnect().await {
                return Handoff {
                    prev: Err(e),
                    next: None,
                };
            }
            let prev = match self.is_done(prev).await {
                Ok(true) => Ok(Committed::Yes),
                Ok(false) => Ok(Committed::Lost),
                Err(e) => Err(e),
            };
            return Handoff { prev, next: None };
        }
        if completed >= prev_statements {
            // `prev` committed; `step`'s part failed.
            self.unflushed = true;
            let _ = self.client().batch_execute("ROLLBACK").await;
            let failure = self.classify_in(step, e, &batch, skip);
            let next = self
                .begin_transactional_after(step, record, audit, Some((failure, started_at)))
                .await;
            return Handoff {
                prev: Ok(Committed::Yes),
                next: Some(next),
            };
        }
        self.rollback().await;
        if completed == 1 {
            // The entry was written and the COMMIT failed, which ended the transaction.
            return Handoff {
                prev: Err(sql_error(prev, e, Vec::new())),
                next: None,
            };
        }
        // Nothing ran: `prev`'s entry or COMMIT failed, or the query did not
        // parse (a syntax error in `step`'s script aborts the open transaction
        // before any statement runs). Either way `prev` is not applied: it is
        // applied again on its own, which reports its own failure if it has
        // one, and `step` then fails or succeeds on its own.
        Handoff {
            prev: Ok(Committed::Lost),
            next: None,
        }
    }

    /// Rolls back an open transaction, best effort (the error that led here matters more).
    pub async fn rollback(&self) {
        let _ = self.client().batch_execute("ROLLBACK").await;
    }

    /// The script, history change and run-log row after `BEGIN`, in one round
    /// trip; with `audit`, also the audit chain's lock and where the chain
    /// lives. The script is followed by a newline and `;`, so a trailing line
    /// comment or a missing semicolon cannot swallow what follows.
    async fn try_transaction(
        &self,
        step: &Step<'_>,
        record: &str,
        started_at: OffsetDateTime,
        audit: bool,
    ) -> Result<Option<ChainTarget>, Failure> {
        let client = self.client();
        let (batch, skip) = self.transaction_batch(step, record, started_at, audit, "");
        match client.simple_query(&batch).await {
            Ok(messages) => Ok(chain_target(&messages, audit)),
            Err(e) => {
                if !e.is_closed() {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                Err(self.classify_in(step, e, &batch, skip))
            }
        }
    }

    /// The query that opens `step`'s transaction after `lead`: `BEGIN`, the
    /// timeouts, the script, `record` (the history change), the run-log row
    /// and, with `audit`, the audit chain's lock. Returns it with the offset
    /// of the script in it.
    fn transaction_batch(
        &self,
        step: &Step<'_>,
        record: &str,
        started_at: OffsetDateTime,
        audit: bool,
        lead: &str,
    ) -> (String, usize) {
        // Each migration commits without waiting for its WAL flush; the run
        // flushes once before it reports success (Session::close). A server
        // crash in between loses whole migrations, history and audit rows
        // with them, never half of one: the next run applies them again.
        let prefix = format!(
            "{lead}BEGIN; SET LOCAL lock_timeout = '{}'; SET LOCAL statement_timeout = '{}'; SET LOCAL synchronous_commit = off;\n",
            pg_millis(self.settings.lock_timeout),
            pg_millis(self.settings.statement_timeout)
        );
        let script = &step.script().sql;
        let run_log = self.run_log_insert(step, true, started_at, "succeeded");
        let batch = if audit {
            format!(
                "{prefix}{script}\n;\n{record};\n{run_log};\n{};",
                crate::audit::PREPARE
            )
        } else {
            format!("{prefix}{script}\n;\n{record};\n{run_log};")
        };
        (batch, prefix.len())
    }

    /// Classifies an error of `batch`, in which the script starts at byte `skip`.
    fn classify_in(
        &self,
        step: &Step<'_>,
        e: tokio_postgres::Error,
        batch: &str,
        skip: usize,
    ) -> Failure {
        if e.is_closed() || e.as_db_error().is_none() {
            return Failure::ConnectionLost(e);
        }
        match e.code() {
            Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => {
                Failure::Retryable(e, "lock_timeout reached")
            }
            Some(code)
                if *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CRASH_SHUTDOWN =>
            {
                Failure::ConnectionLost(e)
            }
            _ => Failure::Fatal(sql_error_at(step, e, batch, -(skip as isize), Vec::new())),
        }
    }

    fn run_log_insert(
        &self,
        step: &Step<'_>,
        transactional: bool,
        started_at: OffsetDateTime,
        outcome: &str,
    ) -> String {
        let statements = if transactional {
            0
        } else {
            split_statements(&step.script().sql).len()
        };
        format!(
            "INSERT INTO dbops.run_log (target, version, name, direction, transactional, checksum, started_at, finished_at, outcome, statements_done, statements_total)
             VALUES ('{}', {}, '{}', '{}', {}, '{}', '{}'::timestamptz, {}, '{}', 0, {})",
            self.target.name,
            step.migration.version,
            step.migration.slug,
            step.direction.as_str(),
            transactional,
            step.migration.checksum,
            started_at.format(&time::format_description::well_known::Rfc3339).expect("a UTC timestamp formats"),
            if outcome == "running" { "NULL" } else { "clock_timestamp()" },
            outcome,
            statements,
        )
    }

    /// Records a failed transactional attempt, best effort: the failure itself
    /// is what the caller reports.
    async fn log_failure(
        &self,
        step: &Step<'_>,
        transactional: bool,
        started_at: OffsetDateTime,
        error: &Error,
    ) {
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        let insert = self.run_log_insert(step, transactional, started_at, "failed");
        let sql = format!("{insert} RETURNING id");
        if let Ok(row) = conn.query_one(&sql, &[]).await {
            let id: i64 = row.get(0);
            let _ = conn
                .execute(
                    "UPDATE dbops.run_log SET error = $2 WHERE id = $1",
                    &[&id, &error.to_string()],
                )
                .await;
        }
    }

    /// Runs a script statement by statement outside a transaction, recording
    /// progress in the run log so that an interruption leaves a visible partial state.
    pub async fn apply_non_transactional(&mut self, step: &Step<'_>) -> Result<Applied, Error> {
        let script = step.script();
        let statements = split_statements(&script.sql);
        let started_at = OffsetDateTime::now_utc();
        let insert = format!(
            "{} RETURNING id",
            self.run_log_insert(step, false, started_at, "running")
        );
        let run_id: i64 = self
            .client()
            .query_one(&insert, &[])
            .await
            .map_err(Error::db(
                "recording the start of a non-transactional migration",
            ))?
            .get(0);
        self.client()
            .batch_execute(&format!(
                "SET lock_timeout = '{}'; SET statement_timeout = '{}';",
                pg_millis(self.settings.lock_timeout),
                pg_millis(self.settings.statement_timeout)
            ))
            .await
            .map_err(Error::db("setting timeouts"))?;
        let policy = self.settings.retry.clone();
        let mut attempts = 1;
        for (done, statement) in statements.iter().enumerate() {
            let mut attempt = 1;
            loop {
                match self.client().batch_execute(statement.text).await {
                    Ok(()) => break,
                    Err(e)
                        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
                            && attempt < policy.max_attempts =>
                    {
                        let pause = policy.backoff(attempt);
                        tracing::warn!(version = step.migration.version, statement = done + 1, attempt, error = %e, "lock_timeout reached; retrying the statement");
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                        attempts = attempts.max(attempt);
                    }
                    Err(e) => {
                        let error = sql_error_at(
                            step,
                            e,
                            statement.text,
                            statement.offset as isize,
                            Vec::new(),
                        );
                        let _ = self
                            .client()
                            .execute(
                                "UPDATE dbops.run_log SET outcome = 'failed', finished_at = clock_timestamp(), error = $2 WHERE id = $1",
                                &[&run_id, &error.to_string()],
                            )
                            .await;
                        let _ = self
                            .client()
                            .batch_execute("RESET lock_timeout; RESET statement_timeout;")
                            .await;
                        return Err(error);
                    }
                }
            }
            let done = i32::try_from(done + 1).unwrap_or(i32::MAX);
            self.client()
                .execute(
                    "UPDATE dbops.run_log SET statements_done = $2 WHERE id = $1",
                    &[&run_id, &done],
                )
                .await
                .map_err(Error::db("recording progress in the run log"))?;
        }
        let record = self.history_statement(step);
        self.client()
            .batch_execute(&format!(
                "RESET lock_timeout; RESET statement_timeout; BEGIN; {record}; UPDATE dbops.run_log SET outcome = 'succeeded', finished_at = clock_timestamp() WHERE id = {run_id}; COMMIT;"
            ))
            .await
            .map_err(Error::db("recording a non-transactional migration as done"))?;
        Ok(Applied { attempts })
    }

    /// Marks the unresolved partial entries of `version` as resolved.
    pub async fn resolve_partial(&self, version: i64, resolution: &str) -> Result<u64, Error> {
        self.client()
            .execute(
                "UPDATE dbops.run_log SET outcome = 'resolved', resolution = $3, resolved_at = clock_timestamp()
                 WHERE target = $1 AND version = $2 AND NOT transactional AND outcome IN ('running', 'failed')",
                &[&self.target.name, &version, &resolution],
            )
            .await
            .map_err(Error::db("resolving the partial run"))
    }

    /// Runs one bookkeeping statement batch in a transaction.
    pub async fn execute_in_transaction(&self, sql: &str, context: &str) -> Result<(), Error> {
        if let Err(e) = self
            .client()
            .batch_execute(&format!("BEGIN; {sql}; COMMIT;"))
            .await
        {
            let _ = self.client().batch_execute("ROLLBACK").await;
            return Err(Error::Database {
                context: context.to_string(),
                source: e,
            });
        }
        Ok(())
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // A session dropped while locked (an error path) must not hand a
        // locked connection back to a pool: close it, which frees the lock.
        if self.locked
            && let Some(conn) = self.conn.take()
        {
            conn.discard();
        }
    }
}

/// The DDL of refinery's history table, as refinery itself creates it.
fn refinery_history_ddl(table: &str) -> String {
    <tokio_postgres::Client as refinery_core::AsyncMigrate>::assert_migrations_table_query(table)
}

fn sql_error(step: &Step<'_>, e: tokio_postgres::Error, applied_before: Vec<i64>) -> Error {
    let script = step.script();
    sql_error_at(step, e, &script.sql, 0, applied_before)
}

/// Builds a [`Error::MigrationFailed`] whose line and column point into the file.
fn sql_error_at(
    step: &Step<'_>,
    e: tokio_postgres::Error,
    batch: &str,
    batch_start_in_script: isize,
    applied_before: Vec<i64>,
) -> Error {
    let script = step.script();
    let (message, code, position) = match e.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" (detail: {detail})"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" (hint: {hint})"));
            }
            if let Some(context) = db.where_() {
                message.push_str(&format!(" (context: {context})"));
            }
            let position = match db.position() {
                Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p as usize),
                _ => None,
            };
            (message, Some(db.code().code().to_string()), position)
        }
        None => (e.to_string(), None, None),
    };
    // The server counts characters from 1 in the query it was sent; map that
    // to a byte of the script, clamped into it.
    let in_script = position
        .and_then(|chars| {
            batch
                .char_indices()
                .nth(chars.saturating_sub(1))
                .map(|(i, _)| i)
        })
        .map_or(batch_start_in_script, |byte| {
            byte as isize + batch_start_in_script
        });
    let in_script = in_script.clamp(0, script.sql.len() as isize) as usize;
    let (line, column) = line_column(&script.sql, in_script);
    Error::MigrationFailed {
        version: step.migration.version,
        file: script.path.clone(),
        line,
        column,
        message,
        code,
        applied_before,
    }
}

/// Puts the versions a run completed into a failure from a later step.
pub(crate) fn with_applied_before(error: Error, done: &[i64]) -> Error {
    match error {
        Error::MigrationFailed {
            version,
            file,
            line,
            column,
            message,
            code,
            ..
        } => Error::MigrationFailed {
            version,
            file,
            line,
            column,
            message,
            code,
            applied_before: done.to_vec(),
        },
        other => other,
    }
}

/// How long ago an instant was, in milliseconds, for span fields.
pub(crate) fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A duration in milliseconds, for span fields.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Where the audit entry goes, from the last row of a transaction batch (the
/// audit chain's lock, see [`crate::audit::PREPARE`]); `None` without `audit`.
fn chain_target(
    messages: &[tokio_postgres::SimpleQueryMessage],
    audit: bool,
) -> Option<ChainTarget> {
    if !audit {
        return None;
    }
    messages.iter().rev().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(ChainTarget::from_text(
            row.get(1).unwrap_or("f"),
            row.get(2).unwrap_or("f"),
        )),
        _ => None,
    })
}

/// Runs a multi-statement query; on failure, also tells how many of its
/// statements completed before the one that failed.
async fn run_batch(
    client: &tokio_postgres::Client,
    batch: &str,
) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, (tokio_postgres::Error, usize)> {
    use futures_util::TryStreamExt;
    let stream = client.simple_query_raw(batch).await.map_err(|e| (e, 0))?;
    futures_util::pin_mut!(stream);
    let mut messages = Vec::new();
    let mut completed = 0;
    loop {
        match stream.try_next().await {
            Ok(Some(message)) => {
                if matches!(
                    message,
                    tokio_postgres::SimpleQueryMessage::CommandComplete(_)
                ) {
                    completed += 1;
                }
                messages.push(message);
            }
            Ok(None) => return Ok(messages),
            Err(e) => return Err((e, completed)),
        }
    }
}

/// The error of a migration whose audit entry could not be written.
fn audit_write_error(step: &Step<'_>, chain: ChainTarget, e: tokio_postgres::Error) -> Error {
    Error::Database {
        context: format!(
            "writing the audit entry of migration {} to {}; the migration was rolled back",
            step.migration.version, chain.table
        ),
        source: e,
    }
}
