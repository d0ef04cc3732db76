//! `dbops migrate`: up, down, status, plan and repair, for one target or all.

use std::collections::BTreeMap;
use std::io::Write;

use migrate_core::approvals::Subject;
use migrate_core::signers::{APPROVAL_NAMESPACE, AllowedSigners};
use migrate_core::{
    Direction, DownOptions, DownTo, Migrator, Plan, RepairAction, Status, UpOptions,
};

use crate::CliError;
use crate::commands::lint::{baseline_path, load_baseline};
use crate::config::EnvironmentPolicy;
use crate::context::Context;
use crate::exit_code;
use crate::guardrails;
use crate::opt::{
    DirectionChoice, GuardArgs, MigrateCommand, RepairChoice, TargetArgs, TargetChoice,
};

/// Runs one `migrate` subcommand.
pub async fn run(context: &Context<'_>, command: MigrateCommand) -> Result<i32, CliError> {
    match command {
        MigrateCommand::Up {
            target,
            to,
            dry_run,
            allow_out_of_order,
            guard,
        } => {
            let options = UpOptions {
                to,
                allow_out_of_order,
                expected_plan: None,
            };
            let policy = context.config.environment(&guard.environment)?.clone();
            let actor = guardrails::actor(context.global.actor.as_deref());
            for name in context.configured(target.choice(TargetChoice::All)) {
                let migrator = context.changing_migrator(name, &target, &actor, &guard)?;
                // Lint (CPU) and planning (the database) overlap: every file is
                // linted, then only the findings in pending files are kept. A
                // real run creates dbops's tables meanwhile, if it is the first.
                let linting = lint_everything(context, &migrator)?;
                let plan = if dry_run {
                    migrator.plan_up(&options).await?
                } else {
                    let (plan, prepared) =
                        tokio::join!(migrator.plan_up(&options), migrator.prepare_database());
                    prepared?;
                    plan?
                };
                let lint = pending_findings(
                    linting.await.expect("linting does not panic"),
                    &migrator,
                    &plan,
                );
                print_accepted(&migrator, &lint);
                let lint = lint.new;
                if dry_run {
                    print_plan(&migrator, &plan);
                    print_lint(&lint);
                    print_preflight(
                        &context
                            .preflight_migrator(name, &target)?
                            .preflight(&plan)
                            .await?,
                    );
                    continue;
                }
                if plan.steps.is_empty() {
                    println!("{name}: nothing to apply");
                    continue;
                }
                let migrator = enforce_lint(migrator, &lint, &policy, &guard)?;
                guardrails::check(&migrator, &plan, &policy, &guard, &actor, &[]).await?;
                let options = UpOptions {
                    expected_plan: Some(plan),
                    ..options.clone()
                };
                let report = migrator.up(&options).await?;
                println!(
                    "{name}: applied {} migration(s) in {} ms{}",
                    report.completed.len(),
                    report.duration.as_millis(),
                    last_version(&report.completed)
                );
                print_done_by_others(&report);
            }
            Ok(exit_code::SUCCESS)
        }
        MigrateCommand::Down {
            target,
            to,
            steps,
            dry_run,
            guard,
        } => {
            let to = match (to, steps) {
                (Some(version), _) => DownTo::Version(version),
                (None, steps) => DownTo::Steps(steps.unwrap_or(1)),
            };
            let policy = context.config.environment(&guard.environment)?.clone();
            let actor = guardrails::actor(context.global.actor.as_deref());
            for name in context
                .configured(target.required("migrate down")?)
                .iter()
                .rev()
            {
                let migrator = context.changing_migrator(name, &target, &actor, &guard)?;
                let plan = migrator.plan_down(&to.into()).await?;
                let warnings = data_loss_warnings(&migrator, &plan);
                if dry_run {
                    print_plan(&migrator, &plan);
                    for warning in &warnings {
                        println!("-- warning: {warning}");
                    }
                    print_preflight(
                        &context
                            .preflight_migrator(name, &target)?
                            .preflight(&plan)
                            .await?,
                    );
                    continue;
                }
                if plan.steps.is_empty() {
                    println!("{name}: nothing to roll back");
                    continue;
                }
                guardrails::check(&migrator, &plan, &policy, &guard, &actor, &warnings).await?;
                let options = DownOptions {
                    to,
                    expected_plan: Some(plan),
                };
                let report = migrator.down(&options).await?;
                println!(
                    "{name}: rolled back {} migration(s) in {} ms",
                    report.completed.len(),
                    report.duration.as_millis()
                );
                print_done_by_others(&report);
            }
            Ok(exit_code::SUCCESS)
        }
        MigrateCommand::Redo { target, guard } => {
            let [name] = Context::targets(target.required("migrate redo")?) else {
                return Err(CliError::Config(
                    "redo acts on one target: pass --target operational or --target analytics"
                        .into(),
                ));
            };
            let policy = context.config.environment(&guard.environment)?.clone();
            let actor = guardrails::actor(context.global.actor.as_deref());
            let migrator = context.changing_migrator(name, &target, &actor, &guard)?;
            let down = migrator.plan_down(&DownTo::Steps(1).into()).await?;
            let Some(newest) = down.steps.first() else {
                println!("{name}: nothing to redo");
                return Ok(exit_code::SUCCESS);
            };
            let version = newest.version;
            // Everything that can refuse runs before the rollback: nothing
            // stands between the rollback and the re-apply but the two runs.
            let lint = lint_as_pending(context, &migrator, &[version].into())?;
            print_accepted(&migrator, &lint);
            let migrator = enforce_lint(migrator, &lint.new, &policy, &guard)?;
            let warnings = data_loss_warnings(&migrator, &down);
            guardrails::check(&migrator, &down, &policy, &guard, &actor, &warnings).await?;
            let rolled_back = migrator
                .down(&DownOptions {
                    to: DownTo::Steps(1),
                    expected_plan: Some(down),
                })
                .await?;
            let applied = migrator
                .up(&UpOptions {
                    to: Some(version),
                    ..UpOptions::default()
                })
                .await?;
            println!(
                "{name}: rolled back {version} in {} ms and applied it again in {} ms",
                rolled_back.duration.as_millis(),
                applied.duration.as_millis()
            );
            Ok(exit_code::SUCCESS)
        }
        MigrateCommand::New {
            slug,
            target,
            dir,
            no_transaction,
        } => {
            let [name] = Context::targets(target) else {
                return Err(CliError::Config(
                    "a new migration is for one target: pass --target operational or --target analytics".into(),
                ));
            };
            let dir = match dir {
                Some(dir) => dir,
                None => context.project_path(&context.config.target(name)?.dir),
            };
            let written = migrate_core::scaffold::new_migration(
                &dir,
                &slug,
                no_transaction,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|error| match error {
                migrate_core::Error::BadFileName { reason, .. } => {
                    CliError::Config(format!("migration slug {slug:?}: {reason}"))
                }
                other => other.into(),
            })?;
            println!("{}", written.up.display());
            println!("{}", written.down.display());
            Ok(exit_code::SUCCESS)
        }
        MigrateCommand::Baseline {
            target,
            to,
            baseline,
        } => super::adopt::baseline(context, target, to, baseline).await,
        MigrateCommand::Import {
            tool,
            source_dir,
            history_table,
            target,
            baseline,
        } => {
            let source = super::adopt::Source {
                tool: &tool,
                dir: &source_dir,
                history_table: history_table.as_deref(),
            };
            super::adopt::import(context, source, target, baseline).await
        }
        MigrateCommand::Status { target, json } => {
            let statuses = statuses(context, &target).await?;
            if json {
                let mut out = std::io::stdout().lock();
                if statuses.len() == 1 {
                    serde_json::to_writer_pretty(&mut out, &statuses[0])?;
                } else {
                    serde_json::to_writer_pretty(&mut out, &statuses)?;
                }
                let _ = writeln!(out);
            } else {
                for status in &statuses {
                    print_status(status);
                }
            }
            Ok(exit_code::SUCCESS)
        }
        MigrateCommand::Plan { target, to, json } => {
            let options = UpOptions {
                to,
                ..UpOptions::default()
            };
            for name in context.configured(target.choice(TargetChoice::All)) {
                let migrator = context.migrator(name, &target)?;
                let plan = migrator.plan_up(&options).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&plan)?);
                } else {
                    print_plan(&migrator, &plan);
                }
            }
            Ok(exit_code::SUCCESS)
        }
        MigrateCommand::Approve {
            target,
            plan,
            environment,
            direction,
            signature,
            message,
        } => {
            let [name] = Context::targets(target.choice(TargetChoice::Operational)) else {
                return Err(CliError::Config("an approval is for one target: pass --target operational or --target analytics".into()));
            };
            let policy = context.config.environment(&environment)?;
            let direction = match direction {
                DirectionChoice::Up => Direction::Up,
                DirectionChoice::Down => Direction::Down,
            };
            let subject = Subject {
                target: name,
                environment: &environment,
                direction,
                plan_hash: &plan,
            };
            if message {
                print!("{}", subject.message());
                return Ok(exit_code::SUCCESS);
            }
            let Some(path) = &policy.allowed_signers else {
                return Err(CliError::Config(format!(
                    "environment {environment} names no allowed_signers: approvals there could not be verified"
                )));
            };
            let signers = AllowedSigners::load(path)?;
            let signature = guardrails::read_signature(
                signature
                    .as_deref()
                    .expect("clap requires --signature or --message"),
            )?;
            let migrator = context.migrator(name, &target)?;
            let signer = migrator
                .approve(&environment, direction, &plan, &signature, &signers)
                .await
                .map_err(|error| match error {
                    migrate_core::Error::SignatureRejected { reason } => {
                        CliError::Refused(format!(
                            "{reason}; {}",
                            guardrails::how_to_sign(&subject, APPROVAL_NAMESPACE)
                        ))
                    }
                    other => other.into(),
                })?;
            println!(
                "{name}: {} (key {}) approved plan {plan} ({}) for {environment}",
                signer.names(),
                signer.fingerprint,
                direction.as_str()
            );
            if direction == Direction::Up {
                let current = migrator
                    .plan_up(&UpOptions::default())
                    .await
                    .ok()
                    .map(|p| p.hash);
                if current.as_deref().is_some_and(|current| current != plan) {
                    eprintln!(
                        "warning: the pending plan of {name} is now {}, not the plan just approved",
                        current.unwrap_or_default()
                    );
                }
            }
            Ok(exit_code::SUCCESS)
        }
        MigrateCommand::Repair {
            target,
            version,
            reason,
            action,
        } => {
            let [name] = Context::targets(target.choice(TargetChoice::Operational)) else {
                return Err(CliError::Config(
                    "repair acts on one target: pass --target operational or --target analytics"
                        .into(),
                ));
            };
            let action = match action {
                RepairChoice::Rerun => RepairAction::Rerun,
                RepairChoice::MarkApplied => RepairAction::MarkApplied,
                RepairChoice::MarkNotApplied => RepairAction::MarkNotApplied,
            };
            let actor = guardrails::actor(context.global.actor.as_deref());
            let guard = GuardArgs {
                environment: "local".into(),
                yes: true,
                allow_lint_errors: false,
                run_signature: Vec::new(),
            };
            let report = context
                .changing_migrator(name, &target, &actor, &guard)?
                .repair(version, action, &reason)
                .await?;
            println!(
                "{name}: migration {} repaired ({:?}); {} run-log entries resolved",
                report.version, report.action, report.resolved_entries
            );
            Ok(exit_code::SUCCESS)
        }
    }
}

/// Starts linting every migration of the source (up and down scripts) on a
/// blocking thread, so that the database work of planning goes on meanwhile.
fn lint_everything(
    context: &Context<'_>,
    migrator: &Migrator,
) -> Result<tokio::task::JoinHandle<schema_lint::Baselined>, CliError> {
    let config = context.lint_config()?;
    let baseline = load_baseline(&baseline_path(context, &config))?;
    let sources: Vec<_> = migrator
        .source()
        .migrations()
        .iter()
        .flat_map(|m| {
            [
                (m.up.path.clone(), lint_text(&m.up.sql)),
                (m.down.path.clone(), lint_text(&m.down.sql)),
            ]
        })
        .collect();
    Ok(tokio::task::spawn_blocking(move || {
        baseline.apply(schema_lint::lint_pending(&[], &sources, &config), &sources)
    }))
}

/// The findings located in the files of a plan's migrations: what
/// `schema_lint::lint_pending` would report for them, as the same files are
/// replayed in the same order.
fn pending_findings(
    violations: schema_lint::Baselined,
    migrator: &Migrator,
    plan: &Plan,
) -> schema_lint::Baselined {
    let files: std::collections::HashSet<&std::path::Path> = plan
        .steps
        .iter()
        .filter_map(|step| migrator.source().get(step.version))
        .flat_map(|m| [m.up.path.as_path(), m.down.path.as_path()])
        .collect();
    let pending = |found: Vec<schema_lint::Violation>| -> Vec<schema_lint::Violation> {
        found
            .into_iter()
            .filter(|v| v.location.path().is_some_and(|path| files.contains(path)))
            .collect()
    };
    schema_lint::Baselined {
        new: pending(violations.new),
        accepted: pending(violations.accepted),
    }
}

/// Says how many findings of the pending migrations the lint baseline accepts.
fn print_accepted(migrator: &Migrator, lint: &schema_lint::Baselined) {
    if !lint.accepted.is_empty() {
        eprintln!(
            "{}: {} lint finding(s) in the pending migrations accepted by the lint baseline",
            migrator.target(),
            lint.accepted.len()
        );
    }
}

/// A script's text for the linter: without the rows of bulk inserts, which
/// no rule reads, so that a large data migration is not copied whole.
fn lint_text(sql: &str) -> String {
    migrate_core::split::without_bulk_rows(sql).into_owned()
}

/// Lints the migrations `pending` (up and down scripts) in the context of
/// all the others, so that, say, a foreign key added to an existing table is
/// checked against that table's indexes; only findings in `pending` count.
fn lint_as_pending(
    context: &Context<'_>,
    migrator: &Migrator,
    pending: &std::collections::HashSet<i64>,
) -> Result<schema_lint::Baselined, CliError> {
    let config = context.lint_config()?;
    let baseline = load_baseline(&baseline_path(context, &config))?;
    let (mut others, mut these) = (Vec::new(), Vec::new());
    for migration in migrator.source().migrations() {
        let side = if pending.contains(&migration.version) {
            &mut these
        } else {
            &mut others
        };
        side.push((migration.up.path.clone(), lint_text(&migration.up.sql)));
        side.push((migration.down.path.clone(), lint_text(&migration.down.sql)));
    }
    let found = schema_lint::lint_pending(&others, &these, &config);
    Ok(baseline.apply(found, &these))
}

fn print_preflight(steps: &[(i64, Vec<migrate_core::hooks::Finding>)]) {
    let findings: Vec<_> = steps
        .iter()
        .flat_map(|(version, findings)| findings.iter().map(move |f| (version, f)))
        .collect();
    if findings.is_empty() {
        println!("-- preflight: no findings");
        return;
    }
    println!("-- preflight:");
    for (version, finding) in findings {
        println!(
            "-- {version} [{}] {:?}: {}",
            finding.hook, finding.severity, finding.message
        );
    }
}

fn print_lint(violations: &[schema_lint::Violation]) {
    if violations.is_empty() {
        println!("-- lint: no findings");
    } else {
        println!("-- lint findings:");
        for line in schema_lint::render::human(violations).lines() {
            println!("-- {line}");
        }
    }
}

/// Error-level findings block the run unless overridden where the
/// environment allows it. The override is audited on the entry of each
/// migration whose files hold the findings, with those findings' rules (a
/// finding in no migration's file goes on every entry), so that a runner that
/// finds the work done by another writes nothing.
fn enforce_lint(
    migrator: Migrator,
    violations: &[schema_lint::Violation],
    policy: &EnvironmentPolicy,
    guard: &GuardArgs,
) -> Result<Migrator, CliError> {
    if !schema_lint::has_errors(violations) {
        return Ok(migrator);
    }
    eprint!("{}", schema_lint::render::human(violations));
    let errors: Vec<&schema_lint::Violation> = violations
        .iter()
        .filter(|v| v.severity == schema_lint::Severity::Error)
        .collect();
    if !guard.allow_lint_errors {
        return Err(CliError::LintErrors(format!(
            "{} error-level lint finding(s) in the pending migrations of {}; fix them, add a reasoned `-- dbops-lint: ignore`, or pass --allow-lint-errors",
            errors.len(),
            migrator.target()
        )));
    }
    if !policy.allow_lint_override {
        return Err(CliError::Refused(format!(
            "environment {} does not allow --allow-lint-errors ({} error-level finding(s))",
            guard.environment,
            errors.len()
        )));
    }
    eprintln!(
        "warning: running despite {} error-level lint finding(s) (--allow-lint-errors, audited)",
        errors.len()
    );
    let (run_wide, by_version) = lint_overrides(&errors);
    let override_of = |rules: &[&str]| serde_json::json!({ "errors": rules.len(), "rules": rules });
    let mut migrator = migrator;
    if !run_wide.is_empty() {
        migrator = migrator.with_audit_metadata("lint_override", override_of(&run_wide));
    }
    for (version, rules) in by_version {
        migrator =
            migrator.with_migration_audit_metadata(version, "lint_override", override_of(&rules));
    }
    Ok(migrator)
}

/// The rules an overridden run's audit entries name: each migration's entry
/// the rules of the errors in its own files, and the rules of errors in no
/// migration's file (the first value) on every entry, its own included.
fn lint_overrides<'a>(
    errors: &[&'a schema_lint::Violation],
) -> (Vec<&'a str>, BTreeMap<i64, Vec<&'a str>>) {
    let mut by_version: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    let mut run_wide = Vec::new();
    for violation in errors {
        match violation
            .location
            .path()
            .and_then(|path| migrate_core::source::FileName::parse(path).ok())
        {
            Some(name) => by_version
                .entry(name.version)
                .or_default()
                .push(violation.rule),
            None => run_wide.push(violation.rule),
        }
    }
    for rules in by_version.values_mut() {
        rules.extend(&run_wide);
    }
    (run_wide, by_version)
}

/// What a rollback plan destroys, named table by table.
fn data_loss_warnings(migrator: &Migrator, plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .flat_map(|step| {
            let sql = step_sql(migrator, plan, step.version);
            migrate_hooks::data_loss::destructive_statements(sql)
                .into_iter()
                .map(move |loss| format!("rolling back {}_{} {loss}", step.version, step.slug))
        })
        .collect()
}

/// The SQL a step of `plan` runs.
fn step_sql<'m>(migrator: &'m Migrator, plan: &Plan, version: i64) -> &'m str {
    migrator
        .source()
        .get(version)
        .map_or("", |m| m.script(plan.direction).sql.as_str())
}

/// Says which steps of the plan another runner did, and who.
fn print_done_by_others(report: &migrate_core::RunReport) {
    if report.done_by_others.is_empty() {
        return;
    }
    let versions: Vec<String> = report
        .done_by_others
        .iter()
        .map(|d| d.version.to_string())
        .collect();
    let runners: std::collections::BTreeSet<String> = report
        .done_by_others
        .iter()
        .map(|d| {
            d.runner
                .as_ref()
                .map_or_else(|| "an unknown runner".to_string(), ToString::to_string)
        })
        .collect();
    let shown = if versions.len() > 10 {
        format!(
            "{}, and {} more",
            versions[..10].join(", "),
            versions.len() - 10
        )
    } else {
        versions.join(", ")
    };
    println!(
        "{}: another runner ({}) already did {} step(s) of the plan: {shown}",
        report.target,
        runners.into_iter().collect::<Vec<_>>().join("; "),
        versions.len(),
    );
}

/// The status of every target `args` names.
pub async fn statuses(context: &Context<'_>, args: &TargetArgs) -> Result<Vec<Status>, CliError> {
    let mut statuses = Vec::new();
    for name in context.configured(args.choice(TargetChoice::All)) {
        statuses.push(context.migrator(name, args)?.status().await?);
    }
    Ok(statuses)
}

fn last_version(completed: &[migrate_core::CompletedStep]) -> String {
    completed
        .last()
        .map(|step| format!("; now at {}", step.version))
        .unwrap_or_default()
}

fn print_plan(migrator: &Migrator, plan: &Plan) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "-- plan for target {} ({}): {} migration(s)",
        plan.target,
        plan.direction.as_str(),
        plan.steps.len()
    );
    for step in &plan.steps {
        let mode = if step.no_transaction {
            "outside a transaction"
        } else {
            "in a transaction"
        };
        let _ = writeln!(
            out,
            "\n-- {}_{} ({mode}) {}",
            step.version,
            step.slug,
            step.file.display()
        );
        let _ = writeln!(out, "{}", step_sql(migrator, plan, step.version).trim_end());
    }
    let _ = writeln!(out, "\n-- plan hash: {}", plan.hash);
}

fn print_status(status: &Status) {
    let mut out = std::io::stdout().lock();
    let version = status
        .schema_version
        .map_or_else(|| "none".to_string(), |v| v.to_string());
    let at = status
        .last_migration_at
        .and_then(|t| t.format(&time_format()).ok())
        .map(|t| format!(", last applied {t}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}: version {version}{at}; {} applied, {} pending, {} partial, {} drifted",
        status.target,
        status.applied,
        status.pending.len(),
        status.partial.len(),
        status.drifted.len()
    );
    for pending in &status.pending {
        let note = if pending.out_of_order {
            " (out of order)"
        } else {
            ""
        };
        let _ = writeln!(out, "  pending  {}_{}{note}", pending.version, pending.slug);
    }
    for partial in &status.partial {
        let _ = writeln!(out, "  PARTIAL  {partial}");
    }
    for drifted in &status.drifted {
        let _ = writeln!(out, "  DRIFTED  {drifted}");
    }
    if let Some(last) = &status.last_outcome {
        let _ = writeln!(
            out,
            "  last run: {} {}_{} {}",
            last.direction.as_str(),
            last.version,
            last.name,
            last.outcome
        );
    }
}

fn time_format() -> Vec<time::format_description::BorrowedFormatItem<'static>> {
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z").to_vec()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use schema_lint::{Location, Severity, Violation};

    use super::lint_overrides;

    fn error(rule: &'static str, location: Location) -> Violation {
        Violation {
            rule,
            severity: Severity::Error,
            message: String::new(),
            help: None,
            location,
        }
    }

    fn in_file(path: &str) -> Location {
        Location::File {
            path: PathBuf::from(path),
        }
    }

    #[test]
    fn a_lint_override_names_each_migrations_rules_and_the_stray_ones_everywhere() {
        let errors = [
            error("naming-table", in_file("migrations/202501010001_a.up.sql")),
            error(
                "index-concurrently",
                in_file("migrations/202501020000_b.up.sql"),
            ),
            error("naming-index", in_file("migrations/202501010001_a.up.sql")),
            error("file-naming", in_file("migrations/notes.sql")),
            error(
                "live-object",
                Location::Object {
                    name: "table public.t".into(),
                },
            ),
        ];
        let errors: Vec<&Violation> = errors.iter().collect();
        let (run_wide, by_version) = lint_overrides(&errors);
        assert_eq!(run_wide, ["file-naming", "live-object"]);
        assert_eq!(
            by_version.into_iter().collect::<Vec<_>>(),
            [
                (
                    202501010001,
                    vec!["naming-table", "naming-index", "file-naming", "live-object"]
                ),
                (
                    202501020000,
                    vec!["index-concurrently", "file-naming", "live-object"]
                ),
            ]
        );
    }
}
