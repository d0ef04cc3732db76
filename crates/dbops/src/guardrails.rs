//! What stands between an operator and a schema change: environment policy,
//! approvals of the exact plan, lint of pending migrations, and confirmation.

use std::io::{BufRead, IsTerminal, Write};

use migrate_core::{Migrator, Plan};

use crate::CliError;
use crate::config::EnvironmentPolicy;
use crate::opt::GuardArgs;

/// The actor: `--actor`, then `DBOPS_ACTOR` (both through clap), then the OS user.
pub fn actor(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Checks a non-empty plan against the environment's policy before it runs.
///
/// `warnings` are printed before the confirmation question (for example the
/// tables a rollback drops).
pub async fn check(
    migrator: &Migrator,
    plan: &Plan,
    policy: &EnvironmentPolicy,
    guard: &GuardArgs,
    actor: &str,
    warnings: &[String],
) -> Result<(), CliError> {
    if policy.approvals > 0 {
        let approvals = migrator.approvals(&guard.environment).await?;
        if let Err(reason) =
            migrate_core::approvals::check(&approvals, &plan.hash, actor, policy.approvals)
        {
            return Err(CliError::Refused(format!(
                "environment {}: {reason}",
                guard.environment
            )));
        }
    }
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    if policy.confirm && !guard.yes {
        confirm(plan, &guard.environment)?;
    }
    Ok(())
}

/// Asks on the terminal; refuses without one.
fn confirm(plan: &Plan, environment: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Refused(format!(
            "environment {environment} asks for confirmation and standard input is not a terminal: pass --yes"
        )));
    }
    eprint!(
        "{} {} migration(s) on target {} in {environment} (plan {})? [y/N] ",
        if plan.direction == migrate_core::Direction::Up {
            "Apply"
        } else {
            "Roll back"
        },
        plan.steps.len(),
        plan.target,
        &plan.hash[..12]
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|source| CliError::Io {
            context: "reading the confirmation".into(),
            source,
        })?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(CliError::Refused("not confirmed".into()))
    }
}
