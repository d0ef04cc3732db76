//! Smoke step: the project's migrations lint clean, as files and as the live
//! schema they built.

use super::Context;
use crate::Result;

pub fn run(ctx: &Context) -> Result {
    ctx.run_dbops(&["lint"])?;
    ctx.run_dbops(&["lint", "--db"])
}
