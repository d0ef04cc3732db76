//! `dbops migrate baseline` and `dbops migrate import`: adopting a database
//! that dbops did not build, by a verified baseline or by importing another
//! tool's migrations and history. See docs/adopting.md.

use std::path::Path;

use migrate_core::{BaselineOptions, BaselineReport, Database, Migrator};
use migrate_import::Tool;

use crate::CliError;
use crate::context::Context;
use crate::exit_code;
use crate::guardrails;
use crate::opt::{BaselineArgs, GuardArgs, TargetArgs, TargetChoice};

/// `dbops migrate baseline --to VERSION`.
pub async fn baseline(
    context: &Context<'_>,
    target: TargetArgs,
    to: i64,
    args: BaselineArgs,
) -> Result<i32, CliError> {
    let name = one_target(&target, "baseline")?;
    let migrator = adopting_migrator(context, name, &target, &args)?;
    let report = migrator.baseline(&options(to, &args, Vec::new())?).await?;
    print_report(&report);
    Ok(exit_code::SUCCESS)
}

/// What `migrate import` reads: `--from`, the folder, `--history-table`.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The tool's name, one of `migrate_import::Tool::name`.
    pub tool: &'a str,
    /// The tool's migrations folder.
    pub dir: &'a Path,
    /// The tool's history table, when not its default.
    pub history_table: Option<&'a str>,
}

/// `dbops migrate import --from TOOL SOURCE_DIR`.
pub async fn import(
    context: &Context<'_>,
    source: Source<'_>,
    target: TargetArgs,
    args: BaselineArgs,
) -> Result<i32, CliError> {
    let source_dir = source.dir;
    let tool = Tool::ALL
        .into_iter()
        .find(|known| known.name() == source.tool)
        .expect("clap accepts only the tools' names");
    let table = source.history_table.unwrap_or(tool.history_table());
    let name = one_target(&target, "import")?;
    let dir = context.migrations_dir(name, &target)?;
    // The policy is checked before anything is written.
    policy_allows(context, &args)?;
    let conversion = migrate_import::convert(tool, source_dir)?;
    let written = conversion.write(&dir)?;
    println!(
        "{name}: {} {} migration(s) written to {} ({} file(s) new, {} already there); mapping in {}",
        conversion.migrations.len(),
        tool.name(),
        dir.display(),
        written.created,
        written.unchanged,
        written.mapping.display()
    );
    let given = match name {
        "analytics" => context.global.analytics_url.is_some(),
        _ => context.global.database_url.is_some(),
    };
    if !given {
        println!(
            "{name}: no database given (--{}): nothing recorded; commit the files, then run the import again with the database to record what {} applied",
            if name == "analytics" {
                "analytics-url"
            } else {
                "database-url"
            },
            tool.name()
        );
        return Ok(exit_code::SUCCESS);
    }
    let client = context
        .connect(name, &format!("dbops migrate import {name}"))
        .await?;
    let history = migrate_import::read_history(tool, &client, source.history_table).await?;
    drop(client);
    let Some(to) = conversion.last_applied(&history)? else {
        println!("{name}: {table} records no applied migration; nothing to record");
        return Ok(exit_code::SUCCESS);
    };
    let migrator = adopting_migrator(context, name, &target, &args)?.with_audit_metadata(
        "import",
        serde_json::json!({ "from": tool.name(), "mapping": tool.mapping_file() }),
    );
    let ignored = vec![if table.contains('.') {
        table.to_string()
    } else {
        format!("public.{table}")
    }];
    let report = migrator.baseline(&options(to, &args, ignored)?).await?;
    print_report(&report);
    Ok(exit_code::SUCCESS)
}

/// What to tell an operator whose `up` refused an unadopted database.
pub fn hint(error: &CliError) -> Option<String> {
    match error {
        CliError::Migrate(migrate_core::Error::NotAdopted { target, .. }) => Some(format!(
            "adopt it with `dbops migrate baseline --target {target} --to VERSION` (VERSION: the newest migration it already has), \
             or `dbops migrate import --target {target} --from TOOL DIR --database-url URL` for another tool's migrations; see docs/adopting.md"
        )),
        _ => None,
    }
}

fn one_target(target: &TargetArgs, command: &str) -> Result<&'static str, CliError> {
    match Context::targets(target.choice(TargetChoice::Operational)) {
        [name] => Ok(name),
        _ => Err(CliError::Config(format!(
            "{command} acts on one target: pass --target operational or --target analytics"
        ))),
    }
}

/// Refuses `--accept-differences` where the environment does not allow overrides.
fn policy_allows(context: &Context<'_>, args: &BaselineArgs) -> Result<(), CliError> {
    let policy = context.config.environment(&args.environment)?;
    let allowed = policy
        .allow_baseline_differences
        .unwrap_or(policy.allow_lint_override);
    if args.accept_differences && !allowed {
        return Err(CliError::Refused(format!(
            "environment {} does not allow --accept-differences (allow_baseline_differences)",
            args.environment
        )));
    }
    Ok(())
}

fn adopting_migrator(
    context: &Context<'_>,
    name: &str,
    target: &TargetArgs,
    args: &BaselineArgs,
) -> Result<Migrator, CliError> {
    policy_allows(context, args)?;
    let actor = guardrails::actor(context.global.actor.as_deref());
    let guard = GuardArgs {
        environment: args.environment.clone(),
        yes: true,
        allow_lint_errors: false,
        run_signature: Vec::new(),
    };
    let migrator = context.changing_migrator(name, target, &actor, &guard)?;
    Ok(if args.accept_differences {
        migrator.with_audit_metadata("accept_differences", true.into())
    } else {
        migrator
    })
}

fn options(
    to: i64,
    args: &BaselineArgs,
    ignore_tables: Vec<String>,
) -> Result<BaselineOptions, CliError> {
    let scratch = args
        .scratch_url
        .as_deref()
        .map(Database::from_url)
        .transpose()?;
    Ok(BaselineOptions {
        to,
        scratch,
        accept_differences: args.accept_differences,
        ignore_tables,
    })
}

fn print_report(report: &BaselineReport) {
    for difference in &report.differences {
        eprintln!(
            "warning: accepted difference: {}",
            migrate_core::describe_difference(difference)
        );
    }
    let verdict = if report.differences.is_empty() {
        "the database matches what they build".to_string()
    } else {
        format!(
            "{} difference(s) accepted (audited)",
            report.differences.len()
        )
    };
    println!(
        "{}: baseline at {}: recorded {} migration(s) as applied; {verdict} (schemas {}, built in {})",
        report.target,
        report.recorded.last().copied().unwrap_or_default(),
        report.recorded.len(),
        report.schemas.join(", "),
        report.scratch
    );
}
