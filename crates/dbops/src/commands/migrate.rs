//! `dbops migrate`: up, down, status, plan and repair, for one target or all.

use std::io::Write;

use migrate_core::{DownTo, Plan, RepairAction, Status, UpOptions};

use crate::CliError;
use crate::context::Context;
use crate::exit_code;
use crate::opt::{MigrateCommand, RepairChoice, TargetArgs};

/// Runs one `migrate` subcommand.
pub async fn run(context: &Context<'_>, command: MigrateCommand) -> Result<i32, CliError> {
    match command {
        MigrateCommand::Up {
            target,
            to,
            dry_run,
            allow_out_of_order,
        } => {
            let options = UpOptions {
                to,
                allow_out_of_order,
            };
            for name in Context::targets(target.target) {
                let migrator = context.migrator(name, &target)?;
                if dry_run {
                    print_plan(&migrator.plan_up(&options).await?);
                    continue;
                }
                let report = migrator.up(&options).await?;
                println!(
                    "{name}: applied {} migration(s) in {} ms{}",
                    report.completed.len(),
                    report.duration.as_millis(),
                    last_version(&report.completed)
                );
            }
            Ok(exit_code::SUCCESS)
        }
        MigrateCommand::Down {
            target,
            to,
            steps,
            dry_run,
        } => {
            let to = match (to, steps) {
                (Some(version), _) => DownTo::Version(version),
                (None, steps) => DownTo::Steps(steps.unwrap_or(1)),
            };
            for name in Context::targets(target.target).iter().rev() {
                let migrator = context.migrator(name, &target)?;
                if dry_run {
                    print_plan(&migrator.plan_down(to).await?);
                    continue;
                }
                let report = migrator.down(to).await?;
                println!(
                    "{name}: rolled back {} migration(s) in {} ms",
                    report.completed.len(),
                    report.duration.as_millis()
                );
            }
            Ok(exit_code::SUCCESS)
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
                allow_out_of_order: false,
            };
            for name in Context::targets(target.target) {
                let plan = context.migrator(name, &target)?.plan_up(&options).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&plan)?);
                } else {
                    print_plan(&plan);
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
            let [name] = Context::targets(target.target) else {
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
            let report = context
                .migrator(name, &target)?
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

/// The status of every target `args` names.
pub async fn statuses(context: &Context<'_>, args: &TargetArgs) -> Result<Vec<Status>, CliError> {
    let mut statuses = Vec::new();
    for name in Context::targets(args.target) {
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

fn print_plan(plan: &Plan) {
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
        let _ = writeln!(out, "{}", step.sql.trim_end());
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
