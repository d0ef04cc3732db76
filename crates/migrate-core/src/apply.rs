//! Applying one migration script: its before-checks, the script (in a transaction with its
//! after-checks, history change, run-log row and audit entry, or statement by statement outside
//! one), retries of lock waits, and the record of a failure.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tracing::Instrument;

use crate::blockers::BlockerWatch;
use crate::config::pg_millis;
use crate::error::Error;
use crate::hooks::{Finding, Hook, HookContext, Outcome, Prepared, Severity};
use crate::migrator::{CompletedStep, Migrator};
use crate::session::{Session, is_connection_lost};
use crate::source::{Direction, Migration, Script};
use crate::split::{line_column, split_statements};

/// Scripts longer than this are sent in several queries, at statement
/// boundaries, so that a large file is never copied whole into a query.
const CHUNK_BYTES: usize = 1 << 20;

/// What a no-transaction script's run sets back on the session.
const RESET_AFTER_STATEMENTS: &str =
    "RESET lock_timeout; RESET statement_timeout; SET plan_cache_mode = force_generic_plan;";

/// One script to run: which migration, which way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step<'a> {
    pub migration: &'a Migration,
    pub direction: Direction,
}

impl<'a> Step<'a> {
    pub fn script(&self) -> &'a Script {
        self.migration.script(self.direction)
    }
}

/// Why a step did not complete.
#[derive(Debug)]
pub(crate) enum StepError {
    /// The connection was lost (the error's words). Whether the step
    /// committed is for the history to tell once the connection is back.
    Lost(String),
    /// A lock wait gave up (`lock_timeout`, a deadlock): nothing of the
    /// step is left, and it can run again.
    Retry(tokio_postgres::Error),
    /// The step failed for good.
    Failed(Error),
}

impl From<Error> for StepError {
    fn from(error: Error) -> StepError {
        match error {
            Error::Database { source, .. } if is_connection_lost(&source) => {
                StepError::Lost(source.to_string())
            }
            other => StepError::Failed(other),
        }
    }
}

impl Migrator {
    /// Applies one step in a span of its own: before-checks, then the script
    /// (retried with backoff when a lock wait gives up), then, on failure,
    /// the after-checks, run-log row and audit entry of the failure.
    pub(crate) async fn apply(
        &self,
        session: &mut Session<'_>,
        step: Step<'_>,
    ) -> Result<CompletedStep, StepError> {
        let migration = step.migration;
        let span = tracing::info_span!(
            "migrate.migration",
            target = %self.target.name,
            version = migration.version,
            slug = %migration.slug,
            checksum = %migration.checksum,
            direction = step.direction.as_str(),
            no_transaction = step.script().no_transaction,
            duration_ms = tracing::field::Empty,
            attempts = tracing::field::Empty,
            rows_affected = tracing::field::Empty,
            outcome = tracing::field::Empty,
            audit.head = tracing::field::Empty,
        );
        match self.apply_in_span(session, step).instrument(span).await {
            // Whatever failed (a hook's query, say), a closed connection
            // means the step's fate is for the history to tell.
            Err(StepError::Failed(error)) if session.client().is_closed() => {
                Err(StepError::Lost(crate::error::chain(&error)))
            }
            other => other,
        }
    }

    async fn apply_in_span(
        &self,
        session: &mut Session<'_>,
        step: Step<'_>,
    ) -> Result<CompletedStep, StepError> {
        let span = tracing::Span::current();
        let started = Instant::now();
        let (mut findings, prepared) = self.before_hooks(session, step).await?;
        if let Some(refusal) = findings.iter().find(|f| f.severity == Severity::Refuse) {
            span.record("outcome", "refused");
            return Err(StepError::Failed(Error::Refused {
                version: step.migration.version,
                finding: refusal.message.clone(),
                hook: refusal.hook.clone(),
            }));
        }
        let policy = &self.settings.retry;
        let mut attempt = 1;
        let result = loop {
            // The last attempt after lock waits that gave up: watch who
            // blocks it, so that a final failure can say.
            let watch = (attempt > 1 && attempt == policy.max_attempts).then(|| {
                let pid = *session.pids.last().expect("a session has a backend");
                BlockerWatch::start(&self.db, pid, self.settings.lock_timeout / 2)
            });
            let run = if step.script().no_transaction {
                self.run_outside_transaction(session, step, &prepared, attempt)
                    .await
            } else {
                self.run_in_transaction(session, step, &prepared, attempt)
                    .await
            };
            match run {
                Err(StepError::Retry(e)) if attempt < policy.max_attempts => {
                    let pause = policy.backoff(attempt);
                    tracing::warn!(attempt, pause_ms = pause.as_millis() as u64, error = %server_message(&e), "a lock wait gave up; retrying the migration");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(StepError::Retry(e)) => {
                    let blockers = match watch {
                        Some(watch) => watch.finish().await,
                        None => None,
                    };
                    break Err(StepError::Failed(lock_wait_failed(
                        step, e, attempt, blockers,
                    )));
                }
                other => break other,
            }
        };
        let duration = started.elapsed();
        match result {
            Ok(after) => {
                findings.extend(after);
                Ok(self.completed(step, duration, attempt, findings))
            }
            Err(StepError::Failed(error)) if !session.client().is_closed() => {
                self.record_failure(
                    session, step, &prepared, &error, duration, attempt, findings,
                )
                .await;
                Err(StepError::Failed(error))
            }
            Err(lost) => Err(lost),
        }
    }

    /// Runs a transactional step: `BEGIN`, the timeouts, the script, the
    /// history change and run-log row (and the audit chain's lock) in one
    /// query; the after-checks inside the open transaction; the audit entry,
    /// a prepared INSERT; `COMMIT`. Returns the after-checks' findings.
    async fn run_in_transaction(
        &self,
        session: &mut Session<'_>,
        step: Step<'_>,
        prepared: &[Prepared],
        attempt: u32,
    ) -> Result<Vec<Finding>, StepError> {
        let started = Instant::now();
        let migration = step.migration;
        let prefix = format!(
            "BEGIN; SET LOCAL lock_timeout = '{}'; SET LOCAL statement_timeout = '{}'; SET LOCAL synchronous_commit = {}; SET LOCAL plan_cache_mode TO DEFAULT;\n",
            pg_millis(self.settings.lock_timeout),
            pg_millis(self.settings.statement_timeout),
            self.settings.durability.synchronous_commit(),
        );
        let mut suffix = format!(
            "\n;\nSET LOCAL plan_cache_mode = force_generic_plan;\n{};\n{};\n",
            self.target.record(migration, step.direction),
            crate::run_log::insert(
                &self.target,
                migration,
                step.direction,
                true,
                0,
                "succeeded"
            ),
        );
        if self.audit.is_some() {
            suffix.push_str(crate::audit::PREPARE);
        }
        let client = session.client();
        let rows = match send_script(client, step, &prefix, &suffix).await {
            Ok(rows) => rows,
            Err(failed) => return Err(rollback_after(session, step, failed).await),
        };
        let outcome = Outcome {
            succeeded: true,
            duration: started.elapsed(),
            error: None,
        };
        // Inside the open transaction: the checks see the change, and the
        // audit entry commits with it.
        let after = match self.after_hooks(session, step, prepared, &outcome).await {
            Ok(after) => after,
            Err(e) => {
                let _ = session.client().batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        self.audit_and_commit(session, step, &rows, &outcome, attempt, prepared, &after)
            .await?;
        Ok(after)
    }

    /// Ends a step's open transaction, whose last query ran the audit
    /// chain's lock (`rows` hold its answer): the step's audit entry, written
    /// by the INSERT prepared once per connection with typed parameters, then
    /// `COMMIT`. A failed entry rolls the step back.
    #[allow(clippy::too_many_arguments)]
    async fn audit_and_commit(
        &self,
        session: &mut Session<'_>,
        step: Step<'_>,
        rows: &[tokio_postgres::SimpleQueryMessage],
        outcome: &Outcome,
        attempt: u32,
        prepared: &[Prepared],
        after: &[Finding],
    ) -> Result<(), StepError> {
        let mut head = None;
        if self.audit.is_some() {
            let chain = crate::audit::chain_table(rows);
            let findings: Vec<Finding> = prepared
                .iter()
                .flat_map(|p| p.findings.iter().cloned())
                .chain(after.iter().cloned())
                .collect();
            let details = self.details(step, outcome, attempt, &findings);
            let entry = self.audit_entry(step, details);
            match self
                .write_audit_in_transaction(session, chain, &entry)
                .await
            {
                Ok(written) => head = Some(written),
                Err(e) => {
                    let _ = session.client().batch_execute("ROLLBACK").await;
                    return Err(e);
                }
            }
        }
        // The entry's code goes with the COMMIT, in the same round trip.
        let code = match (&head, &self.audit_key) {
            (Some(head), Some(key)) => key.mac_statement(head),
            _ => String::new(),
        };
        match session
            .client()
            .batch_execute(&format!("{code}COMMIT"))
            .await
        {
            Ok(()) => {
                if let Some(head) = head {
                    head.publish();
                }
                Ok(())
            }
            Err(e) if is_connection_lost(&e) => Err(StepError::Lost(e.to_string())),
            Err(e) => {
                // A deferred constraint fails at COMMIT, which ends the
                // transaction; a failed code leaves it open, to roll back.
                if !code.is_empty() {
                    let _ = session.client().batch_execute("ROLLBACK").await;
                }
                Err(StepError::Failed(sql_error_at(step, &e, "COMMIT", 0)))
            }
        }
    }

    /// Writes `entry` with the audit INSERT prepared once per connection,
    /// with typed parameters. Returns the chain's new head.
    async fn write_audit_in_transaction(
        &self,
        session: &mut Session<'_>,
        table: &'static str,
        entry: &crate::audit::AuditEntry,
    ) -> Result<crate::audit::Head, StepError> {
        let statement = match session.audit_inserts.get(table) {
            Some(statement) => statement.clone(),
            None => {
                let statement = session
                    .client()
                    .prepare(&crate::audit::insert_sql(table))
                    .await
                    .map_err(Error::db(format!(
                        "preparing the audit INSERT into {table}"
                    )))?;
                session.audit_inserts.insert(table, statement.clone());
                statement
            }
        };
        let head = crate::audit::insert(session.client(), &statement, table, entry)
            .await
            .map_err(|e| {
                StepError::from(Error::database(
                    format!(
                        "writing the audit entry of migration {} to {table}; the migration was rolled back",
                        entry.target_id.as_deref().unwrap_or_default()
                    ),
                    e,
                ))
            })?;
        Ok(head)
    }

    /// Runs a `no-transaction` step statement by statement, recording its
    /// progress in the run log after each one. A step that stopped part-way
    /// (a lost connection, a lock wait that gave up, a repair) resumes at the
    /// first statement that did not complete, on the same run-log row.
    async fn run_outside_transaction(
        &self,
        session: &mut Session<'_>,
        step: Step<'_>,
        prepared: &[Prepared],
        attempt: u32,
    ) -> Result<Vec<Finding>, StepError> {
        let started = Instant::now();
        let migration = step.migration;
        let statements = split_statements(&step.script().sql);
        let client = session.client();
        let target = &self.target;
        let (run_id, start, resumed) = match crate::run_log::unfinished(
            client,
            target,
            migration.version,
            step.direction,
        )
        .await?
        {
            Some((id, done)) => {
                client
                        .execute(
                            "UPDATE dbops.run_log SET outcome = 'running', error = NULL, backend_pid = pg_backend_pid(),
                                    application_name = current_setting('application_name') WHERE id = $1",
                            &[&id],
                        )
                        .await
                        .map_err(Error::db("resuming the run-log entry"))?;
                tracing::info!(
                    run_log_id = id,
                    resume_at = done + 1,
                    "resuming after the statements already done"
                );
                (id, done, true)
            }
            None => {
                let insert = crate::run_log::insert(
                    target,
                    migration,
                    step.direction,
                    false,
                    statements.len(),
                    "running",
                );
                let row = client
                    .query_one(&format!("{insert} RETURNING id"), &[])
                    .await
                    .map_err(Error::db(
                        "recording the start of a no-transaction migration",
                    ))?;
                (row.get::<_, i64>(0), 0, false)
            }
        };
        let mut start = start;
        if let Some(next) = statements.get(start)
            && resumed
            && crate::in_flight::outcome(client, next.text).await?
                == crate::in_flight::InFlight::Finished
        {
            tracing::info!(
                statement = start + 1,
                "the statement finished on the server after the connection was lost; going on after it"
            );
            start += 1;
            let done = i32::try_from(start).unwrap_or(i32::MAX);
            client
                .execute(
                    "UPDATE dbops.run_log SET statements_done = $2 WHERE id = $1",
                    &[&run_id, &done],
                )
                .await
                .map_err(Error::db("recording progress in the run log"))?;
        }
        client
            .batch_execute(&format!(
                "SET lock_timeout = '{}'; SET statement_timeout = '{}'; SET plan_cache_mode TO DEFAULT;",
                pg_millis(self.settings.lock_timeout),
                pg_millis(self.settings.statement_timeout)
            ))
            .await
            .map_err(Error::db("setting the timeouts"))?;
        for (index, statement) in statements.iter().enumerate().skip(start) {
            if let Err(e) = client.batch_execute(statement.text).await {
                if is_connection_lost(&e) {
                    return Err(StepError::Lost(e.to_string()));
                }
                let _ = client.batch_execute(RESET_AFTER_STATEMENTS).await;
                if is_lock_wait(&e) {
                    return Err(StepError::Retry(e));
                }
                let error = sql_error_at(step, &e, statement.text, statement.offset as isize);
                let _ = client
                    .execute(
                        "UPDATE dbops.run_log SET outcome = 'failed', finished_at = clock_timestamp(), error = $2 WHERE id = $1",
                        &[&run_id, &error.to_string()],
                    )
                    .await;
                return Err(StepError::Failed(error));
            }
            let done = i32::try_from(index + 1).unwrap_or(i32::MAX);
            client
                .execute(
                    "UPDATE dbops.run_log SET statements_done = $2 WHERE id = $1",
                    &[&run_id, &done],
                )
                .await
                .map_err(Error::db("recording progress in the run log"))?;
        }
        client
            .batch_execute(RESET_AFTER_STATEMENTS)
            .await
            .map_err(Error::db("resetting the timeouts"))?;
        // Outside any transaction, the checks see what the statements left;
        // then the history row, the run-log row and the audit entry commit
        // together.
        let outcome = Outcome {
            succeeded: true,
            duration: started.elapsed(),
            error: None,
        };
        let after = self.after_hooks(session, step, prepared, &outcome).await?;
        let mut record = format!(
            "BEGIN; SET LOCAL synchronous_commit = {}; {};
             UPDATE dbops.run_log SET outcome = 'succeeded', finished_at = clock_timestamp() WHERE id = {run_id};\n",
            self.settings.durability.synchronous_commit(),
            self.target.record(migration, step.direction),
        );
        if self.audit.is_some() {
            record.push_str(crate::audit::PREPARE);
        }
        let rows = match session.client().simple_query(&record).await {
            Ok(rows) => rows,
            Err(e) if is_connection_lost(&e) => return Err(StepError::Lost(e.to_string())),
            Err(e) => {
                let _ = session.client().batch_execute("ROLLBACK").await;
                return Err(StepError::from(Error::Database {
                    context: "recording a no-transaction migration as done".into(),
                    source: e,
                }));
            }
        };
        self.audit_and_commit(session, step, &rows, &outcome, attempt, prepared, &after)
            .await?;
        Ok(after)
    }

    /// Records a failed step, best effort (the failure itself is what the
    /// run reports): after-checks that see what is left, a run-log row for a
    /// transactional step, and an audit entry of its own.
    #[allow(clippy::too_many_arguments)]
    async fn record_failure(
        &self,
        session: &mut Session<'_>,
        step: Step<'_>,
        prepared: &[Prepared],
        error: &Error,
        duration: Duration,
        attempts: u32,
        mut findings: Vec<Finding>,
    ) {
        let span = tracing::Span::current();
        let outcome = Outcome {
            succeeded: false,
            duration,
            error: Some(error.to_string()),
        };
        if !matches!(error, Error::Refused { .. }) {
            match self.after_hooks(session, step, prepared, &outcome).await {
                Ok(after) => findings.extend(after),
                Err(e) => tracing::warn!(error = ?e, "a hook failed after a failed migration"),
            }
        }
        crate::run_log::record_failure(
            session.client(),
            &self.target,
            step.migration,
            step.direction,
            !step.script().no_transaction,
            error,
        )
        .await;
        let details = self.details(step, &outcome, attempts, &findings);
        if let Err(e) = self.audit(session, step, details).await {
            tracing::warn!(error = ?e, "the audit entry of a failed migration could not be written");
        }
        log_findings(&findings);
        span.record("duration_ms", millis(duration));
        span.record("attempts", attempts);
        span.record("outcome", "failed");
        record_metrics(&self.target.name, step.direction, duration, false);
    }

    /// A step that committed: its findings in the log, its span's last fields, its metrics, its log line.
    pub(crate) fn completed(
        &self,
        step: Step<'_>,
        duration: Duration,
        attempts: u32,
        findings: Vec<Finding>,
    ) -> CompletedStep {
        let span = tracing::Span::current();
        let migration = step.migration;
        log_findings(&findings);
        span.record("rows_affected", rows_affected(&findings));
        span.record("duration_ms", millis(duration));
        span.record("attempts", attempts);
        span.record("outcome", "succeeded");
        record_metrics(&self.target.name, step.direction, duration, true);
        tracing::info!(
            "{} {} in {} ms",
            step.direction.as_str(),
            migration.label(),
            millis(duration)
        );
        CompletedStep {
            version: migration.version,
            slug: migration.slug.clone(),
            duration,
            attempts,
            findings,
        }
    }

    fn hook_context<'s>(&'s self, session: &'s Session<'_>, step: Step<'s>) -> HookContext<'s> {
        HookContext {
            target: &self.target.name,
            version: step.migration.version,
            slug: &step.migration.slug,
            direction: step.direction,
            sql: &step.script().sql,
            client: session.client(),
            statements: &session.statements,
        }
    }

    pub(crate) async fn before_hooks(
        &self,
        session: &Session<'_>,
        step: Step<'_>,
    ) -> Result<(Vec<Finding>, Vec<Prepared>), StepError> {
        let ctx = self.hook_context(session, step);
        let mut findings = Vec::new();
        let mut prepared = Vec::with_capacity(self.hooks.len());
        for hook in &self.hooks {
            let p = run_check(step, hook.as_ref(), "before", hook.before(&ctx)).await?;
            findings.extend(p.findings.iter().cloned());
            prepared.push(p);
        }
        Ok((findings, prepared))
    }

    async fn after_hooks(
        &self,
        session: &Session<'_>,
        step: Step<'_>,
        prepared: &[Prepared],
        outcome: &Outcome,
    ) -> Result<Vec<Finding>, StepError> {
        let ctx = self.hook_context(session, step);
        let mut findings = Vec::new();
        for (hook, p) in self.hooks.iter().zip(prepared) {
            findings.extend(
                run_check(step, hook.as_ref(), "after", hook.after(&ctx, p, outcome)).await?,
            );
        }
        Ok(findings)
    }

    /// The metadata of a step's audit entry.
    fn details(
        &self,
        step: Step<'_>,
        outcome: &Outcome,
        attempts: u32,
        findings: &[Finding],
    ) -> serde_json::Value {
        let migration = step.migration;
        serde_json::json!({
            "slug": migration.slug,
            "direction": step.direction.as_str(),
            "checksum": migration.checksum.to_string(),
            "no_transaction": step.script().no_transaction,
            "duration_ms": millis(outcome.duration),
            "attempts": attempts,
            "rows_affected": rows_affected(findings),
            "outcome": if outcome.succeeded { "succeeded" } else { "failed" },
            "error": outcome.error,
            "findings": findings,
        })
    }

    fn audit_entry(&self, step: Step<'_>, details: serde_json::Value) -> crate::audit::AuditEntry {
        let version = step.migration.version;
        let mut metadata = serde_json::Map::new();
        metadata.insert("target".into(), self.target.name.clone().into());
        metadata.insert("version".into(), version.into());
        if let serde_json::Value::Object(details) = details {
            metadata.extend(details);
        }
        let (actor, extra) = match &self.audit {
            Some(audit) => (audit.actor.clone(), audit.metadata.clone()),
            None => (String::new(), serde_json::Map::new()),
        };
        metadata.extend(extra);
        if let Some(own) = self.migration_metadata.get(&version) {
            metadata.extend(own.clone());
        }
        crate::audit::AuditEntry {
            actor,
            action: match step.direction {
                Direction::Up => "migration.apply",
                Direction::Down => "migration.rollback",
            }
            .to_string(),
            target_type: "migration".to_string(),
            target_id: Some(version.to_string()),
            metadata: serde_json::Value::Object(metadata),
        }
    }

    /// Writes a step's audit entry in a transaction of its own, when auditing
    /// is on. A failed write stops the run: a change that cannot be audited
    /// must not go on unnoticed.
    async fn audit(
        &self,
        session: &Session<'_>,
        step: Step<'_>,
        details: serde_json::Value,
    ) -> Result<(), StepError> {
        if self.audit.is_none() {
            return Ok(());
        }
        let entry = self.audit_entry(step, details);
        crate::audit::record(session.client(), &entry, self.audit_key.as_ref()).await?;
        Ok(())
    }
}

/// A query of a script that failed, with what is needed to point into the file.
struct QueryFailed {
    error: tokio_postgres::Error,
    query: String,
    /// Byte `b` of `query` is byte `b + script_offset` of the script.
    script_offset: isize,
    /// The statements of `query` that completed before the error: the next
    /// one failed. The server says where only for errors it can place in
    /// the text (a syntax error, an unknown column); for the others (a
    /// constraint violated, a relation that already exists, a `RAISE`), this
    /// names the statement.
    completed: usize,
}

impl QueryFailed {
    /// The failure as a [`Error::MigrationFailed`] pointing into the script.
    fn located(&self, step: Step<'_>) -> Error {
        let view = ErrorView::of(&self.error);
        if view.position.is_none()
            && let Some(failed) = split_statements(&self.query).get(self.completed)
        {
            let offset = self.script_offset + failed.offset as isize;
            return failure(step, view, failed.text, offset);
        }
        failure(step, view, &self.query, self.script_offset)
    }
}

/// Sends `prefix`, the step's script and `suffix`: in one query when the
/// script is short, otherwise in queries of about [`CHUNK_BYTES`] cut at
/// statement boundaries. Returns the messages of the last query.
async fn send_script(
    client: &tokio_postgres::Client,
    step: Step<'_>,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, QueryFailed> {
    let sql = &step.script().sql;
    let chunks = chunks(sql);
    let mut messages = Vec::new();
    for (index, &(start, end)) in chunks.iter().enumerate() {
        let first = index == 0;
        let last = index + 1 == chunks.len();
        let query = format!(
            "{}{}{}",
            if first { prefix } else { "" },
            &sql[start..end],
            if last { suffix } else { "" }
        );
        let script_offset = start as isize - if first { prefix.len() as isize } else { 0 };
        match run_counting(client, &query).await {
            Ok(answer) => messages = answer,
            Err((error, completed)) => {
                return Err(QueryFailed {
                    error,
                    query,
                    script_offset,
                    completed,
                });
            }
        }
    }
    Ok(messages)
}

/// Runs a multi-statement simple query; on failure, also says how many of
/// its statements completed first (their `CommandComplete` messages).
async fn run_counting(
    client: &tokio_postgres::Client,
    query: &str,
) -> Result<Vec<tokio_postgres::SimpleQueryMessage>, (tokio_postgres::Error, usize)> {
    use futures_util::StreamExt;
    let stream = client.simple_query_raw(query).await.map_err(|e| (e, 0))?;
    let mut stream = std::pin::pin!(stream);
    let mut messages = Vec::new();
    let mut completed = 0;
    while let Some(message) = stream.next().await {
        let message = message.map_err(|e| (e, completed))?;
        if matches!(
            message,
            tokio_postgres::SimpleQueryMessage::CommandComplete(_)
        ) {
            completed += 1;
        }
        messages.push(message);
    }
    Ok(messages)
}

/// The byte ranges in which a script is sent: the whole script when it is
/// short, otherwise runs of whole statements of about [`CHUNK_BYTES`].
fn chunks(sql: &str) -> Vec<(usize, usize)> {
    if sql.len() <= CHUNK_BYTES {
        return vec![(0, sql.len())];
    }
    let mut ranges = Vec::new();
    let mut start = 0;
    for statement in split_statements(sql) {
        if statement.offset > start && statement.offset - start >= CHUNK_BYTES {
            ranges.push((start, statement.offset));
            start = statement.offset;
        }
    }
    ranges.push((start, sql.len()));
    ranges
}

/// Classifies a failed query of a transactional step and ends its transaction.
async fn rollback_after(session: &Session<'_>, step: Step<'_>, failed: QueryFailed) -> StepError {
    if is_connection_lost(&failed.error) {
        return StepError::Lost(failed.error.to_string());
    }
    let _ = session.client().batch_execute("ROLLBACK").await;
    if is_lock_wait(&failed.error) {
        StepError::Retry(failed.error)
    } else {
        StepError::Failed(failed.located(step))
    }
}

/// What a failure message needs of a server error.
#[derive(Debug)]
struct ErrorView {
    message: String,
    code: Option<String>,
    position: Option<usize>,
}

impl ErrorView {
    fn of(e: &tokio_postgres::Error) -> ErrorView {
        match e.as_db_error() {
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
                ErrorView {
                    message,
                    code: Some(db.code().code().to_string()),
                    position,
                }
            }
            None => ErrorView {
                message: e.to_string(),
                code: None,
                position: None,
            },
        }
    }
}

/// Whether a statement gave up waiting for a lock: `lock_timeout`, or a
/// deadlock the server broke by cancelling it. Nothing of it is left.
fn is_lock_wait(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
        || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
}

/// The server's own words for an error, for retry log lines.
fn server_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The failure of a step whose lock waits gave up on every attempt.
fn lock_wait_failed(
    step: Step<'_>,
    e: tokio_postgres::Error,
    attempts: u32,
    blockers: Option<String>,
) -> Error {
    let mut view = ErrorView::of(&e);
    let blockers = blockers.map_or_else(
        || "another session held a lock the migration needs".to_string(),
        |blockers| format!("blocked by {blockers}"),
    );
    view.message = format!("{} after {attempts} attempt(s); {blockers}", view.message);
    view.position = None;
    failure(step, view, "", 0)
}

/// Builds a [`Error::MigrationFailed`] for an error of `query`, whose byte
/// `b` is byte `b + script_offset` of the step's script.
pub(crate) fn sql_error_at(
    step: Step<'_>,
    e: &tokio_postgres::Error,
    query: &str,
    script_offset: isize,
) -> Error {
    failure(step, ErrorView::of(e), query, script_offset)
}

fn failure(step: Step<'_>, view: ErrorView, query: &str, script_offset: isize) -> Error {
    let script = step.script();
    // The server counts characters from 1 in the query it was sent; map that
    // to a byte of the script, clamped into it.
    let byte = view
        .position
        .and_then(|chars| {
            query
                .char_indices()
                .nth(chars.saturating_sub(1))
                .map(|(i, _)| i)
        })
        .map_or_else(
            || crate::split::code_start(query) as isize + script_offset,
            |byte| byte as isize + script_offset,
        );
    let byte = byte.clamp(0, script.sql.len() as isize) as usize;
    let (line, column) = line_column(&script.sql, byte);
    Error::MigrationFailed {
        version: step.migration.version,
        file: script.path.clone(),
        line,
        column,
        message: view.message,
        code: view.code,
        applied_before: Vec::new(),
    }
}

/// Runs one hook's check in a span of its own.
async fn run_check<T>(
    step: Step<'_>,
    hook: &dyn Hook,
    phase: &'static str,
    check: crate::hooks::HookFuture<'_, Result<T, crate::hooks::HookError>>,
) -> Result<T, StepError> {
    check
        .instrument(tracing::info_span!(
            "migrate.hook",
            hook = hook.name(),
            phase
        ))
        .await
        .map_err(|source| {
            StepError::Failed(Error::Hook {
                version: step.migration.version,
                source,
            })
        })
}

fn log_findings(findings: &[Finding]) {
    for finding in findings {
        match finding.severity {
            Severity::Info => tracing::info!(hook = %finding.hook, "{}", finding.message),
            _ => tracing::warn!(hook = %finding.hook, "{}", finding.message),
        }
    }
}

/// Metric events, for the binary's metrics layer (`tracing-opentelemetry`'s
/// `histogram.` / `monotonic_counter.` field convention).
fn record_metrics(target: &str, direction: Direction, duration: Duration, succeeded: bool) {
    let outcome = if succeeded { "succeeded" } else { "failed" };
    tracing::info!(
        target: "dbops_metrics",
        migration_target = target,
        direction = direction.as_str(),
        outcome,
        histogram.dbops.migration.duration_ms = millis(duration),
        monotonic_counter.dbops.migrations = 1u64,
    );
    if !succeeded {
        tracing::info!(
            target: "dbops_metrics",
            migration_target = target,
            direction = direction.as_str(),
            monotonic_counter.dbops.migration.failures = 1u64,
        );
    }
}

/// Rows the row-count checks saw change, in all.
fn rows_affected(findings: &[Finding]) -> i64 {
    findings
        .iter()
        .filter_map(|f| f.data.get("difference").and_then(serde_json::Value::as_i64))
        .map(i64::abs)
        .sum()
}

/// A duration in milliseconds, for span fields.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_script_is_one_chunk_and_a_long_one_is_cut_between_statements() {
        assert_eq!(chunks("SELECT 1;"), vec![(0, 9)]);
        let statement = format!("INSERT INTO t VALUES ('{}');\n", "x".repeat(4096));
        let sql = statement.repeat(600);
        let ranges = chunks(&sql);
        assert!(ranges.len() >= 2, "{}", ranges.len());
        assert_eq!(ranges.first().unwrap().0, 0);
        assert_eq!(ranges.last().unwrap().1, sql.len());
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
            assert!(sql[pair[1].0..].starts_with("INSERT"));
        }
    }
}
