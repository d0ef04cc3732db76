//! `cargo xtask bench [NAME] [--rounds N] [--dbops PATH]`: benchmarks of
//! whole commands against a durable PostgreSQL, with the release build of
//! `dbops` (or the binary given with `--dbops`, to compare builds).
//!
//! The machine is noisy, so every benchmark times its command side by side
//! with a baseline in the same run ([`paired::paired`]) and reports the
//! median of the per-round ratios; `fleet` and `crash` count outcomes
//! instead. To add a benchmark, write `xtask/src/bench/<yours>.rs` with a
//! `pub fn run(ctx: &Context) -> Result`, declare it below with
//! `mod <yours>;` and add one line to [`BENCHES`] (with the count flags of
//! its own, such as `--runners`, that it reads with [`Context::count`]).

mod apply;
mod apply_realistic;
mod cases;
mod crash;
pub mod fixture;
mod fleet;
mod history;
mod large_file;
mod lint;
pub mod paired;
mod realistic;
mod rollup;
mod rollup_clickhouse;
mod seed;
mod status;
mod tls;

use std::path::PathBuf;
use std::process::Command;

use url::Url;

use crate::flags::Args;
use crate::pg::{self, Durability, psql};
use crate::workspace::{self, Profile};
use crate::{Result, cmd};

/// One benchmark, run by name.
#[derive(Debug)]
pub struct Bench {
    name: &'static str,
    about: &'static str,
    run: fn(&Context) -> Result,
    /// Count flags of its own, such as `--runners`.
    flags: &'static [&'static str],
}

impl Bench {
    const fn new(name: &'static str, about: &'static str, run: fn(&Context) -> Result) -> Bench {
        Bench {
            name,
            about,
            run,
            flags: &[],
        }
    }

    const fn with_flags(self, flags: &'static [&'static str]) -> Bench {
        Bench { flags, ..self }
    }
}

/// The benchmarks, as `cargo xtask bench` lists them.
const BENCHES: &[Bench] = &[
    Bench::new("apply", "300 migrations up and down", apply::run),
    Bench::new(
        "apply-realistic",
        "a realistic history of 320 migrations up and down",
        apply_realistic::run,
    )
    .with_flags(&["--rows"]),
    Bench::new(
        "history",
        "Lemmy's 233 real migrations (crates.io) up, and its newest 75 down",
        history::run,
    ),
    Bench::new(
        "large-file",
        "one 50 MB migration: time and peak memory",
        large_file::run,
    ),
    Bench::new(
        "fleet",
        "N dbops migrate up (then down --steps 1) at once on one database",
        fleet::run,
    )
    .with_flags(&["--runners"]),
    Bench::new(
        "crash",
        "a server crash right after migrate up exits 0: what is lost",
        crash::run,
    )
    .with_flags(&["--trials"]),
    Bench::new("tls", "300 migrations up over TLS vs plain TCP", tls::run),
    Bench::new("status", "status of 1,000 migrations", status::run),
    Bench::new(
        "seed",
        "seeding 10M usage events vs generate_series",
        seed::run,
    ),
    Bench::new(
        "lint",
        "dbops lint on 300 and 3,000 realistic files vs squawk 2.66; --db on 500 tables",
        lint::run,
    ),
    Bench::new(
        "rollup",
        "rollups of 10M events: full vs GROUP BY, incremental at 2 history sizes, query P95",
        rollup::run,
    ),
    Bench::new(
        "rollup-clickhouse",
        "rollups of 10M events on the 2-shard ClickHouse cluster vs local: full, incremental, queries, reconcile",
        rollup_clickhouse::run,
    ),
];

/// What every benchmark gets.
#[derive(Debug)]
pub struct Context {
    /// A superuser URL of the server to benchmark against.
    pub server: Url,
    /// The release build of `dbops`.
    pub dbops: PathBuf,
    /// `--rounds`, when given.
    rounds: Option<usize>,
    /// The benchmark's own count flags that were given, such as `--runners`.
    counts: Vec<(&'static str, usize)>,
    /// A folder of the benchmark's own under `target/bench/`, for fixtures.
    pub scratch: PathBuf,
}

impl Context {
    /// The number of timed rounds: `--rounds`, or the benchmark's default.
    pub fn rounds(&self, default: usize) -> usize {
        self.rounds.unwrap_or(default)
    }

    /// Both sides must have done the same work: after the last round,
    /// databases `psql_db` and `dbops_db` hold the same objects outside
    /// dbops's own schema. Tells how many.
    pub fn same_schema(&self, psql_db: &str, dbops_db: &str) -> Result<String> {
        let objects = |name: &str| -> Result<Vec<String>> {
            let db = psql::database_url(&self.server, name);
            Ok(crate::fingerprint::take(&db)?.outside(&["dbops"]))
        };
        let (by_psql, by_dbops) = (objects(psql_db)?, objects(dbops_db)?);
        if by_psql != by_dbops {
            let only = |a: &[String], b: &[String]| -> Vec<String> {
                a.iter()
                    .filter(|x| !b.contains(x))
                    .take(10)
                    .cloned()
                    .collect()
            };
            return Err(format!(
                "psql and dbops left different schemas:\nonly psql's: {:?}\nonly dbops's: {:?}",
                only(&by_psql, &by_dbops),
                only(&by_dbops, &by_psql)
            )
            .into());
        }
        Ok(format!("{} objects", by_psql.len()))
    }

    /// One of the benchmark's own count flags (see [`Bench`]), or `default`.
    pub fn count(&self, flag: &str, default: usize) -> usize {
        self.counts
            .iter()
            .find(|(given, _)| *given == flag)
            .map_or(default, |(_, count)| *count)
    }

    /// `dbops` against database `db`, run in the workspace root.
    pub fn dbops(&self, db: &Url) -> Command {
        let mut dbops = Command::new(&self.dbops);
        dbops
            .current_dir(workspace::root())
            .env(pg::URL_ENV, db.as_str())
            .env("ANALYTICS_URL", db.as_str());
        dbops
    }

    /// Drops and creates database `name`, then checkpoints, so that the
    /// timed command that follows does not pay for earlier writes.
    pub fn fresh_database(&self, name: &str) -> Result<Url> {
        let db = psql::recreate_database(&self.server, name)?;
        // CHECKPOINT needs a superuser (or pg_checkpoint); without it the
        // figures are a little noisier, not wrong.
        let _ = cmd::output(psql::psql(&self.server).args(["-c", "CHECKPOINT"]));
        Ok(db)
    }
}

/// `cargo xtask bench [NAME] [--rounds N] [--dbops PATH]`.
pub fn task(args: &mut Args) -> Result {
    let rounds = args.count("--rounds")?;
    let dbops = args.value("--dbops")?.map(PathBuf::from);
    // Every benchmark's own flags are taken before the name, so that their
    // values are not taken for it.
    let mut counts = Vec::new();
    for flag in BENCHES.iter().flat_map(|bench| bench.flags) {
        if let Some(count) = args.count(flag)? {
            counts.push((*flag, count));
        }
    }
    let name = args.positional();
    args.finish()?;
    let Some(name) = name else {
        println!("benchmarks (cargo xtask bench NAME [--rounds N] [--dbops PATH]):");
        for bench in BENCHES {
            let flags: String = bench.flags.iter().map(|f| format!(" [{f} N]")).collect();
            println!("  {:<16} {}{flags}", bench.name, bench.about);
        }
        return Ok(());
    };
    let Some(bench) = BENCHES.iter().find(|bench| bench.name == name) else {
        let names: Vec<_> = BENCHES.iter().map(|bench| bench.name).collect();
        return Err(format!("no benchmark `{name}`; there are: {}", names.join(", ")).into());
    };
    if let Some((flag, _)) = counts.iter().find(|(flag, _)| !bench.flags.contains(flag)) {
        return Err(format!("benchmark `{name}` does not take {flag}").into());
    }
    let dbops = match dbops {
        Some(path) if path.is_file() => path,
        Some(path) => return Err(format!("--dbops {}: no such file", path.display()).into()),
        None => workspace::build_dbops(Profile::Release)?,
    };
    let server = pg::ensure_with(Durability::Durable)?;
    let scratch = workspace::target_dir().join("bench").join(bench.name);
    let ctx = Context {
        server: server.url.clone(),
        dbops,
        rounds,
        counts,
        scratch,
    };
    let ran = std::fs::create_dir_all(&ctx.scratch)
        .map_err(|e| format!("creating {}: {e}", ctx.scratch.display()).into())
        .and_then(|()| {
            println!("{}", machine(&ctx.server)?);
            (bench.run)(&ctx)
        });
    let stopped = server.stop_if_started();
    ran?;
    stopped
}

/// `met` or `NOT met`, for the goal lines of the reports.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// One line about where the figures come from.
fn machine(server: &Url) -> Result<String> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let settings = psql::query(
        server,
        "SELECT current_setting('server_version') || ', fsync ' || current_setting('fsync') \
         || ', synchronous_commit ' || current_setting('synchronous_commit')",
    )?;
    Ok(format!(
        "machine: {cores} cores; PostgreSQL {} on {}",
        settings.trim(),
        server.host_str().unwrap_or("a local socket")
    ))
}
