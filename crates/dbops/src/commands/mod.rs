//! Dispatch: one module per command family.

pub mod adopt;
mod audit;
pub mod completions;
mod docs;
mod health;
mod lint;
mod migrate;
mod partitions;
mod rollup;
mod rollup_clickhouse;
mod seed;

use crate::CliError;
use crate::context::Context;
use crate::opt::Command;

/// Runs a parsed command and returns the exit code of a run that did not fail outright.
pub async fn run(context: &Context<'_>, command: Command) -> Result<i32, CliError> {
    match command {
        Command::Migrate(command) => migrate::run(context, command).await,
        Command::Audit(command) => audit::run(context, command).await,
        Command::Health { target, json } => health::run(context, target, json).await,
        Command::Lint(args) => lint::run(context, args).await,
        Command::Docs(command) => docs::run(context, command).await,
        Command::Seed(command) => seed::run(context, command).await,
        Command::Partitions(command) => partitions::run(context, command).await,
        Command::Rollup(command) => rollup::run_command(context, command).await,
        // Answered in main, before the configuration is read.
        Command::Completions { .. } | Command::Man => Ok(crate::exit_code::SUCCESS),
    }
}
