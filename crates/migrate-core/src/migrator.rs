//! The public entry point: plan, apply, roll back, inspect and repair one target.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::config::Settings;
use crate::database::Database;
use crate::error::Error;
use crate::hooks::{Finding, Hook, HookContext, Outcome, Prepared, Severity};
use crate::refinery_adapter::RefineryAdapter;
use crate::session::{
    Applied, AppliedRow, Committed, Session, Step, TargetNames, millis, millis_since,
    with_applied_before,
};
use crate::source::{Direction, Migration, Source};
use crate::status::{DriftKind, DriftedMigration, PartialMigration, PendingMigration, Status};

/// Applies and rolls back the migrations of one target.
///
/// ```no_run
/// # async fn example(pool: deadpool_postgres::Pool) -> Result<(), migrate_core::Error> {
/// use migrate_core::{Database, Migrator, Settings, Source, UpOptions};
/// let source = Source::load("migrations/operational".as_ref())?;
/// let migrator = Migrator::new("operational", source, Database::from_pool(pool), Settings::default())?;
/// let report = migrator.up(&UpOptions::default()).await?;
/// println!("applied {} migrations", report.completed.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Migrator {
    target: TargetNames,
    source: Source,
    db: Database,
    settings: Settings,
    hooks: Vec<Arc<dyn Hook>>,
    audit: Option<AuditSettings>,
}

/// Who is acting, for the audit trail, and what to add to every entry.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The actor recorded on every entry.
    pub actor: String,
    /// Extra metadata merged into every entry (environment, overrides).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Options of [`Migrator::up`].
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Apply pending migrations up to and including this version only.
    pub to: Option<i64>,
    /// Apply pending migrations older than the newest applied one.
    pub allow_out_of_order: bool,
    /// Refuse unless the plan, computed under the lock, has this hash (the one that was approved).
    pub expected_plan: Option<String>,
}

impl From<DownTo> for DownOptions {
    fn from(to: DownTo) -> DownOptions {
        DownOptions {
            to,
            expected_plan: None,
        }
    }
}

/// Options of [`Migrator::down`].
#[derive(Debug, Clone)]
pub struct DownOptions {
    /// How far to go.
    pub to: DownTo,
    /// Refuse unless the plan, computed under the lock, has this hash.
    pub expected_plan: Option<String>,
}

/// How far [`Migrator::down`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownTo {
    /// Roll back every applied migration newer than this version; 0 rolls back everything.
    Version(i64),
    /// Roll back this many of the newest applied migrations.
    Steps(usize),
}

/// What [`Migrator::repair`] does with a partial migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepairAction {
    /// Run the interrupted script again, from its first statement.
    Rerun,
    /// Record the migration as applied: the operator finished it by hand.
    MarkApplied,
    /// Record the migration as not applied: the operator undid it by hand.
    MarkNotApplied,
}

/// The scripts a run would execute, in order, and their hash.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The target.
    pub target: String,
    /// Up or down.
    pub direction: Direction,
    /// The steps, in execution order.
    pub steps: Vec<PlannedStep>,
    /// SHA-256 over the direction and each step's version and checksum: what an approval is given for.
    pub hash: String,
}

/// One script of a [`Plan`].
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// The migration's version.
    pub version: i64,
    /// The migration's slug.
    pub slug: String,
    /// The script's file.
    pub file: PathBuf,
    /// The script's SQL.
    pub sql: String,
    /// Whether it runs outside a transaction.
    pub no_transaction: bool,
    /// The checksum the plan hash covers.
    pub checksum: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The target.
    pub target: String,
    /// Up or down.
    pub direction: Direction,
    /// The hash of the plan that ran.
    pub plan_hash: String,
    /// Completed steps, in order.
    pub completed: Vec<CompletedStep>,
    /// Wall time of the whole run, lock wait included.
    #[serde(serialize_with = "serialize_millis")]
    pub duration: Duration,
}

/// One completed step of a run.
#[derive(Debug, Clone, Serialize)]
pub struct CompletedStep {
    /// Version.
    pub version: i64,
    /// Slug.
    pub slug: String,
    /// How long the script ran, hooks excluded.
    #[serde(serialize_with = "serialize_millis")]
    pub duration: Duration,
    /// Attempts it took (more than 1 after retries).
    pub attempts: u32,
    /// What the hooks observed.
    pub findings: Vec<Finding>,
}

/// A transactional step whose transaction is still open: it ran, its
/// after-checks ran and its audit entry is ready, and its COMMIT goes out
/// with the next step's batch ([`Session::hand_off`]).
pub(crate) struct Pending<'s> {
    step: Step<'s>,
    /// The history change, to apply the step again should its commit be lost.
    record: String,
    span: tracing::Span,
    entry: Option<crate::audit::AuditEntry>,
    chain: Option<crate::audit::ChainTarget>,
    findings: Vec<Finding>,
    applied: Applied,
    duration: Duration,
}

impl Pending<'_> {
    /// The step's completion, once its commit went through.
    fn finish(self, migrator: &Migrator) -> CompletedStep {
        migrator.finished(
            &self.span,
            self.step,
            self.applied,
            self.duration,
            self.findings,
        )
    }
}

/// How [`Migrator::apply_chained`] left a step.
pub(crate) enum Stepped<'s> {
    /// Committed (or, outside a transaction, run) and completed.
    Done(CompletedStep),
    /// Its transaction is open, for the next step to commit.
    Pending(Pending<'s>),
}

/// What [`Migrator::repair`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    /// The version repaired.
    pub version: i64,
    /// The action taken.
    pub action: RepairAction,
    /// Run-log entries marked resolved.
    pub resolved_entries: u64,
}

fn serialize_millis<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(millis(*duration))
}

impl Migrator {
    /// A migrator for the target `target` (its name keys the history table
    /// `dbops.<target>_schema_history` and the migration lock).
    pub fn new(
        target: &str,
        source: Source,
        db: Database,
        settings: Settings,
    ) -> Result<Migrator, Error> {
        Ok(Migrator {
            target: TargetNames::new(target)?,
            source,
            db,
            settings,
            hooks: Vec::new(),
            audit: None,
        })
    }

    /// Records every apply, rollback and repair in the audit trail (see [`crate::audit`]).
    pub fn with_audit(mut self, audit: AuditSettings) -> Migrator {
        self.audit = Some(audit);
        self
    }

    /// Adds a hook that runs around every migration, after those added before it.
    pub fn with_hook(mut self, hook: Arc<dyn Hook>) -> Migrator {
        self.hooks.push(hook);
        self
    }

    /// The migrations on disk.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The target's name.
    pub fn target(&self) -> &str {
        &self.target.name
    }

    /// The database, for messages.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Creates dbops's bookkeeping tables in the target database when they are
    /// missing: history, run log and, with auditing on, the audit tables.
    /// [`Migrator::up`] and [`Migrator::down`] create them too; calling this
    /// first lets a caller overlap that one-time DDL with other work, such as
    /// linting the migrations. Takes no migration lock.
    pub async fn prepare_database(&self) -> Result<(), Error> {
        Session::prepare(&self.db, &self.target, &self.settings, self.audit.is_some()).await
    }

    /// What `up` would run, without changing anything. Refuses exactly as `up` would.
    pub async fn plan_up(&self, options: &UpOptions) -> Result<Plan, Error> {
        let session = Session::open_read_only(&self.db, &self.target, &self.settings).await?;
        let applied = session.applied().await?;
        let partial = session.partial().await?;
        let steps = self.up_steps(&applied, partial, options)?;
        Ok(self.plan(Direction::Up, &steps))
    }

    /// What `down` would run, without changing anything.
    pub async fn plan_down(&self, options: &DownOptions) -> Result<Plan, Error> {
        let session = Session::open_read_only(&self.db, &self.target, &self.settings).await?;
        let applied = session.applied().await?;
        let partial = session.partial().await?;
        let steps = self.down_steps(&applied, partial, options.to)?;
        Ok(self.plan(Direction::Down, &steps))
    }

    /// The hooks' before-checks for every step of a plan, without running
    /// anything or taking the lock: the preflight of a dry run. Steps are
    /// checked against the schema as it is now, so a table that an earlier
    /// pending migration creates is not there yet.
    pub async fn preflight(&self, plan: &Plan) -> Result<Vec<(i64, Vec<Finding>)>, Error> {
        if self.hooks.is_empty() {
            return Ok(Vec::new());
        }
        let session = Session::open_read_only(&self.db, &self.target, &self.settings).await?;
        let mut report = Vec::with_capacity(plan.steps.len());
        for planned in &plan.steps {
            let Some(migration) = self.source.get(planned.version) else {
                continue;
            };
            let step = Step {
                migration,
                direction: plan.direction,
            };
            let (findings, _) = self.before_hooks(&session, step).await?;
            report.push((planned.version, findings));
        }
        Ok(report)
    }

    /// Applies pending migrations, one at a time, under the target's lock.
    ///
    /// Refuses while a migration is partial, an applied migration drifted, or
    /// (without `allow_out_of_order`) a pending one is older than the newest
    /// applied one. On failure, the error lists what this run applied first.
    pub async fn up(&self, options: &UpOptions) -> Result<RunReport, Error> {
        let started = Instant::now();
        let span = tracing::info_span!("migrate.run", target = %self.target.name, direction = "up", plan_hash = tracing::field::Empty, migrations = tracing::field::Empty, outcome = tracing::field::Empty, duration_ms = tracing::field::Empty);
        async {
            let mut session = Session::open(&self.db, &self.target, &self.settings).await?;
            let applied = session.applied().await?;
            let partial = session.partial().await?;
            let steps = self.up_steps(&applied, partial, options)?;
            let plan = self.plan(Direction::Up, &steps);
            check_expected(&plan, options.expected_plan.as_deref())?;
            let newest = applied.iter().map(|row| row.version).max().unwrap_or(0);
            let result = self
                .execute(&mut session, Direction::Up, &steps, |m| m.version > newest)
                .await;
            let report = self
                .finish(session, result, plan, Direction::Up, started)
                .await;
            record_run_outcome(&report, started);
            report
        }
        .instrument(span)
        .await
    }

    /// Rolls back applied migrations, newest first, under the target's lock.
    pub async fn down(&self, options: &DownOptions) -> Result<RunReport, Error> {
        let started = Instant::now();
        let span = tracing::info_span!("migrate.run", target = %self.target.name, direction = "down", plan_hash = tracing::field::Empty, migrations = tracing::field::Empty, outcome = tracing::field::Empty, duration_ms = tracing::field::Empty);
        async {
            let mut session = Session::open(&self.db, &self.target, &self.settings).await?;
            let applied = session.applied().await?;
            let partial = session.partial().await?;
            let steps = self.down_steps(&applied, partial, options.to)?;
            let plan = self.plan(Direction::Down, &steps);
            check_expected(&plan, options.expected_plan.as_deref())?;
            let result = self
                .execute(&mut session, Direction::Down, &steps, |_| false)
                .await;
            let report = self
                .finish(session, result, plan, Direction::Down, started)
                .await;
            record_run_outcome(&report, started);
            report
        }
        .instrument(span)
        .await
    }

    async fn finish(
        &self,
        session: Session<'_>,
        result: Result<Vec<CompletedStep>, Error>,
        plan: Plan,
        direction: Direction,
        started: Instant,
    ) -> Result<RunReport, Error> {
        // Closing flushes what this run committed, even when a later step
        // failed: the report's "applied before" must hold after a crash.
        let closed = session.close().await;
        let completed = result?;
        closed?;
        Ok(RunReport {
            target: self.target.name.clone(),
            direction,
            plan_hash: plan.hash,
            completed,
            duration: started.elapsed(),
        })
    }

    /// Runs `steps` in order. Each stretch of transactional up migrations
    /// newer than the newest applied one goes through one call of refinery's
    /// runner, which hands them back to [`Migrator::apply_step`] one at a
    /// time; the others (rollbacks, `no-transaction` and out-of-order
    /// migrations, which refinery cannot run) are applied directly.
    async fn execute(
        &self,
        session: &mut Session<'_>,
        direction: Direction,
        steps: &[&Migration],
        through_refinery: impl Fn(&Migration) -> bool,
    ) -> Result<Vec<CompletedStep>, Error> {
        let scripts: Vec<&str> = steps
            .iter()
            .map(|&migration| {
                let step = Step {
                    migration,
                    direction,
                };
                step.script().sql.as_str()
            })
            .collect();
        for hook in &self.hooks {
            hook.look_ahead(&scripts);
        }
        let mut completed: Vec<CompletedStep> = Vec::with_capacity(steps.len());
        let mut next = 0;
        while next < steps.len() {
            let stretch = steps[next..]
                .iter()
                .take_while(|m| {
                    direction == Direction::Up && !m.up.no_transaction && through_refinery(m)
                })
                .count();
            let result = if stretch > 0 {
                RefineryAdapter::new(self, session, &steps[next..next + stretch], &mut completed)
                    .run()
                    .await
            } else {
                let step = Step {
                    migration: steps[next],
                    direction,
                };
                let record = session.history_statement(&step);
                self.apply_step(session, step, &record)
                    .await
                    .map(|done| completed.push(done))
            };
            if let Err(error) = result {
                let done: Vec<i64> = completed.iter().map(|c| c.version).collect();
                return Err(with_applied_before(error, &done));
            }
            next += stretch.max(1);
        }
        Ok(completed)
    }

    /// Applies one step inside its own span: the before-checks, the script,
    /// and for a transactional script the after-checks and the audit entry
    /// inside the same transaction, so that a change and its audit entry
    /// commit together. `record` is the history change that goes with it.
    pub(crate) async fn apply_step(
        &self,
        session: &mut Session<'_>,
        step: Step<'_>,
        record: &str,
    ) -> Result<CompletedStep, Error> {
        let mut completed = Vec::new();
        match self
            .apply_chained(session, step, record, None, false, &mut completed)
            .await?
        {
            Stepped::Done(done) => Ok(done),
            Stepped::Pending(pending) => self.settle(session, pending).await,
        }
    }

    /// Applies `step` as [`Migrator::apply_step`] does, after `prev`, a
    /// step of the same stretch whose transaction is still open: `prev`'s
    /// COMMIT goes out with `step`'s batch when no before-check of `step`
    /// needs the database, and before those checks otherwise. `prev`'s
    /// completion is pushed to `completed`. With `defer`, `step`'s own COMMIT
    /// is left to the step after it: the result is then [`Stepped::Pending`].
    pub(crate) async fn apply_chained<'s>(
        &self,
        session: &mut Session<'_>,
        step: Step<'s>,
        record: &str,
        prev: Option<Pending<'s>>,
        defer: bool,
        completed: &mut Vec<CompletedStep>,
    ) -> Result<Stepped<'s>, Error> {
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
        );
        self.apply_step_in_span(session, step, record, prev, defer, completed)
            .instrument(span)
            .await
    }

    async fn apply_step_in_span<'s>(
        &self,
        session: &mut Session<'_>,
        step: Step<'s>,
        record: &str,
        mut prev: Option<Pending<'s>>,
        defer: bool,
        completed: &mut Vec<CompletedStep>,
    ) -> Result<Stepped<'s>, Error> {
        let span = tracing::Span::current();
        let migration = step.migration;
        let sql = step.script().sql.as_str();
        let chainable = !step.script().no_transaction
            && !self
                .hooks
                .iter()
                .any(|hook| hook.before_reads_database(sql));
        if !chainable && let Some(pending) = prev.take() {
            completed.push(self.settle(session, pending).await?);
        }
        let (mut findings, prepared) = match self.before_hooks(session, step).await {
            Ok(before) => before,
            Err(e) => {
                if let Some(pending) = prev.take() {
                    completed.push(self.settle(session, pending).await?);
                }
                return Err(e);
            }
        };
        if let Some(refusal) = findings.iter().find(|f| f.severity == Severity::Refuse) {
            if let Some(pending) = prev.take() {
                completed.push(self.settle(session, pending).await?);
            }
            span.record("outcome", "refused");
            return Err(Error::Refused {
                version: migration.version,
                finding: refusal.message.clone(),
                hook: refusal.hook.clone(),
            });
        }
        let policy = &self.settings.retry;
        let audit = self.audit.is_some();
        let mut commit_attempt = 1;
        let (result, duration) = loop {
            let started = Instant::now();
            if step.script().no_transaction {
                let result = session.apply_non_transactional(&step).await;
                break (result, started.elapsed());
            }
            let begun = match prev.take() {
                Some(pending) => {
                    let handoff = session
                        .hand_off(
                            &pending.step,
                            pending.entry.as_ref().zip(pending.chain),
                            &step,
                            record,
                            audit,
                        )
                        .await;
                    match handoff.prev? {
                        Committed::Yes => completed.push(pending.finish(self)),
                        Committed::Lost => {
                            completed.push(self.apply_again(session, pending).await?)
                        }
                    }
                    match handoff.next {
                        Some(begun) => begun,
                        None => session.begin_transactional(&step, record, audit).await,
                    }
                }
                None => session.begin_transactional(&step, record, audit).await,
            };
            let (applied, chain) = match begun {
                Ok(begun) => begun,
                Err(e) => break (Err(e), started.elapsed()),
            };
            let duration = started.elapsed();
            let outcome = Outcome {
                succeeded: true,
                duration,
                error: None,
            };
            // Inside the open transaction: the checks see the change, and the
            // audit entry commits with it.
            let after = match self.after_hooks(session, step, &prepared, &outcome).await {
                Ok(after) => after,
                Err(e) => {
                    session.rollback().await;
                    return Err(e);
                }
            };
            let rows = rows_affected(&findings, &after);
            let details = self.step_details(
                step,
                &outcome,
                applied.attempts,
                rows,
                findings.iter().chain(&after),
            );
            let entry = self.audit_entry(audit_action(step.direction), migration.version, details);
            if defer {
                findings.extend(after);
                return Ok(Stepped::Pending(Pending {
                    step,
                    record: record.to_string(),
                    span,
                    entry,
                    chain,
                    findings,
                    applied,
                    duration,
                }));
            }
            match session.commit(&step, entry.as_ref().zip(chain)).await? {
                Committed::Yes => {
                    findings.extend(after);
                    break (Ok(applied), duration);
                }
                Committed::Lost if commit_attempt < policy.max_attempts => {
                    tracing::warn!(
                        version = migration.version,
                        commit_attempt,
                        "the commit was lost with the connection; applying again"
                    );
                    commit_attempt += 1;
                }
                Committed::Lost => {
                    let error = Error::CommitLost {
                        version: migration.version,
                        attempts: commit_attempt,
                    };
                    break (Err(error), duration);
                }
            }
        };
        if result.is_err() || step.script().no_transaction {
            // Outside any transaction: the checks see what is left, and the
            // audit entry gets a transaction of its own.
            let outcome = Outcome {
                succeeded: result.is_ok(),
                duration,
                error: result.as_ref().err().map(ToString::to_string),
            };
            match self.after_hooks(session, step, &prepared, &outcome).await {
                Ok(after) => findings.extend(after),
                Err(e) if result.is_err() => {
                    tracing::warn!(error = %e, "hook failed after a failed migration")
                }
                Err(e) => return Err(e),
            }
            let attempts = result.as_ref().map_or(0, |a| a.attempts);
            let details = self.step_details(
                step,
                &outcome,
                attempts,
                rows_affected(&findings, &[]),
                findings.iter(),
            );
            self.audit(
                session,
                audit_action(step.direction),
                migration.version,
                details,
            )
            .await?;
        }
        match result {
            Ok(applied) => Ok(Stepped::Done(
                self.finished(&span, step, applied, duration, findings),
            )),
            Err(e) => {
                self.record_end(&span, step, duration, &findings, false);
                span.record("outcome", "failed");
                Err(e)
            }
        }
    }

    /// Commits a step left pending (see [`Migrator::apply_chained`]) on its
    /// own, and completes it.
    pub(crate) async fn settle(
        &self,
        session: &mut Session<'_>,
        pending: Pending<'_>,
    ) -> Result<CompletedStep, Error> {
        match session
            .commit(&pending.step, pending.entry.as_ref().zip(pending.chain))
            .await?
        {
            Committed::Yes => Ok(pending.finish(self)),
            Committed::Lost => self.apply_again(session, pending).await,
        }
    }

    /// Applies a pending step again from the start, its commit having not
    /// gone through (its transaction was lost or rolled back).
    async fn apply_again(
        &self,
        session: &mut Session<'_>,
        pending: Pending<'_>,
    ) -> Result<CompletedStep, Error> {
        tracing::warn!(
            version = pending.step.migration.version,
            "the commit did not go through; applying the migration again"
        );
        Box::pin(self.apply_step(session, pending.step, &pending.record)).await
    }

    /// What every step's end records, whatever its outcome: its findings in
    /// the log, its rows affected and duration on its span, its metrics.
    fn record_end(
        &self,
        span: &tracing::Span,
        step: Step<'_>,
        duration: Duration,
        findings: &[Finding],
        succeeded: bool,
    ) {
        log_findings(span, step, findings);
        span.record("rows_affected", rows_affected(findings, &[]));
        span.record("duration_ms", millis(duration));
        record_metrics(&self.target.name, step.direction, duration, succeeded);
    }

    /// Completes a step that committed: its findings in the log, its span's
    /// last fields, its metrics, its log line.
    fn finished(
        &self,
        span: &tracing::Span,
        step: Step<'_>,
        applied: Applied,
        duration: Duration,
        findings: Vec<Finding>,
    ) -> CompletedStep {
        let migration = step.migration;
        self.record_end(span, step, duration, &findings, true);
        span.record("attempts", applied.attempts);
        span.record("outcome", "succeeded");
        span.in_scope(|| {
            tracing::info!(
                "{} {} in {} ms",
                step.direction.as_str(),
                migration.label(),
                millis(duration)
            )
        });
        CompletedStep {
            version: migration.version,
            slug: migration.slug.clone(),
            duration,
            attempts: applied.attempts,
            findings,
        }
    }

    async fn before_hooks(
        &self,
        session: &Session<'_>,
        step: Step<'_>,
    ) -> Result<(Vec<Finding>, Vec<Prepared>), Error> {
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
    ) -> Result<Vec<Finding>, Error> {
        let ctx = self.hook_context(session, step);
        let mut findings = Vec::new();
        for (hook, p) in self.hooks.iter().zip(prepared) {
            let after =
                run_check(step, hook.as_ref(), "after", hook.after(&ctx, p, outcome)).await?;
            findings.extend(after);
        }
        Ok(findings)
    }

    /// The metadata of a step's audit entry.
    fn step_details<'f>(
        &self,
        step: Step<'_>,
        outcome: &Outcome,
        attempts: u32,
        rows_affected: i64,
        findings: impl Iterator<Item = &'f Finding>,
    ) -> serde_json::Value {
        let migration = step.migration;
        serde_json::json!({
            "slug": migration.slug,
            "direction": step.direction.as_str(),
            "checksum": migration.checksum.to_string(),
            "no_transaction": step.script().no_transaction,
            "duration_ms": millis(outcome.duration),
            "attempts": attempts,
            "rows_affected": rows_affected,
            "outcome": if outcome.succeeded { "succeeded" } else { "failed" },
            "error": outcome.error,
            "findings": findings.collect::<Vec<_>>(),
        })
    }

    fn audit_entry(
        &self,
        action: &str,
        version: i64,
        details: serde_json::Value,
    ) -> Option<crate::audit::AuditEntry> {
        let audit = self.audit.as_ref()?;
        let mut metadata = serde_json::Map::new();
        metadata.insert("target".into(), self.target.name.clone().into());
        metadata.insert("version".into(), version.into());
        if let serde_json::Value::Object(details) = details {
            metadata.extend(details);
        }
        metadata.extend(audit.metadata.clone());
        Some(crate::audit::AuditEntry {
            actor: audit.actor.clone(),
            action: action.to_string(),
            target_type: "migration".to_string(),
            target_id: Some(version.to_string()),
            metadata: serde_json::Value::Object(metadata),
        })
    }

    /// Writes an audit entry when auditing is on. A failed write stops the run:
    /// a change that cannot be audited must not go on unnoticed.
    async fn audit(
        &self,
        session: &Session<'_>,
        action: &str,
        version: i64,
        details: serde_json::Value,
    ) -> Result<(), Error> {
        let Some(entry) = self.audit_entry(action, version, details) else {
            return Ok(());
        };
        let recorded = crate::audit::record(session.client(), &entry).await?;
        tracing::debug!(
            table = recorded.table,
            id = recorded.id,
            action,
            "audit entry written"
        );
        Ok(())
    }

    /// Records `approver`'s approval of a plan for an environment, and audits it.
    pub async fn approve(
        &self,
        environment: &str,
        plan_hash: &str,
        approver: &str,
    ) -> Result<(), Error> {
        let valid = plan_hash.len() == 64
            && plan_hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !valid {
            return Err(Error::Config {
                origin: "--plan".into(),
                message: format!(
                    "{plan_hash:?} is not a plan hash (64 lowercase hex digits from `dbops migrate plan`)"
                ),
            });
        }
        if approver.trim().is_empty() {
            return Err(Error::Config {
                origin: "--as".into(),
                message: "an approval needs the approver's name".into(),
            });
        }
        let session = Session::open_read_only(&self.db, &self.target, &self.settings).await?;
        crate::approvals::record(
            session.client(),
            &self.target.name,
            environment,
            plan_hash,
            approver,
        )
        .await?;
        let entry = crate::audit::AuditEntry {
            actor: approver.to_string(),
            action: "migration.approve".into(),
            target_type: "plan".into(),
            target_id: Some(plan_hash.to_string()),
            metadata: serde_json::json!({ "target": self.target.name, "environment": environment, "plan_hash": plan_hash }),
        };
        crate::audit::record(session.client(), &entry).await?;
        Ok(())
    }

    /// Every approval recorded for this target in `environment`, newest first.
    pub async fn approvals(
        &self,
        environment: &str,
    ) -> Result<Vec<crate::approvals::Approval>, Error> {
        let session = Session::open_read_only(&self.db, &self.target, &self.settings).await?;
        crate::approvals::list(session.client(), &self.target.name, environment).await
    }

    /// Writes an audit entry for something decided outside a run, such as a lint override.
    pub async fn audit_event(
        &self,
        action: &str,
        metadata: serde_json::Value,
    ) -> Result<(), Error> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let session = Session::open_read_only(&self.db, &self.target, &self.settings).await?;
        let mut merged = serde_json::Map::new();
        merged.insert("target".into(), self.target.name.clone().into());
        if let serde_json::Value::Object(details) = metadata {
            merged.extend(details);
        }
        merged.extend(audit.metadata.clone());
        let entry = crate::audit::AuditEntry {
            actor: audit.actor.clone(),
            action: action.to_string(),
            target_type: "target".into(),
            target_id: Some(self.target.name.clone()),
            metadata: serde_json::Value::Object(merged),
        };
        crate::audit::record(session.client(), &entry).await?;
        Ok(())
    }

    fn hook_context<'s>(&'s self, session: &'s Session<'_>, step: Step<'s>) -> HookContext<'s> {
        HookContext {
            target: &self.target.name,
            version: step.migration.version,
            slug: &step.migration.slug,
            direction: step.direction,
            sql: &step.script().sql,
            client: session.client(),
        }
    }

    fn up_steps(
        &self,
        applied: &[AppliedRow],
        partial: Vec<PartialMigration>,
        options: &UpOptions,
    ) -> Result<Vec<&Migration>, Error> {
        if !partial.is_empty() {
            return Err(Error::Partial { partial });
        }
        let drifted = drift(&self.source, applied);
        if !drifted.is_empty() {
            return Err(Error::Drift { drifted });
        }
        if let Some(to) = options.to
            && self.source.get(to).is_none()
        {
            return Err(Error::UnknownVersion {
                version: to,
                dir: self.source.dir().to_path_buf(),
            });
        }
        let newest = applied.iter().map(|row| row.version).max();
        let applied_versions: std::collections::HashSet<i64> =
            applied.iter().map(|row| row.version).collect();
        let mut steps = Vec::new();
        for migration in self.source.migrations() {
            if applied_versions.contains(&migration.version)
                || options.to.is_some_and(|to| migration.version > to)
            {
                continue;
            }
            if let Some(newest) = newest
                && migration.version < newest
                && !options.allow_out_of_order
            {
                return Err(Error::OutOfOrder {
                    version: migration.version,
                    file: migration.up.path.clone(),
                    newest,
                });
            }
            steps.push(migration);
        }
        Ok(steps)
    }

    fn down_steps(
        &self,
        applied: &[AppliedRow],
        partial: Vec<PartialMigration>,
        to: DownTo,
    ) -> Result<Vec<&Migration>, Error> {
        if !partial.is_empty() {
            return Err(Error::Partial { partial });
        }
        let mut versions: Vec<&AppliedRow> = applied.iter().collect();
        versions.sort_by_key(|row| std::cmp::Reverse(row.version));
        let chosen: Vec<&AppliedRow> = match to {
            DownTo::Steps(n) => versions.into_iter().take(n).collect(),
            DownTo::Version(v) => {
                if v != 0
                    && self.source.get(v).is_none()
                    && !applied.iter().any(|row| row.version == v)
                {
                    return Err(Error::UnknownVersion {
                        version: v,
                        dir: self.source.dir().to_path_buf(),
                    });
                }
                versions
                    .into_iter()
                    .take_while(|row| row.version > v)
                    .collect()
            }
        };
        let chosen_rows: Vec<AppliedRow> = chosen.iter().map(|row| (*row).clone()).collect();
        let drifted = drift(&self.source, &chosen_rows);
        if !drifted.is_empty() {
            return Err(Error::Drift { drifted });
        }
        Ok(chosen
            .iter()
            .filter_map(|row| self.source.get(row.version))
            .collect())
    }

    fn plan(&self, direction: Direction, steps: &[&Migration]) -> Plan {
        let mut hasher = Sha256::new();
        hasher.update(format!(
            "dbops plan v1\n{}\n{}\n",
            self.target.name,
            direction.as_str()
        ));
        let steps: Vec<PlannedStep> = steps
            .iter()
            .map(|m| {
                let script = match direction {
                    Direction::Up => &m.up,
                    Direction::Down => &m.down,
                };
                let checksum = match direction {
                    Direction::Up => m.checksum.to_string(),
                    Direction::Down => hex::encode(Sha256::digest(m.down.sql.as_bytes())),
                };
                hasher.update(format!("{}:{}\n", m.version, checksum));
                PlannedStep {
                    version: m.version,
                    slug: m.slug.clone(),
                    file: script.path.clone(),
                    sql: script.sql.clone(),
                    no_transaction: script.no_transaction,
                    checksum,
                }
            })
            .collect();
        Plan {
            target: self.target.name.clone(),
            direction,
            steps,
            hash: hex::encode(hasher.finalize()),
        }
    }

    /// The target's state: version, pending, partial, drift and last outcome. Takes no lock.
    pub async fn status(&self) -> Result<Status, Error> {
        let session = Session::open_read_only(&self.db, &self.target, &self.settings).await?;
        let applied = session.applied().await?;
        let partial = session.partial().await?;
        let last_outcome = session.last_outcome().await?;
        let newest = applied.iter().max_by_key(|row| row.version);
        let applied_versions: std::collections::HashSet<i64> =
            applied.iter().map(|row| row.version).collect();
        let pending = self
            .source
            .migrations()
            .iter()
            .filter(|m| !applied_versions.contains(&m.version))
            .map(|m| PendingMigration {
                version: m.version,
                slug: m.slug.clone(),
                file: m.up.path.clone(),
                out_of_order: newest.is_some_and(|n| m.version < n.version),
            })
            .collect();
        Ok(Status {
            target: self.target.name.clone(),
            schema_version: newest.map(|row| row.version),
            last_migration_at: applied.iter().filter_map(|row| row.applied_on).max(),
            applied: applied.len(),
            pending,
            partial,
            drifted: drift(&self.source, &applied),
            last_outcome,
        })
    }

    /// Resolves a partial migration: runs it again, or records it as applied
    /// or not applied after an operator finished or undid it by hand. `reason`
    /// is kept in the run log.
    pub async fn repair(
        &self,
        version: i64,
        action: RepairAction,
        reason: &str,
    ) -> Result<RepairReport, Error> {
        if reason.trim().is_empty() {
            return Err(Error::Config {
                origin: "--reason".to_string(),
                message: "a repair needs a reason".to_string(),
            });
        }
        let mut session = Session::open(&self.db, &self.target, &self.settings).await?;
        let partial = session.partial().await?;
        let Some(entry) = partial.iter().find(|p| p.version == version) else {
            return Err(Error::NothingToRepair { version });
        };
        let direction = entry.direction;
        let migration = self
            .source
            .get(version)
            .ok_or_else(|| Error::UnknownVersion {
                version,
                dir: self.source.dir().to_path_buf(),
            })?;
        let step = Step {
            migration,
            direction,
        };
        let resolution = format!(
            "{}: {reason}",
            serde_json::to_value(action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
        match action {
            RepairAction::Rerun => {
                // The old entries are resolved first, so the rerun's own entry is the only open one.
                session.resolve_partial(version, &resolution).await?;
                session.apply_non_transactional(&step).await?;
            }
            RepairAction::MarkApplied | RepairAction::MarkNotApplied => {
                let history = session.target.history_table.clone();
                let record = match action {
                    RepairAction::MarkApplied => format!(
                        "DELETE FROM {history} WHERE version = {version}; {}",
                        session.history_statement(&Step {
                            migration,
                            direction: Direction::Up
                        })
                    ),
                    _ => format!("DELETE FROM {history} WHERE version = {version}"),
                };
                session
                    .execute_in_transaction(&record, "recording the repair")
                    .await?;
                session.resolve_partial(version, &resolution).await?;
            }
        }
        tracing::info!(version, action = ?action, reason, "repaired partial migration");
        self.audit(&session, "migration.repair", version, serde_json::json!({ "action": action, "reason": reason, "direction": direction.as_str() }))
            .await?;
        session.close().await?;
        Ok(RepairReport {
            version,
            action,
            resolved_entries: partial.iter().filter(|p| p.version == version).count() as u64,
        })
    }
}

/// Metric events, for the binary's metrics layer (`tracing-opentelemetry`'s
/// `histogram.` / `monotonic_counter.` field convention). The log layer skips
/// their target.
/// Runs one hook's check for `step` in a span of its own.
async fn run_check<T>(
    step: Step<'_>,
    hook: &dyn Hook,
    phase: &'static str,
    check: crate::hooks::HookFuture<'_, Result<T, crate::hooks::HookError>>,
) -> Result<T, Error> {
    check
        .instrument(tracing::info_span!(
            "migrate.hook",
            hook = hook.name(),
            phase
        ))
        .await
        .map_err(|source| Error::Hook {
            version: step.migration.version,
            source,
        })
}

/// Logs a step's findings, in its span.
fn log_findings(span: &tracing::Span, step: Step<'_>, findings: &[Finding]) {
    let version = step.migration.version;
    span.in_scope(|| {
        for finding in findings {
            match finding.severity {
                Severity::Info => {
                    tracing::info!(hook = %finding.hook, version, "{}", finding.message)
                }
                _ => tracing::warn!(hook = %finding.hook, version, "{}", finding.message),
            }
        }
    });
}

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

fn audit_action(direction: Direction) -> &'static str {
    match direction {
        Direction::Up => "migration.apply",
        Direction::Down => "migration.rollback",
    }
}

/// Rows the row-count checks saw change, in all.
fn rows_affected(before: &[Finding], after: &[Finding]) -> i64 {
    before
        .iter()
        .chain(after)
        .filter_map(|f| f.data.get("difference").and_then(serde_json::Value::as_i64))
        .map(i64::abs)
        .sum()
}

fn check_expected(plan: &Plan, expected: Option<&str>) -> Result<(), Error> {
    match expected {
        Some(expected) if expected != plan.hash => Err(Error::PlanChanged {
            expected: expected.to_string(),
            actual: plan.hash.clone(),
        }),
        _ => Ok(()),
    }
}

fn record_run_outcome(result: &Result<RunReport, Error>, started: Instant) {
    let span = tracing::Span::current();
    span.record("duration_ms", millis_since(started));
    match result {
        Ok(report) => {
            span.record("plan_hash", report.plan_hash.as_str());
            span.record("migrations", report.completed.len());
            span.record("outcome", "succeeded");
        }
        Err(_) => {
            span.record("outcome", "failed");
        }
    }
}

/// Applied migrations whose file is missing or changed.
fn drift(source: &Source, applied: &[AppliedRow]) -> Vec<DriftedMigration> {
    applied
        .iter()
        .filter_map(|row| match source.get(row.version) {
            None => Some(DriftedMigration {
                version: row.version,
                name: row.name.clone(),
                file: None,
                kind: DriftKind::Missing,
            }),
            Some(m) if row.checksum != Some(m.checksum) || row.name != m.slug => {
                Some(DriftedMigration {
                    version: row.version,
                    name: row.name.clone(),
                    file: Some(m.up.path.clone()),
                    kind: DriftKind::Changed,
                })
            }
            Some(_) => None,
        })
        .collect()
}
