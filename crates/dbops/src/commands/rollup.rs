//! `dbops rollup run|check|reconcile|status|migrate`: usage rollups, through the `rollup-engine` crate (`rollup_clickhouse` for clickhouse targets).

use std::io::Write;
use std::path::Path;

use rollup_engine::check::{Assertions, Severity, check};
use rollup_engine::config::{Config, RollupsDatabase};
use rollup_engine::reconcile::{MismatchKind, reconcile};
use rollup_engine::run::{RunMode, RunOptions, run};
use rollup_engine::status::status;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::CliError;
use crate::context::{Context, connect_url};
use crate::exit_code;
use crate::opt::{RollupArgs, RollupCommand};

/// The configuration used when the default file is not present.
const BUILT_IN_CONFIG: &str = include_str!("../../../../analytics/transforms/config.toml");

/// Runs one `rollup` subcommand.
pub async fn run_command(context: &Context<'_>, command: RollupCommand) -> Result<i32, CliError> {
    let (RollupCommand::Run { args, .. }
    | RollupCommand::Check { args, .. }
    | RollupCommand::Reconcile { args, .. }
    | RollupCommand::Status { args, .. }
    | RollupCommand::Migrate { args, .. }) = &command;
    let config = load_config(context, args)?;
    if let Some(clickhouse) = &config.target(&args.target)?.clickhouse {
        return super::rollup_clickhouse::run_command(context, command, &config, clickhouse).await;
    }
    match command {
        RollupCommand::Run {
            args,
            full,
            recompute_from,
            recompute_to,
        } => {
            let mode = run_mode(full, recompute_from, recompute_to)?;
            let (source, mut rollups) = connect(context, &config, &args.target).await?;
            let options = RunOptions {
                target: args.target.clone(),
                mode,
            };
            let report = run(&source, &mut rollups, &config.engine, &options).await?;
            let seconds = report.duration.as_secs_f64();
            if args.json {
                print_json(&json!({
                    "run_id": report.run_id,
                    "target": args.target,
                    "full_rebuild": report.full_rebuild,
                    "watermark_from": report.watermark_from.map(timestamp),
                    "watermark_to": report.watermark_to.map(timestamp),
                    "buckets_queued": report.buckets_queued,
                    "buckets_covered": report.buckets_covered,
                    "hours_covered": report.hours_covered,
                    "days_covered": report.days_covered,
                    "hourly_rows_written": report.hourly_rows_written,
                    "daily_rows_written": report.daily_rows_written,
                    "duration_seconds": seconds,
                    "slow": report.slow,
                    "events_quarantined": report.events_quarantined,
                    "abandoned_runs": report.abandoned_runs,
                    "sees_all_transactions": report.sees_all_transactions,
                    "held_by_prepared_transaction": report.held_by_prepared,
                }))?;
            } else {
                let kind = run_kind(report.full_rebuild);
                println!(
                    "rollup run {} ({}, {kind}): {} (organization, hour) bucket(s) over {} hour(s) and {} day(s) recomputed, {} hourly and {} daily row(s) written in {seconds:.2} s; {} bucket(s) queued; watermark {}",
                    report.run_id,
                    args.target,
                    report.buckets_covered,
                    report.hours_covered,
                    report.days_covered,
                    report.hourly_rows_written,
                    report.daily_rows_written,
                    report.buckets_queued,
                    report
                        .watermark_to
                        .map_or_else(|| "not set".to_owned(), timestamp),
                );
                if report.slow {
                    println!(
                        "  slow: more than {} per hour of data",
                        humantime::format_duration(config.engine.slow_run_per_hour)
                    );
                }
                if report.events_quarantined > 0 {
                    println!(
                        "  {} event(s) quarantined: see `dbops rollup check`",
                        report.events_quarantined
                    );
                }
                for id in &report.abandoned_runs {
                    println!(
                        "  run {id} was left running by a session that ended: marked abandoned"
                    );
                }
                if report.held_by_prepared {
                    println!("  a prepared transaction holds the watermark until it is resolved");
                }
            }
            Ok(exit_code::SUCCESS)
        }
        RollupCommand::Check { args, assertions } => {
            let path = assertions.unwrap_or_else(|| config.assertions.clone());
            let assertions = Assertions::load(&path)?;
            let (_, rollups) = connect(context, &config, &args.target).await?;
            let findings = check(&rollups, &assertions).await?;
            report_findings(args.json, &path, &findings)
        }
        RollupCommand::Reconcile { args, show } => {
            let (source, rollups) = connect(context, &config, &args.target).await?;
            let report = reconcile(&source, &rollups).await?;
            let describe = |kind: &MismatchKind| match kind {
                MismatchKind::MissingFromRollups => "missing from the rollups".to_owned(),
                MismatchKind::NotInEvents => "in the rollups but not in the events".to_owned(),
                MismatchKind::Differs(fields) => fields
                    .iter()
                    .map(|d| format!("{}: events {}, rollups {}", d.field, d.events, d.rollups))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            if args.json {
                let mismatches: Vec<_> = report
                    .mismatches
                    .iter()
                    .map(|m| json!({ "hour_at": timestamp(m.hour_at), "organization_id": m.organization_id, "mismatch": describe(&m.kind) }))
                    .collect();
                print_json(&json!({
                    "buckets_compared": report.buckets_compared,
                    "buckets_pending": report.buckets_pending,
                    "buckets_quarantined": report.buckets_quarantined,
                    "mismatches": mismatches,
                }))?;
            } else {
                for m in report.mismatches.iter().take(show) {
                    println!(
                        "MISMATCH {} organization {}: {}",
                        timestamp(m.hour_at),
                        m.organization_id,
                        describe(&m.kind)
                    );
                }
                if report.mismatches.len() > show {
                    println!(
                        "... and {} more (--show N, or --json for all)",
                        report.mismatches.len() - show
                    );
                }
                println!(
                    "{} (organization, hour) bucket(s) compared, {} mismatch(es), {} pending (queued or ingested after the watermark), {} with quarantined events",
                    report.buckets_compared,
                    report.mismatches.len(),
                    report.buckets_pending,
                    report.buckets_quarantined
                );
            }
            Ok(if report.mismatches.is_empty() {
                exit_code::SUCCESS
            } else {
                exit_code::CHECK_FAILED
            })
        }
        RollupCommand::Status { args, limit } => {
            let (_, rollups) = connect(context, &config, &args.target).await?;
            let state = status(&rollups, &config.engine, limit).await?;
            if args.json {
                let runs: Vec<_> = state
                    .runs
                    .iter()
                    .map(|r| {
                        json!({
                            "id": r.id,
                            "target": r.target,
                            "status": r.status,
                            "started_at": timestamp(r.started_at),
                            "duration_seconds": r.duration.map(|d| d.as_secs_f64()),
                            "buckets_queued": r.buckets_queued,
                            "buckets_covered": r.buckets_covered,
                            "hours_covered": r.hours_covered,
                            "days_covered": r.days_covered,
                            "hourly_rows_written": r.hourly_rows_written,
                            "daily_rows_written": r.daily_rows_written,
                            "seconds_per_hour": r.seconds_per_hour(),
                            "slow": r.slow,
                            "error": r.error_message,
                        })
                    })
                    .collect();
                print_json(&json!({
                    "target": args.target,
                    "watermark": state.watermark.map(timestamp),
                    "queued_buckets": state.queued_buckets,
                    "quarantined_events": state.quarantined_events,
                    "slow_run_per_hour_seconds": config.engine.slow_run_per_hour.as_secs_f64(),
                    "runs": runs,
                }))?;
            } else {
                println!(
                    "target {}: watermark {}, {} (organization, hour) bucket(s) queued, {} event(s) quarantined; a run is slow above {} per hour of data",
                    args.target,
                    state
                        .watermark
                        .map_or_else(|| "not set (no run yet)".to_owned(), timestamp),
                    state.queued_buckets,
                    state.quarantined_events,
                    humantime::format_duration(config.engine.slow_run_per_hour)
                );
                println!(
                    "{:>6}  {:<10} {:<9} {:<20} {:>10} {:>6} {:>5} {:>10}  flag",
                    "run", "target", "status", "started", "duration", "hours", "days", "s/hour"
                );
                for r in &state.runs {
                    println!(
                        "{:>6}  {:<10} {:<9} {:<20} {:>10} {:>6} {:>5} {:>10}  {}",
                        r.id,
                        r.target,
                        r.status,
                        timestamp(r.started_at).chars().take(19).collect::<String>(),
                        r.duration.map_or_else(
                            || "-".to_owned(),
                            |d| format!("{:.2} s", d.as_secs_f64())
                        ),
                        r.hours_covered,
                        r.days_covered,
                        r.seconds_per_hour()
                            .map_or_else(|| "-".to_owned(), |s| format!("{s:.3}")),
                        if r.slow { "SLOW" } else { "" },
                    );
                    if let Some(error) = &r.error_message {
                        println!("        error: {error}");
                    }
                }
            }
            Ok(exit_code::SUCCESS)
        }
        RollupCommand::Migrate { args, .. } => Err(CliError::Config(format!(
            "rollup migrate applies to a clickhouse target; the rollups of target {} live in PostgreSQL, migrated by `dbops migrate` (migrations/analytics)",
            args.target
        ))),
    }
}

/// The rollup configuration: `--rollup-config` as given, else the project's
/// `analytics/transforms/config.toml`, else the built-in copy of it.
fn load_config(context: &Context<'_>, args: &RollupArgs) -> Result<Config, CliError> {
    let default = Path::new(rollup_engine::config::DEFAULT_PATH);
    let config = match &args.rollup_config {
        Some(path) => Config::load(path)?,
        None => {
            let path = context.project_path(default);
            if path.exists() {
                Config::load(&path)?
            } else {
                // As if it were there: its assertions file resolves under the project.
                Config::parse(BUILT_IN_CONFIG, &path)?
            }
        }
    };
    config.target(&args.target)?;
    Ok(config)
}

/// Connections to the operational database and to the target's rollups database.
async fn connect(
    context: &Context<'_>,
    config: &Config,
    target: &str,
) -> Result<(tokio_postgres::Client, tokio_postgres::Client), CliError> {
    let source_url = context.database_url("operational")?;
    let rollups_url = match config.target(target)?.rollups_database {
        RollupsDatabase::Operational => source_url.clone(),
        RollupsDatabase::Analytics => context.database_url("analytics")?,
        // run_command hands clickhouse targets to rollup_clickhouse first.
        RollupsDatabase::ClickHouse => {
            return Err(CliError::Config(format!(
                "target {target} is a ClickHouse cluster, not a PostgreSQL database"
            )));
        }
    };
    let source = connect_url(&source_url, "dbops rollup").await?;
    let rollups = connect_url(&rollups_url, "dbops rollup").await?;
    Ok((source, rollups))
}

/// How a run's report names its kind.
pub(super) fn run_kind(full_rebuild: bool) -> &'static str {
    if full_rebuild {
        "full rebuild"
    } else {
        "incremental"
    }
}

pub(super) fn timestamp(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

pub(super) fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    let _ = writeln!(out);
    Ok(())
}

/// Prints the findings of a check (a table, or JSON) and returns the exit
/// code: [`exit_code::CHECK_FAILED`] when an error assertion failed.
pub(super) fn report_findings(
    json: bool,
    path: &std::path::Path,
    findings: &[rollup_engine::check::Finding],
) -> Result<i32, CliError> {
    let failed = findings.iter().filter(|f| f.fails()).count();
    if json {
        let items: Vec<_> = findings
            .iter()
            .map(|f| {
                json!({
                    "assertion": f.assertion,
                    "severity": severity(f.severity),
                    "violations": f.violations,
                    "sample": f.sample,
                    "description": f.description,
                })
            })
            .collect();
        print_json(
            &json!({ "file": path.display().to_string(), "findings": items, "failed": failed }),
        )?;
    } else {
        for f in findings {
            let verdict = if f.passed() {
                "ok  "
            } else if f.fails() {
                "FAIL"
            } else {
                "warn"
            };
            println!(
                "{verdict} {:<45} {:>8} violation(s)  [{}]",
                f.assertion,
                f.violations,
                severity(f.severity)
            );
            if !f.passed() {
                println!("     {}", f.description);
                for row in &f.sample {
                    println!("     {row}");
                }
            }
        }
        println!(
            "{} assertion(s) from {}, {failed} failed",
            findings.len(),
            path.display()
        );
    }
    Ok(if failed > 0 {
        exit_code::CHECK_FAILED
    } else {
        exit_code::SUCCESS
    })
}

/// The run mode of `rollup run`'s flags.
pub(super) fn run_mode(
    full: bool,
    recompute_from: Option<time::OffsetDateTime>,
    recompute_to: Option<time::OffsetDateTime>,
) -> Result<RunMode, CliError> {
    match (full, recompute_from, recompute_to) {
        (true, None, None) => Ok(RunMode::Full),
        (false, None, None) => Ok(RunMode::Incremental),
        (false, Some(from), Some(to)) => Ok(RunMode::Recompute { from, to }),
        _ => Err(CliError::Config(
            "--recompute-from and --recompute-to go together, and not with --full".into(),
        )),
    }
}
