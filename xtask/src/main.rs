//! `cargo xtask`: the project's automation, one module per task.
//!
//! Every task runs other programs (`cargo`, `psql`, `pg_ctl`, `dbops`) with
//! `std::process`; none of them talks to PostgreSQL through a driver.

mod analytics_verify;
mod bench;
mod ci;
mod cmd;
mod docs;
mod fingerprint;
mod flags;
mod measure_window;
mod otlp;
mod pg;
mod smoke;
mod workspace;

use std::process::ExitCode;

use flags::Args;

/// The error type of every task: a message for the person at the terminal.
type Error = Box<dyn std::error::Error>;
type Result<T = (), E = Error> = std::result::Result<T, E>;

const USAGE: &str = "\
cargo xtask <TASK> [OPTIONS]

Tasks:
  pg [--durable] [--stop]   Make a PostgreSQL server available and print its URL:
                            DB_URL when it is set and answers, otherwise a throwaway
                            cluster under target/pg/ (fsync off unless --durable).
                            --stop stops that throwaway cluster.
  smoke [--env NAME] [--keep]
                            In a fresh database: migrate up, down to 0, up again and
                            compare catalog fingerprints, then the registered steps.
  ci                        fmt, clippy, actionlint, all tests and smoke against
                            PostgreSQL: what .ci/run and the GitHub workflow run.
  bench [NAME] [--rounds N] [--dbops PATH]
                            Run a benchmark with the release build of dbops, or the
                            given binary (no NAME: list the benchmarks).
  docs [--check]            Regenerate generated docs from a freshly migrated database;
                            --check fails when that changes a file.
  analytics-verify [--events N] [--keep]
                            Seed events with late arrivals, run the rollups on both
                            targets, assertions, reconciliation, query timings.
  measure-window [--events N] [--rounds N] [--keep]
                            On seeded databases: each migration rolled back and applied
                            again against the 10-minute window, and the longest request
                            stall while the newest one is rolled back under load.
";

fn main() -> ExitCode {
    let mut args = Args::from_env();
    match run(&mut args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &mut Args) -> Result {
    let Some(task) = args.positional() else {
        print!("{USAGE}");
        return Ok(());
    };
    match task.as_str() {
        "pg" => pg::task(args),
        "smoke" => smoke::task(args),
        "ci" => ci::task(args),
        "bench" => bench::task(args),
        "docs" => docs::task(args),
        "analytics-verify" => analytics_verify::task(args),
        "measure-window" => measure_window::task(args),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n\n{USAGE}").into()),
    }
}
