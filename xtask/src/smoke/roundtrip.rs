//! Smoke step: every migration applies, rolls back completely and applies
//! again to the very same schema; `status` and `plan` run on the way.

use super::Context;
use crate::{Result, fingerprint};

/// Schemas that may hold objects after rolling everything back: dbops's own
/// bookkeeping (history and run log).
const BOOKKEEPING_SCHEMAS: &[&str] = &["dbops"];

pub fn run(ctx: &Context) -> Result {
    let status = ["migrate", "status", "--target", "all"];
    let up = ["migrate", "up", "--target", "all"];
    ctx.run_dbops(&status)?;
    ctx.run_dbops(&["migrate", "plan", "--target", "all"])?;
    ctx.run_dbops_in_env(&up)?;
    ctx.run_dbops(&status)?;
    let first = fingerprint::take(&ctx.db)?;
    eprintln!("smoke: applied: {}", first.summary());

    ctx.run_dbops_in_env(&["migrate", "down", "--target", "all", "--to", "0"])?;
    let leftovers = fingerprint::take(&ctx.db)?.outside(BOOKKEEPING_SCHEMAS);
    if !leftovers.is_empty() {
        return Err(format!(
            "rolling every migration back left {} objects behind:\n  {}",
            leftovers.len(),
            leftovers.join("\n  ")
        )
        .into());
    }

    ctx.run_dbops_in_env(&up)?;
    let second = fingerprint::take(&ctx.db)?;
    let diff = first.diff(&second);
    if !diff.is_empty() {
        return Err(format!(
            "the schema after applying again differs from the first apply \
             (- only after the first, + only after the second):\n  {}",
            diff.join("\n  ")
        )
        .into());
    }
    eprintln!("smoke: applied again: same catalog fingerprint");
    Ok(())
}
