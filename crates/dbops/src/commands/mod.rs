//! Dispatch: one module per command family.

mod docs;
mod migrate;

use crate::CliError;
use crate::context::Context;
use crate::opt::{Command, Opt};

/// Runs a parsed command line and returns the exit code of a run that did not fail outright.
pub async fn run(opt: Opt) -> Result<i32, CliError> {
    let context = Context::load(&opt.global)?;
    match opt.command {
        Command::Migrate(command) => migrate::run(&context, command).await,
        Command::Docs(command) => docs::run(&context, command).await,
    }
}
