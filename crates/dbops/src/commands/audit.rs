//! `dbops audit verify`: recompute the audit hash chains of each target's database.

use std::collections::BTreeSet;

use crate::CliError;
use crate::context::Context;
use crate::exit_code;
use crate::opt::AuditCommand;

/// Runs one `audit` subcommand.
pub async fn run(context: &Context<'_>, command: AuditCommand) -> Result<i32, CliError> {
    let AuditCommand::Verify { target, json } = command;
    let mut seen = BTreeSet::new();
    let mut broken = Vec::new();
    let mut reports = Vec::new();
    for name in Context::targets(target) {
        let url = context.database_url(name)?;
        // Targets that share a database share its chain: check it once.
        if !seen.insert(url.clone()) {
            continue;
        }
        let client = context.connect(name, "dbops audit verify").await?;
        let verification = migrate_core::audit::verify(&client).await?;
        if !json {
            println!(
                "{name}: {} chained audit entries checked, {} break(s)",
                verification.entries,
                verification.breaks.len()
            );
            for b in &verification.breaks {
                println!("  {} id {}: {}", b.table, b.id, b.problem);
            }
        }
        broken.extend(
            verification
                .breaks
                .iter()
                .map(|b| format!("{name}: {} id {}: {}", b.table, b.id, b.problem)),
        );
        reports.push(serde_json::json!({ "target": name, "entries": verification.entries, "breaks": verification.breaks }));
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
