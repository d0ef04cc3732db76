//! The public entry point: plan, apply, roll back, inspect and repair one target.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::Instrument;

use crate::apply::{Step, StepError, millis};
use crate::config::Settings;
use crate::database::Database;
use crate::error::Error;
use crate::history::Target;
use crate::hooks::{Finding, Hook};
use crate::plan::{self, DownOptions, DownTo, Plan, UpOptions};
use crate::session::Session;
use crate::source::{Direction, Migration, Source};
use crate::status::{PendingMigration, Runner, Status};

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
    pub(crate) target: Target,
    source: Source,
    pub(crate) db: Database,
    pub(crate) settings: Settings,
    pub(crate) hooks: Vec<Arc<dyn Hook>>,
    pub(crate) audit: Option<AuditSettings>,
    pub(crate) audit_key: Option<crate::audit::AuditKey>,
    /// Metadata for the audit entries of one migration only, by version.
    pub(crate) migration_metadata:
        std::collections::BTreeMap<i64, serde_json::Map<String, serde_json::Value>>,
}

/// Who is acting, for the audit trail, and what to add to every entry.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The actor recorded on every entry.
    pub actor: String,
    /// Extra metadata merged into every entry (environment, overrides).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The target.
    pub target: String,
    /// Up or down.
    pub direction: Direction,
    /// The hash of the plan that ran: the expected plan when one was given.
    pub plan_hash: String,
    /// Steps this run completed, in order.
    pub completed: Vec<CompletedStep>,
    /// Steps of the expected plan that another runner completed before this
    /// run got the lock, with who did it as far as the run log tells.
    pub done_by_others: Vec<DoneByOther>,
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
    /// How long the script ran, hooks included.
    #[serde(serialize_with = "serialize_millis")]
    pub duration: Duration,
    /// Attempts it took (more than 1 after retries).
    pub attempts: u32,
    /// What the hooks observed.
    pub findings: Vec<Finding>,
}

/// A step of the expected plan that another runner completed.
#[derive(Debug, Clone, Serialize)]
pub struct DoneByOther {
    /// Version.
    pub version: i64,
    /// Who ran it, when the run log says.
    pub runner: Option<Runner>,
}

/// What [`Migrator::repair`] does with a partial migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepairAction {
    /// Run the interrupted script on, from its first statement that did not complete.
    Rerun,
    /// Record the migration as applied: the operator finished it by hand.
    MarkApplied,
    /// Record the migration as not applied: the operator undid it by hand.
    MarkNotApplied,
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

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(millis(*d))
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
        settings.validate()?;
        Ok(Migrator {
            target: Target::new(target)?,
            source,
            db,
            settings,
            hooks: Vec::new(),
            audit: None,
            audit_key: None,
            migration_metadata: std::collections::BTreeMap::new(),
        })
    }

    /// Records every apply, rollback and repair in the audit trail (see [`crate::audit`]).
    pub fn with_audit(mut self, audit: AuditSettings) -> Migrator {
        self.audit = Some(audit);
        self
    }

    /// Authenticates every audit entry this migrator writes with `key` (see
    /// [`crate::audit`]), approvals included.
    pub fn with_audit_key(mut self, key: crate::audit::AuditKey) -> Migrator {
        self.audit_key = Some(key);
        self
    }

    /// Adds `key` to the metadata of every audit entry this migrator writes
    /// (when auditing is on), such as an override the run goes ahead under.
    pub fn with_audit_metadata(mut self, key: &str, value: serde_json::Value) -> Migrator {
        if let Some(audit) = &mut self.audit {
            audit.metadata.insert(key.to_string(), value);
        }
        self
    }

    /// Adds `key` to the metadata of the audit entries of migration `version`
    /// only (when auditing is on), such as an override that concerns that
    /// migration's files: it is not repeated on every other entry.
    pub fn with_migration_audit_metadata(
        mut self,
        version: i64,
        key: &str,
        value: serde_json::Value,
    ) -> Migrator {
        self.migration_metadata
            .entry(version)
            .or_default()
            .insert(key.to_string(), value);
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

    /// Creates dbops's bookkeeping tables when they are missing, without
    /// taking the lock: [`Migrator::up`] and [`Migrator::down`] do it too,
    /// and calling this first lets a caller overlap it with other work.
    pub async fn prepare_database(&self) -> Result<(), Error> {
        let session = Session::connect(&self.db, &self.target, &self.settings).await?;
        session.bootstrap(self.audit.is_some()).await
    }

    /// What `up` would run, without changing anything. Refuses exactly as `up` would.
    pub async fn plan_up(&self, options: &UpOptions) -> Result<Plan, Error> {
        let session = Session::connect(&self.db, &self.target, &self.settings).await?;
        self.current_plan(&session, Direction::Up, options, None)
            .await
    }

    /// What `down` would run, without changing anything.
    pub async fn plan_down(&self, options: &DownOptions) -> Result<Plan, Error> {
        let session = Session::connect(&self.db, &self.target, &self.settings).await?;
        self.current_plan(
            &session,
            Direction::Down,
            &UpOptions::default(),
            Some(options),
        )
        .await
    }

    /// The hooks' before-checks for every step of a plan, without running
    /// anything or taking the lock: the preflight of a dry run. Steps are
    /// checked against the schema as it is now, so a table that an earlier
    /// pending migration creates is not there yet.
    pub async fn preflight(&self, plan: &Plan) -> Result<Vec<(i64, Vec<Finding>)>, Error> {
        if self.hooks.is_empty() {
            return Ok(Vec::new());
        }
        let session = Session::connect(&self.db, &self.target, &self.settings).await?;
        let mut report = Vec::with_capacity(plan.steps.len());
        for planned in &plan.steps {
            let Some(migration) = self.source.get(planned.version) else {
                continue;
            };
            let step = Step {
                migration,
                direction: plan.direction,
            };
            let (findings, _) = self
                .before_hooks(&session, step)
                .await
                .map_err(into_error)?;
            report.push((planned.version, findings));
        }
        Ok(report)
    }

    /// Applies pending migrations, one at a time, under the target's lock.
    ///
    /// Refuses while a migration is partial, an applied migration drifted, or
    /// (unless allowed) a pending one is older than the newest applied one.
    /// On failure, the error lists what this run applied first.
    pub async fn up(&self, options: &UpOptions) -> Result<RunReport, Error> {
        self.run(Direction::Up, options, None).await
    }

    /// Rolls back applied migrations, newest first, under the target's lock.
    pub async fn down(&self, options: &DownOptions) -> Result<RunReport, Error> {
        let up = UpOptions {
            expected_plan: options.expected_plan.clone(),
            ..UpOptions::default()
        };
        self.run(Direction::Down, &up, Some(options)).await
    }

    /// The run of `up` or `down`: take the lock, plan under it, apply each
    /// step, close. A lost connection is got back (within the reconnect
    /// budget) and the run plans again from the history, against the same
    /// expected plan: a step whose commit went through before the connection
    /// dropped is then seen as done.
    async fn run(
        &self,
        direction: Direction,
        options: &UpOptions,
        down: Option<&DownOptions>,
    ) -> Result<RunReport, Error> {
        let started = Instant::now();
        let span = tracing::info_span!("migrate.run", target = %self.target.name, direction = direction.as_str(), plan_hash = tracing::field::Empty, migrations = tracing::field::Empty, outcome = tracing::field::Empty, duration_ms = tracing::field::Empty);
        async {
            let result = self.run_locked(direction, options, down, started).await;
            let span = tracing::Span::current();
            span.record("duration_ms", millis(started.elapsed()));
            match &result {
                Ok(report) => {
                    span.record("plan_hash", report.plan_hash.as_str());
                    span.record("migrations", report.completed.len());
                    span.record("outcome", "succeeded");
                }
                Err(_) => {
                    span.record("outcome", "failed");
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn run_locked(
        &self,
        direction: Direction,
        options: &UpOptions,
        down: Option<&DownOptions>,
        started: Instant,
    ) -> Result<RunReport, Error> {
        self.check_actor()?;
        if let Some(DownOptions {
            to: DownTo::Steps(0),
            ..
        }) = down
        {
            return Err(Error::Config {
                origin: "rollback steps".into(),
                message: "must be at least 1 (0 would roll back nothing)".into(),
            });
        }
        let mut session =
            Session::open(&self.db, &self.target, &self.settings, self.audit.is_some()).await?;
        let mut expected = options.expected_plan.clone();
        let mut report = RunReport {
            target: self.target.name.clone(),
            direction,
            plan_hash: String::new(),
            completed: Vec::new(),
            done_by_others: Vec::new(),
            duration: Duration::ZERO,
        };
        loop {
            // Closing makes what the run committed durable; a run closes even
            // when a step failed, so that its "applied before" holds after a
            // crash. A connection lost at any point, closing included, is got
            // back and the run plans again from the history: a migration
            // whose commit a crash undid before the flush is applied again.
            let result = match self
                .run_steps(&mut session, options, down, &mut expected, &mut report)
                .await
            {
                Ok(()) => self.close(&mut session, &report).await.map(|()| None),
                Err(StepError::Failed(error)) => self
                    .close(&mut session, &report)
                    .await
                    .map(|()| Some(error)),
                Err(other) => Err(other),
            };
            match result {
                Ok(None) => break,
                Ok(Some(error)) => return Err(error.with_applied_before(&report.completed)),
                Err(StepError::Lost(e)) => {
                    if let Err(error) = session.recover(&e).await {
                        return Err(error.with_applied_before(&report.completed));
                    }
                }
                Err(StepError::Retry(e)) => {
                    return Err(Error::Database {
                        context: "running the migrations".into(),
                        source: e,
                    });
                }
                Err(StepError::Failed(error)) => {
                    return Err(error.with_applied_before(&report.completed));
                }
            }
        }
        report.duration = started.elapsed();
        Ok(report)
    }

    /// The actor of the audit trail fits the audit table (1 to 200
    /// characters), checked before anything runs rather than by the
    /// table's constraint after a migration did.
    pub(crate) fn check_actor(&self) -> Result<(), Error> {
        match &self.audit {
            Some(audit) if audit.actor.trim().is_empty() || audit.actor.chars().count() > 200 => {
                Err(Error::Config {
                    origin: "audit actor".into(),
                    message: format!(
                        "must be 1 to 200 characters, not {}",
                        audit.actor.chars().count()
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// Ends a run on its session: see [`Session::close`].
    async fn close(&self, session: &mut Session<'_>, report: &RunReport) -> Result<(), StepError> {
        let changed = report.completed.len() + report.done_by_others.len();
        session
            .close(
                report.direction,
                &report.plan_hash,
                report.completed.len(),
                changed > 0,
            )
            .await
            .map_err(StepError::from)
    }

    /// Plans under the lock, compares with the expected plan, and applies
    /// what remains. Steps completed earlier in the run (before a lost
    /// connection) are already in `report`.
    async fn run_steps(
        &self,
        session: &mut Session<'_>,
        options: &UpOptions,
        down: Option<&DownOptions>,
        expected: &mut Option<Plan>,
        report: &mut RunReport,
    ) -> Result<(), StepError> {
        let direction = report.direction;
        let applied = self.target.applied(session.client()).await?;
        let partial = self.partial(session.client(), &session.pids).await?;
        let steps = match down {
            None => plan::up_steps(&self.source, &applied, partial, options)?,
            Some(down) => plan::down_steps(&self.source, &applied, partial, down.to)?,
        };
        // A history's first run must not start over a schema built without
        // dbops (once this run applied a step, the history is its own).
        if direction == Direction::Up
            && applied.is_empty()
            && report.completed.is_empty()
            && !steps.is_empty()
        {
            self.refuse_unadopted(session.client()).await?;
        }
        // A step this run completed before a lost connection that the
        // history no longer shows (a server crash undid its commit before
        // the run's flush) is to be applied again.
        report.completed.retain(|step| {
            applied.iter().any(|row| row.version == step.version) == (direction == Direction::Up)
        });
        let current = Plan::new(&self.target.name, direction, &steps);
        let expected = expected.get_or_insert_with(|| current.clone());
        let reconciled = plan::reconcile(expected, &current, &applied)?;
        report.plan_hash = expected.hash.clone();
        for version in reconciled.done {
            if report.completed.iter().any(|c| c.version == version) {
                continue;
            }
            let runner =
                crate::run_log::runner_of(session.client(), &self.target, version, direction)
                    .await?;
            if runner
                .as_ref()
                .is_some_and(|r| session.pids.contains(&r.pid))
            {
                // This run's own commit, whose answer the lost connection took.
                let migration = self.source.get(version).expect("planned from the source");
                let step = Step {
                    migration,
                    direction,
                };
                tracing::info!(
                    version,
                    "the commit went through before the connection dropped"
                );
                report
                    .completed
                    .push(self.completed(step, Duration::ZERO, 1, Vec::new()));
                continue;
            }
            tracing::info!(version, runner = ?runner, "another runner already did this step");
            report
                .done_by_others
                .push(crate::migrator::DoneByOther { version, runner });
        }
        for version in reconciled.remaining {
            let migration = self.source.get(version).expect("planned from the source");
            let step = Step {
                migration,
                direction,
            };
            let completed = self.apply(session, step).await?;
            report.completed.push(completed);
        }
        Ok(())
    }

    /// The plan from the history as it is now.
    async fn current_plan(
        &self,
        session: &Session<'_>,
        direction: Direction,
        options: &UpOptions,
        down: Option<&DownOptions>,
    ) -> Result<Plan, Error> {
        let applied = self.target.applied(session.client()).await?;
        let partial = self.partial(session.client(), &[]).await?;
        let steps: Vec<&Migration> = match down {
            None => plan::up_steps(&self.source, &applied, partial, options)?,
            Some(down) => plan::down_steps(&self.source, &applied, partial, down.to)?,
        };
        if direction == Direction::Up && applied.is_empty() && !steps.is_empty() {
            self.refuse_unadopted(session.client()).await?;
        }
        Ok(Plan::new(&self.target.name, direction, &steps))
    }

    /// The partial migrations of the target but those of the backends
    /// `own_pids`, each with what the catalog says of its next statement.
    async fn partial(
        &self,
        client: &tokio_postgres::Client,
        own_pids: &[i32],
    ) -> Result<Vec<crate::status::PartialMigration>, Error> {
        let mut partial = crate::run_log::partial(client, &self.target, own_pids).await?;
        for entry in &mut partial {
            let Some(migration) = self.source.get(entry.version) else {
                continue;
            };
            let sql = &migration.script(entry.direction).sql;
            let done = usize::try_from(entry.statements_done).unwrap_or(0);
            if let Some(next) = crate::split::split_statements(sql).get(done) {
                entry.in_flight = crate::in_flight::outcome(client, next.text).await?;
            }
        }
        Ok(partial)
    }

    /// The target's state: version, pending, partial, drift and last outcome. Takes no lock.
    pub async fn status(&self) -> Result<Status, Error> {
        let session = Session::connect(&self.db, &self.target, &self.settings).await?;
        let client = session.client();
        let applied = self.target.applied(client).await?;
        let partial = self.partial(client, &[]).await?;
        let last_outcome = crate::run_log::last_outcome(client, &self.target).await?;
        let newest = applied.iter().map(|row| row.version).max();
        let pending = self
            .source
            .migrations()
            .iter()
            .filter(|m| !applied.iter().any(|row| row.version == m.version))
            .map(|m| PendingMigration {
                version: m.version,
                slug: m.slug.clone(),
                file: m.up.path.clone(),
                out_of_order: newest.is_some_and(|n| m.version < n),
            })
            .collect();
        Ok(Status {
            target: self.target.name.clone(),
            schema_version: newest,
            last_migration_at: applied.iter().filter_map(|row| row.applied_on).max(),
            applied: applied.len(),
            pending,
            partial,
            drifted: plan::drift(&self.source, &applied),
            last_outcome,
        })
    }

    /// Resolves a partial migration: runs it on from the first statement
    /// that did not complete, or records it as applied or not applied after
    /// an operator finished or undid it by hand. `reason` is kept in the run log.
    pub async fn repair(
        &self,
        version: i64,
        action: RepairAction,
        reason: &str,
    ) -> Result<RepairReport, Error> {
        if reason.trim().is_empty() {
            return Err(Error::Config {
                origin: "repair reason".to_string(),
                message: "a repair needs a reason".to_string(),
            });
        }
        self.check_actor()?;
        let mut session =
            Session::open(&self.db, &self.target, &self.settings, self.audit.is_some()).await?;
        let partial = self.partial(session.client(), &[]).await?;
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
        let action_name = match action {
            RepairAction::Rerun => "rerun",
            RepairAction::MarkApplied => "mark-applied",
            RepairAction::MarkNotApplied => "mark-not-applied",
        };
        let resolution = format!("{action_name}: {reason}");
        let resolved_entries = partial.iter().filter(|p| p.version == version).count() as u64;
        match action {
            RepairAction::Rerun => {
                // The rerun goes on with the newest entry, which it
                // completes; older unresolved entries of the version are resolved.
                self.apply(&mut session, step).await.map_err(into_error)?;
                crate::run_log::resolve(session.client(), &self.target, version, &resolution)
                    .await?;
            }
            RepairAction::MarkApplied | RepairAction::MarkNotApplied => {
                let history = &self.target.history_table;
                let mut record = format!("DELETE FROM {history} WHERE version = {version}");
                if action == RepairAction::MarkApplied {
                    record.push_str("; ");
                    record.push_str(&self.target.record(migration, Direction::Up));
                }
                session
                    .client()
                    .batch_execute(&format!("BEGIN; {record}; COMMIT;"))
                    .await
                    .map_err(Error::db("recording the repair"))?;
                crate::run_log::resolve(session.client(), &self.target, version, &resolution)
                    .await?;
            }
        }
        tracing::info!(
            version,
            action = action_name,
            reason,
            "repaired partial migration"
        );
        self.audit_event_on(
            session.client(),
            "migration.repair",
            "migration",
            &version.to_string(),
            serde_json::json!({ "version": version, "action": action, "reason": reason, "direction": direction.as_str() }),
        )
        .await?;
        session.close(direction, "", 0, true).await?;
        Ok(RepairReport {
            version,
            action,
            resolved_entries,
        })
    }

    /// Verifies an approval (an armored SSH signature over the plan's
    /// [`crate::approvals::Subject::message`] in namespace
    /// [`crate::signers::APPROVAL_NAMESPACE`]) against `signers`, records
    /// it with its signer, and audits it. Returns the signer.
    ///
    /// # Errors
    /// [`Error::Config`] for a malformed plan hash,
    /// [`Error::SignatureRejected`] for a signature that does not verify.
    pub async fn approve(
        &self,
        environment: &str,
        direction: Direction,
        plan_hash: &str,
        signature: &str,
        signers: &crate::signers::AllowedSigners,
    ) -> Result<crate::signers::Signer, Error> {
        crate::approvals::check_hash(plan_hash)?;
        let subject = crate::approvals::Subject {
            target: &self.target.name,
            environment,
            direction,
            plan_hash,
        };
        let signer = signers
            .verify(
                signature,
                crate::signers::APPROVAL_NAMESPACE,
                subject.message().as_bytes(),
            )
            .map_err(|reason| Error::SignatureRejected { reason })?;
        let session = Session::connect(&self.db, &self.target, &self.settings).await?;
        crate::approvals::record(session.client(), &subject, &signer, signature).await?;
        let entry = crate::audit::AuditEntry {
            actor: signer.names(),
            action: "migration.approve".into(),
            target_type: "plan".into(),
            target_id: Some(plan_hash.to_string()),
            metadata: serde_json::json!({
                "target": self.target.name,
                "environment": environment,
                "direction": direction.as_str(),
                "plan_hash": plan_hash,
                "key_fingerprint": signer.fingerprint,
            }),
        };
        crate::audit::record(session.client(), &entry, self.audit_key.as_ref()).await?;
        Ok(signer)
    }

    /// Every approval recorded for this target in `environment`, newest first.
    pub async fn approvals(
        &self,
        environment: &str,
    ) -> Result<Vec<crate::approvals::Approval>, Error> {
        let session = Session::connect(&self.db, &self.target, &self.settings).await?;
        crate::approvals::list(session.client(), &self.target.name, environment).await
    }

    /// Writes an audit entry for something decided outside a run.
    pub async fn audit_event(
        &self,
        action: &str,
        metadata: serde_json::Value,
    ) -> Result<(), Error> {
        let session = Session::connect(&self.db, &self.target, &self.settings).await?;
        self.audit_event_on(
            session.client(),
            action,
            "target",
            &self.target.name,
            metadata,
        )
        .await
    }

    async fn audit_event_on(
        &self,
        client: &tokio_postgres::Client,
        action: &str,
        target_type: &str,
        target_id: &str,
        metadata: serde_json::Value,
    ) -> Result<(), Error> {
        match self.audit_event_entry(action, target_type, metadata) {
            Some(mut entry) => {
                entry.target_id = Some(target_id.to_string());
                crate::audit::record(client, &entry, self.audit_key.as_ref()).await?;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The audit entry of `action` by this migrator's actor, with the
    /// target and the migrator's own metadata merged into `metadata`; none
    /// when auditing is off. Its subject is the target, unless the caller
    /// names another.
    pub(crate) fn audit_event_entry(
        &self,
        action: &str,
        target_type: &str,
        metadata: serde_json::Value,
    ) -> Option<crate::audit::AuditEntry> {
        let audit = self.audit.as_ref()?;
        let mut merged = serde_json::Map::new();
        merged.insert("target".into(), self.target.name.clone().into());
        if let serde_json::Value::Object(details) = metadata {
            merged.extend(details);
        }
        merged.extend(audit.metadata.clone());
        Some(crate::audit::AuditEntry {
            actor: audit.actor.clone(),
            action: action.to_string(),
            target_type: target_type.into(),
            target_id: Some(self.target.name.clone()),
            metadata: serde_json::Value::Object(merged),
        })
    }
}

/// A step error outside a run, where there is no connection to get back.
fn into_error(error: StepError) -> Error {
    match error {
        StepError::Failed(error) => error,
        StepError::Lost(last_error) => Error::ConnectionLost {
            target: String::new(),
            budget: Duration::ZERO,
            last_error,
            applied_before: Vec::new(),
        },
        StepError::Retry(source) => Error::Database {
            context: "running the migration".into(),
            source,
        },
    }
}
