//! `dbops audit verify` and `dbops audit head`: check the audit chains of
//! each target's database, and print their heads for keeping outside it.

use std::collections::BTreeSet;

use migrate_core::audit::{PublishedHead, VerifyOptions};

use crate::CliError;
use crate::context::{self, Context};
use crate::exit_code;
use crate::opt::{AuditCommand, TargetChoice};

/// Runs one `audit` subcommand.
pub async fn run(context: &Context<'_>, command: AuditCommand) -> Result<i32, CliError> {
    match command {
        AuditCommand::Verify {
            target,
            json,
            expect_head,
            heads,
        } => verify(context, target, json, expect_head, heads).await,
        AuditCommand::Head { target } => {
            for (name, client) in databases(context, target, "dbops audit head").await? {
                for head in migrate_core::audit::heads(&client).await? {
                    println!("{name}: {} {head}", head.chain);
                }
            }
            Ok(exit_code::SUCCESS)
        }
    }
}

/// One connection per distinct database among the targets, named by the
/// first target that uses it: targets that share a database share its chains.
async fn databases(
    context: &Context<'_>,
    target: TargetChoice,
    application_name: &str,
) -> Result<Vec<(&'static str, tokio_postgres::Client)>, CliError> {
    let mut seen = BTreeSet::new();
    let mut databases = Vec::new();
    for name in Context::targets(target) {
        if seen.insert(context.database_url(name)?) {
            databases.push((*name, context.connect(name, application_name).await?));
        }
    }
    Ok(databases)
}

async fn verify(
    context: &Context<'_>,
    target: TargetChoice,
    json: bool,
    mut published: Vec<PublishedHead>,
    heads_file: Option<std::path::PathBuf>,
) -> Result<i32, CliError> {
    if let Some(path) = heads_file {
        let text = std::fs::read_to_string(&path).map_err(|source| CliError::Io {
            context: format!("reading the published heads {}", path.display()),
            source,
        })?;
        let found = PublishedHead::find_all(&text);
        if found.is_empty() {
            return Err(CliError::Config(format!(
                "{}: no published head (SEQ:HASH) in the file",
                path.display()
            )));
        }
        published.extend(found);
    }
    let key = context::audit_key()?;
    let databases = databases(context, target, "dbops audit verify").await?;
    if !published.is_empty() && databases.len() > 1 {
        return Err(CliError::Config(
            "the targets' databases differ: name the target whose heads these are with --target operational or --target analytics".into(),
        ));
    }
    let options = VerifyOptions {
        key: key.as_ref(),
        published: &published,
    };
    let mut broken = Vec::new();
    let mut reports = Vec::new();
    for (name, client) in databases {
        let verification = migrate_core::audit::verify(&client, options).await?;
        if !json {
            println!(
                "{name}: {} chained audit entries checked, {} break(s)",
                verification.entries,
                verification.breaks.len()
            );
            match &key {
                Some(key) => println!(
                    "  key {}: {} entries authenticated, {} unauthenticated (written before the key was in use), {} by an earlier key (not checked)",
                    key.id(),
                    verification.authenticated,
                    verification.unauthenticated,
                    verification.other_key
                ),
                None => println!(
                    "  no {}: {} entries checked by their hashes only, unauthenticated",
                    context::AUDIT_KEY_VARIABLE,
                    verification.entries
                ),
            }
            if !published.is_empty() {
                println!(
                    "  published heads: {} of {} still in the chain",
                    verification.heads_confirmed,
                    published.len()
                );
            }
            for head in &verification.heads {
                println!("  head {} {head}", head.chain);
            }
            for b in &verification.breaks {
                println!("  {}", describe(b));
            }
        }
        broken.extend(
            verification
                .breaks
                .iter()
                .map(|b| format!("{name}: {}", describe(b))),
        );
        reports.push(serde_json::json!({ "target": name, "verification": verification }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    if broken.is_empty() {
        Ok(exit_code::SUCCESS)
    } else {
        Err(CliError::AuditTampered(broken.join("; ")))
    }
}

fn describe(b: &migrate_core::audit::Break) -> String {
    match b.id {
        Some(id) => format!("{} id {id}: {}", b.table, b.problem),
        None => format!("{}: {}", b.table, b.problem),
    }
}
