//! What stands between an operator and a schema change: environment policy,
//! approvals of the exact plan, lint of pending migrations, and confirmation.

use std::io::{BufRead, IsTerminal, Write};

use std::path::Path;

use migrate_core::approvals::{self, Subject};
use migrate_core::signers::{APPROVAL_NAMESPACE, AllowedSigners, RUN_NAMESPACE};
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
/// Where the policy requires approvals, the actor proves who they are with
/// a signature of the run (`--run-signature`), and the approvals are
/// verified against the policy's allowed signers; see
/// `migrate_core::approvals`. `warnings` are printed before the confirmation
/// question (for example the tables a rollback drops).
pub async fn check(
    migrator: &Migrator,
    plan: &Plan,
    policy: &EnvironmentPolicy,
    guard: &GuardArgs,
    actor: &str,
    warnings: &[String],
) -> Result<(), CliError> {
    if policy.approvals > 0 {
        let environment = &guard.environment;
        let path = policy.allowed_signers.as_deref().ok_or_else(|| {
            CliError::Config(format!(
                "environment {environment} requires approvals but names no allowed_signers"
            ))
        })?;
        let signers = AllowedSigners::load(path)?;
        let subject = Subject {
            target: migrator.target(),
            environment,
            direction: plan.direction,
            plan_hash: &plan.hash,
        };
        let signatures = guard
            .run_signature
            .iter()
            .map(|path| read_signature(path))
            .collect::<Result<Vec<_>, _>>()?;
        let signer =
            approvals::verify_actor(&signers, &subject, &signatures).map_err(|reason| {
                CliError::Refused(format!(
                    "environment {environment}: {reason}; {}",
                    how_to_sign(&subject, RUN_NAMESPACE)
                ))
            })?;
        if !signer.principals.iter().any(|p| p == actor) {
            return Err(CliError::Refused(format!(
                "environment {environment}: the run is signed by {} (key {}), not by the actor {actor:?}: pass --actor with your own principal",
                signer.names(),
                signer.fingerprint
            )));
        }
        let recorded = migrator.approvals(environment).await?;
        let counted = approvals::check(&recorded, &signers, &subject, &signer, policy.approvals)
            .map_err(|reason| {
                CliError::Refused(format!(
                    "environment {environment}: {reason}; {}",
                    how_to_sign(&subject, APPROVAL_NAMESPACE)
                ))
            })?;
        let names: Vec<String> = counted.iter().map(|c| c.names()).collect();
        tracing::info!(
            environment = environment.as_str(),
            plan = plan.hash.as_str(),
            actor = signer.names(),
            actor_key = signer.fingerprint.as_str(),
            approvers = names.join("; "),
            "approvals verified"
        );
    }
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    if policy.confirm && !guard.yes {
        confirm(plan, &guard.environment)?;
    }
    Ok(())
}

/// How to make the signature an environment asks for, as commands to copy.
pub fn how_to_sign(subject: &Subject<'_>, namespace: &str) -> String {
    let approve = format!(
        "dbops migrate approve --target {} --env {} --direction {} --plan {}",
        subject.target,
        subject.environment,
        subject.direction.as_str(),
        subject.plan_hash
    );
    let sign =
        format!("{approve} --message | ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n {namespace}");
    if namespace == RUN_NAMESPACE {
        format!(
            "to sign the run with your own key: `{sign} > run.sig`, then pass --run-signature run.sig"
        )
    } else {
        format!(
            "to approve, each approver other than the actor signs the plan with their own key: `{sign} > approval.sig`, then `{approve} --signature approval.sig`"
        )
    }
}

/// An armored signature from a file, or from standard input for `-`.
pub fn read_signature(path: &Path) -> Result<String, CliError> {
    let read = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|source| CliError::Io {
        context: format!("reading the signature {}", path.display()),
        source,
    })
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
