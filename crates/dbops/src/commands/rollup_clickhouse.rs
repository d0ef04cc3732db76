//! `dbops rollup ... --target clickhouse`: the rollups on a ClickHouse cluster, through the `rollup-clickhouse` crate.
//!
//! The events are read from the operational database; the runs' bookkeeping
//! (`analytics.rollup_runs`, the target's watermark) and the migration lock
//! live in the analytics database (`ANALYTICS_URL`, else `DB_URL`).

use std::path::Path;

use migrate_core::Source;
use migrate_core::audit::AuditEntry;
use rollup_clickhouse::totals::{FIELDS, compare};
use rollup_clickhouse::{ClickHouse, Settings};
use rollup_engine::check::Assertions;
use rollup_engine::config::{ClickHouseTarget, Config};
use serde_json::json;
use time::OffsetDateTime;
use url::Url;

use super::rollup::{print_json, report_findings, run_kind, run_mode, timestamp};
use crate::CliError;
use crate::context::{Context, connect_url};
use crate::exit_code;
use crate::opt::{RollupArgs, RollupCommand};

/// The ClickHouse migrations, relative to the project root.
const MIGRATIONS: &str = "migrations/clickhouse";

/// Runs one `rollup` subcommand on a target whose rollups database is `clickhouse`.
pub async fn run_command(
    context: &Context<'_>,
    command: RollupCommand,
    config: &Config,
    settings: &ClickHouseTarget,
) -> Result<i32, CliError> {
    match command {
        RollupCommand::Run {
            args,
            full,
            recompute_from,
            recompute_to,
        } => {
            let mode = run_mode(full, recompute_from, recompute_to)?;
            let ch = cluster(config, &args.target, settings)?;
            let (source, bookkeeping) = connect(context).await?;
            let report =
                rollup_clickhouse::run::run(&ch, &source, &bookkeeping, &config.engine, mode)
                    .await?;
            if args.json {
                print_json(&json!({
                    "run_id": report.run_id,
                    "target": args.target,
                    "full_rebuild": report.full_rebuild,
                    "watermark_from": report.watermark_from.map(timestamp),
                    "watermark_to": timestamp(report.watermark_to),
                    "buckets_covered": report.buckets,
                    "hours_covered": report.hours,
                    "days_covered": report.days,
                    "hourly_rows_written": report.hourly_rows_written,
                }))?;
            } else {
                let kind = run_kind(report.full_rebuild);
                println!(
                    "rollup run {} ({}, {kind}): {} (organization, hour) bucket(s) over {} hour(s) and {} day(s) rewritten on ClickHouse, {} hourly row(s) written; watermark {}",
                    report.run_id,
                    args.target,
                    report.buckets,
                    report.hours,
                    report.days,
                    report.hourly_rows_written,
                    timestamp(report.watermark_to),
                );
            }
            Ok(exit_code::SUCCESS)
        }
        RollupCommand::Check { args, assertions } => {
            let path = assertions
                .or_else(|| config.clickhouse_assertions.clone())
                .ok_or_else(|| {
                    CliError::Config(
                        "the rollup configuration sets no [check] clickhouse_assertions (the \
                         assertions in ClickHouse's SQL, analytics/tests/clickhouse/hourly_rollup.toml); \
                         set it or pass --assertions"
                            .into(),
                    )
                })?;
            let assertions = Assertions::load(&path)?;
            let ch = cluster(config, &args.target, settings)?;
            let findings = rollup_clickhouse::check::check(&ch, &assertions).await?;
            report_findings(args.json, &path, &findings)
        }
        RollupCommand::Reconcile { args, show } => {
            differences(context, config, settings, &args, show).await
        }
        RollupCommand::Status { args, limit } => status(context, &args, limit).await,
        RollupCommand::Migrate { args, down_to } => {
            let ch = cluster(config, &args.target, settings)?;
            let dir = context.project_path(Path::new(MIGRATIONS));
            let migrations = Source::load(&dir)?;
            let lock_db = connect_url(&context.database_url("analytics")?, "dbops rollup").await?;
            let result = match down_to {
                None => rollup_clickhouse::migrate::up(&ch, &lock_db, &migrations).await,
                Some(to) => rollup_clickhouse::migrate::down(&ch, &lock_db, &migrations, to).await,
            };
            let audited = audit(&lock_db, &args.target, down_to.is_some(), &result).await;
            // The migration's own error first: it is what went wrong.
            let steps = result?;
            audited?;
            if args.json {
                let steps: Vec<_> = steps
                    .iter()
                    .map(|s| json!({ "node": s.node, "migration": s.label, "direction": format!("{:?}", s.direction).to_lowercase() }))
                    .collect();
                print_json(&json!({ "target": args.target, "steps": steps }))?;
            } else {
                for s in &steps {
                    println!(
                        "{} {} on {}",
                        format!("{:?}", s.direction).to_lowercase(),
                        s.label,
                        s.node
                    );
                }
                println!(
                    "{} migration step(s) on {} server(s) of cluster {}",
                    steps.len(),
                    ch.nodes(),
                    ch.settings().cluster
                );
            }
            Ok(exit_code::SUCCESS)
        }
    }
}

/// Records a migration run of the target in the audit trail of the
/// analytics database (where its lock is): one entry per step applied or
/// reverted, or one entry with the error of a run that failed (the library
/// does not say which steps it finished before the failure).
async fn audit(
    client: &tokio_postgres::Client,
    target: &str,
    down: bool,
    result: &Result<Vec<rollup_clickhouse::migrate::Step>, rollup_clickhouse::Error>,
) -> Result<(), CliError> {
    let key = crate::context::audit_key()?;
    let actor = crate::guardrails::actor(std::env::var("DBOPS_ACTOR").ok().as_deref());
    let action = if down {
        "migration.rollback"
    } else {
        "migration.apply"
    };
    let entry = |target_id: Option<String>, metadata: serde_json::Value| AuditEntry {
        actor: actor.clone(),
        action: action.to_owned(),
        target_type: "migration".to_owned(),
        target_id,
        metadata,
    };
    let entries: Vec<AuditEntry> = match result {
        Ok(steps) => steps
            .iter()
            .map(|step| {
                let version = step.label.split('_').next().unwrap_or_default();
                entry(
                    Some(version.to_owned()),
                    json!({ "target": target, "engine": "clickhouse", "node": step.node, "migration": step.label, "outcome": "succeeded" }),
                )
            })
            .collect(),
        Err(error) => vec![entry(
            None,
            json!({ "target": target, "engine": "clickhouse", "outcome": "failed", "error": crate::context::error_chain(error) }),
        )],
    };
    for entry in &entries {
        migrate_core::audit::record(client, entry, key.as_ref()).await?;
    }
    Ok(())
}

/// `check` and `reconcile`: every (organization, hour) whose totals on
/// ClickHouse differ from the events; exit 15 when there is one.
async fn differences(
    context: &Context<'_>,
    config: &Config,
    settings: &ClickHouseTarget,
    args: &RollupArgs,
    show: usize,
) -> Result<i32, CliError> {
    let ch = cluster(config, &args.target, settings)?;
    let (source, _) = connect(context).await?;
    let differences = compare(&ch, &source).await?;
    let hour = |at: i64| {
        OffsetDateTime::from_unix_timestamp(at).map_or_else(|_| at.to_string(), timestamp)
    };
    let describe = |p: Option<[i64; 8]>, c: Option<[i64; 8]>| match (p, c) {
        (Some(_), None) => "missing from the rollups".to_owned(),
        (None, _) => "in the rollups but not in the events".to_owned(),
        (Some(p), Some(c)) => FIELDS
            .iter()
            .zip(p.iter().zip(c.iter()))
            .filter(|(_, (p, c))| p != c)
            .map(|(field, (p, c))| format!("{field}: events {p}, rollups {c}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    if args.json {
        let mismatches: Vec<_> = differences
            .iter()
            .map(|d| json!({ "hour_at": hour(d.hour_at), "organization_id": d.organization_id, "mismatch": describe(d.postgres, d.clickhouse) }))
            .collect();
        print_json(&json!({ "target": args.target, "mismatches": mismatches }))?;
    } else {
        for d in differences.iter().take(show) {
            println!(
                "MISMATCH {} organization {}: {}",
                hour(d.hour_at),
                d.organization_id,
                describe(d.postgres, d.clickhouse)
            );
        }
        if differences.len() > show {
            println!("... and {} more (--json for all)", differences.len() - show);
        }
        println!(
            "target {}: {} (organization, hour) bucket(s) differ between the events and ClickHouse",
            args.target,
            differences.len()
        );
    }
    Ok(if differences.is_empty() {
        exit_code::SUCCESS
    } else {
        exit_code::CHECK_FAILED
    })
}

/// `status`: the target's watermark and its most recent runs.
async fn status(context: &Context<'_>, args: &RollupArgs, limit: i64) -> Result<i32, CliError> {
    let (_, bookkeeping) = connect(context).await?;
    let db = |context: &'static str| {
        move |source: tokio_postgres::Error| {
            CliError::ClickHouse(rollup_clickhouse::Error::Postgres {
                context: context.to_owned(),
                source,
            })
        }
    };
    let watermark: Option<OffsetDateTime> = bookkeeping
        .query_opt(
            "SELECT nullif(watermark_at, '-infinity') FROM analytics.rollup_watermarks WHERE source_table = $1",
            &[&rollup_clickhouse::run::WATERMARK],
        )
        .await
        .map_err(db("reading the clickhouse target's watermark"))?
        .and_then(|row| row.get(0));
    let runs = bookkeeping
        .query(
            "SELECT id, status, started_at, duration_ms, hours_covered, days_covered, \
             hourly_rows_written, error_message FROM analytics.rollup_runs \
             WHERE target = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
            &[&rollup_clickhouse::run::TARGET, &limit],
        )
        .await
        .map_err(db("reading the clickhouse target's runs"))?;
    let watermark_text = watermark.map_or_else(|| "not set (no run yet)".to_owned(), timestamp);
    if args.json {
        let runs: Vec<_> = runs
            .iter()
            .map(|r| {
                json!({
                    "id": r.get::<_, i64>(0),
                    "status": r.get::<_, String>(1),
                    "started_at": timestamp(r.get(2)),
                    "duration_seconds": r.get::<_, Option<i64>>(3).map(|ms| ms as f64 / 1000.0),
                    "hours_covered": r.get::<_, i32>(4),
                    "days_covered": r.get::<_, i32>(5),
                    "hourly_rows_written": r.get::<_, i64>(6),
                    "error": r.get::<_, Option<String>>(7),
                })
            })
            .collect();
        print_json(&json!({
            "target": args.target,
            "watermark": watermark.map(timestamp),
            "runs": runs,
        }))?;
    } else {
        println!("target {}: watermark {watermark_text}", args.target);
        println!(
            "{:>6}  {:<9} {:<20} {:>10} {:>6} {:>5} {:>10}",
            "run", "status", "started", "duration", "hours", "days", "rows"
        );
        for r in &runs {
            println!(
                "{:>6}  {:<9} {:<20} {:>10} {:>6} {:>5} {:>10}",
                r.get::<_, i64>(0),
                r.get::<_, String>(1),
                timestamp(r.get(2)).chars().take(19).collect::<String>(),
                r.get::<_, Option<i64>>(3).map_or_else(
                    || "-".to_owned(),
                    |ms| format!("{:.2} s", ms as f64 / 1000.0)
                ),
                r.get::<_, i32>(4),
                r.get::<_, i32>(5),
                r.get::<_, i64>(6),
            );
            if let Some(error) = r.get::<_, Option<String>>(7) {
                println!("        error: {error}");
            }
        }
    }
    Ok(exit_code::SUCCESS)
}

/// A client of the target's cluster, its URLs and password read from the
/// environment variables the configuration names. Messages name the key and
/// the variable, never a value that could hold a secret.
fn cluster(
    config: &Config,
    target: &str,
    settings: &ClickHouseTarget,
) -> Result<ClickHouse, CliError> {
    let file = config.path().display().to_string();
    let key = |key: &str, message: String| {
        CliError::Config(format!("{file}: targets.{target}.{key}: {message}"))
    };
    let (urls, urls_key) = if settings.urls.is_empty() {
        let text = std::env::var(&settings.urls_env).map_err(|_| {
            key(
                "urls_env",
                format!(
                    "the environment variable {} is unset or not UTF-8 (comma-separated URLs, one per shard)",
                    settings.urls_env
                ),
            )
        })?;
        let urls = text
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>();
        (urls, "urls_env")
    } else {
        (settings.urls.clone(), "urls")
    };
    let urls = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            // The parser's message only: the text may hold credentials.
            Url::parse(url).map_err(|e| key(urls_key, format!("URL {} is not a URL: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let password = match &settings.password_env {
        None => None,
        Some(name) => Some(std::env::var(name).map_err(|_| {
            key(
                "password_env",
                format!("the environment variable {name} is unset or not UTF-8"),
            )
        })?),
    };
    ClickHouse::new(Settings {
        urls,
        user: settings.user.clone(),
        password,
        database: settings.database.clone(),
        cluster: settings.cluster.clone(),
    })
    .map_err(|e| match e {
        rollup_clickhouse::Error::InvalidSetting { setting, message } => {
            let setting = if setting == "urls" { urls_key } else { setting };
            key(setting, message)
        }
        other => CliError::ClickHouse(other),
    })
}

/// Connections to the operational database (the events) and to the
/// analytics database (the runs' bookkeeping), which must have the analytics
/// schema.
async fn connect(
    context: &Context<'_>,
) -> Result<(tokio_postgres::Client, tokio_postgres::Client), CliError> {
    let source = connect_url(&context.database_url("operational")?, "dbops rollup").await?;
    let bookkeeping = connect_url(&context.database_url("analytics")?, "dbops rollup").await?;
    let has_schema: bool = bookkeeping
        .query_one(
            "SELECT to_regclass('analytics.rollup_runs') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|source| rollup_clickhouse::Error::Postgres {
            context: "looking for the analytics schema".into(),
            source,
        })?
        .get(0);
    if !has_schema {
        return Err(rollup_engine::Error::SchemaMissing.into());
    }
    Ok((source, bookkeeping))
}
