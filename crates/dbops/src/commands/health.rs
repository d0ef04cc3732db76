//! `dbops health`: a readiness probe. Exit 0 only when every target's database
//! answers and its schema is current: nothing pending, partial or drifted,
//! and no append-only trigger of the audit tables missing or disabled.
//! Usage events quarantined by the rollups are reported as warnings: the
//! schema is ready, but the rollups leave those events out.

use serde::Serialize;

use crate::CliError;
use crate::commands::migrate::statuses;
use crate::context::{Context, connect_url};
use crate::exit_code;
use crate::opt::{TargetArgs, TargetChoice};

#[derive(Debug, Serialize)]
struct Health {
    ready: bool,
    problems: Vec<String>,
    warnings: Vec<String>,
    targets: Vec<migrate_core::Status>,
}

/// Probes the targets and prints the verdict.
pub async fn run(context: &Context<'_>, target: TargetChoice, json: bool) -> Result<i32, CliError> {
    let args = TargetArgs {
        target: Some(target),
        dir: None,
        lock_wait: None,
        lock_timeout: None,
        statement_timeout: None,
    };
    let targets = statuses(context, &args).await?;
    let mut problems = Vec::new();
    for status in &targets {
        let name = &status.target;
        if !status.pending.is_empty() {
            problems.push(format!(
                "{name}: {} migration(s) pending",
                status.pending.len()
            ));
        }
        for partial in &status.partial {
            problems.push(format!("{name}: partial {partial}"));
        }
        for drifted in &status.drifted {
            problems.push(format!("{name}: drifted {drifted}"));
        }
        if let Some(last) = status
            .last_outcome
            .as_ref()
            .filter(|last| last.outcome == "failed")
        {
            problems.push(format!(
                "{name}: the last run failed on {}_{}",
                last.version, last.name
            ));
        }
    }
    // Append-only triggers of the audit tables switched off: the audit
    // trail can be rewritten without a trace in the table.
    let mut seen = std::collections::BTreeSet::new();
    for status in &targets {
        let name = &status.target;
        if !seen.insert(context.database_url(name)?) {
            continue;
        }
        let client = context.connect(name, "dbops health").await?;
        for problem in migrate_core::audit::trigger_problems(&client).await? {
            problems.push(format!("{name}: {}: {}", problem.table, problem.problem));
        }
    }
    let mut warnings = Vec::new();
    if let Some(analytics) = targets
        .iter()
        .find(|status| status.target == "analytics" && status.pending.is_empty())
    {
        let client = connect_url(&context.database_url(&analytics.target)?, "dbops health").await?;
        let quarantined = rollup_engine::status::quarantined_events(&client).await?;
        if quarantined > 0 {
            warnings.push(format!(
                "analytics: {quarantined} usage event(s) quarantined by the rollups and left out of them (`dbops rollup check` lists them)"
            ));
        }
    }
    let health = Health {
        ready: problems.is_empty(),
        problems,
        warnings,
        targets,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&health)?);
    } else {
        if health.ready {
            println!("ready");
        }
        for problem in &health.problems {
            println!("not ready: {problem}");
        }
        for warning in &health.warnings {
            println!("warning: {warning}");
        }
    }
    if health.ready {
        Ok(exit_code::SUCCESS)
    } else {
        Ok(exit_code::UNHEALTHY)
    }
}
