//! The `dbops` binary: parse the command line, set up logging, dispatch, map errors to exit codes.

mod commands;
mod config;
mod context;
mod exit_code;
mod guardrails;
mod opt;
mod telemetry;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// Every way a command can fail; `exit_code::for_error` maps each to its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the migration engine.
    #[error(transparent)]
    Migrate(#[from] migrate_core::Error),
    /// A setting, flag or environment variable is invalid.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a file.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A guardrail refused the run: approvals, confirmation, environment policy.
    #[error("refused: {0}")]
    Refused(String),
    /// Linting found error-level violations.
    #[error("{0}")]
    LintErrors(String),
    /// The health probe found a target not ready.
    #[error("not ready: {0}")]
    Unhealthy(String),
    /// The audit chain is broken.
    #[error("the audit trail was tampered with: {0}")]
    AuditTampered(String),
    /// Writing JSON output.
    #[error("writing JSON output")]
    Json(#[from] serde_json::Error),
    /// From docs generation and validation.
    #[error(transparent)]
    Docs(#[from] docgen::Error),
    /// From the seeder.
    #[error(transparent)]
    Seed(#[from] seeder::Error),
    /// From partition maintenance.
    #[error(transparent)]
    Partitions(#[from] partitions::Error),
    /// From the rollup engine.
    #[error(transparent)]
    Rollup(#[from] rollup_engine::Error),
    /// From the ClickHouse rollup target.
    #[error(transparent)]
    ClickHouse(#[from] rollup_clickhouse::Error),
    #[error(transparent)]
    Import(#[from] migrate_import::Error),
}

fn main() -> ExitCode {
    let cli = opt::Opt::command().after_long_help(exit_code::help_text());
    let matches = cli.clone().get_matches();
    let opt = opt::Opt::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match opt.command {
        opt::Command::Completions { shell } => commands::completions::completions(shell, cli),
        opt::Command::Man => commands::completions::man(cli),
        command => run(&opt.global, command),
    };
    let code = match result {
        Ok(code) => code,
        Err(error) => {
            let code = exit_code::for_error(&error);
            print_error(&error, code, opt.global.log_format);
            code
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The final error on standard error: `error: ...` with its causes, or with
/// `--log-format json` one JSON object (`level`, `message`, `exit_code`), as
/// the log lines before it are.
fn print_error(error: &CliError, code: i32, format: opt::LogFormat) {
    let message = context::error_chain(error);
    match format {
        opt::LogFormat::Json => eprintln!(
            "{}",
            serde_json::json!({ "level": "ERROR", "message": message, "exit_code": code })
        ),
        _ => eprintln!("error: {message}"),
    }
    if let Some(hint) = commands::adopt::hint(error) {
        eprintln!("hint: {hint}");
    }
}

/// Runs a command that reads the configuration, with telemetry installed.
fn run(global: &opt::Global, command: opt::Command) -> Result<i32, CliError> {
    let runtime = runtime_for(&command);
    // The gRPC exporter needs the runtime when it is built.
    let _entered = runtime.enter();
    context::Context::load(global).and_then(|context| {
        let telemetry =
            telemetry::init(global, &context.config.telemetry).map_err(CliError::Config)?;
        runtime.block_on(async {
            let result = commands::run(&context, command).await;
            // Flush the exporters while the runtime runs: on this one-thread
            // runtime the gRPC exporter's connection only moves inside
            // `block_on`, and the flush blocks.
            let _ = tokio::task::spawn_blocking(move || drop(telemetry)).await;
            result
        })
    })
}

/// The runtime a command runs on. Seeding generates rows on several loader
/// tasks at once and wants every core. Everything else is a conversation
/// with the database, where one thread answers fastest: the engine and its
/// connection's task wake each other on every round trip, and across threads
/// each wake-up is a context switch. Blocking work (linting) still goes to
/// the blocking pool.
fn runtime_for(command: &opt::Command) -> tokio::runtime::Runtime {
    let mut builder = match command {
        opt::Command::Seed(_) => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    builder.enable_all().build().expect("a Tokio runtime")
}
