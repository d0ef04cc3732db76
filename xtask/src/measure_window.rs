//! `cargo xtask measure-window [--events N] [--rounds N] [--keep]`: how long each migration
//! takes on a seeded database against the 10-minute maintenance window, and
//! how long requests stall while the newest migration is rolled back and
//! re-applied under load.
//!
//! Both parts run the release build of `dbops` against a durable server, on
//! databases seeded with `dbops seed operational` and `dbops seed analytics
//! --events N` (default 1,000,000 usage events).
//!
//! 1. Windows: for every migration, newest first (analytics, then
//!    operational), `dbops migrate down --steps 1` with the seeded data in
//!    place, then `dbops migrate up --to VERSION` with the older tables still
//!    seeded, then down again to move on. Each command's wall time is
//!    reported against the window: it is what an operator waits for.
//! 2. Rollback downtime: the `steady_load` example of `migrate-hooks` (one
//!    connection per request kind, short reads and writes against
//!    organizations, users, api_keys and usage_events in a loop) runs while
//!    the newest operational migration is rolled back and re-applied by one
//!    `dbops migrate redo`; it
//!    reports, per request kind, the longest time from the start of a request
//!    until one next succeeded. The same load without any migration, for as
//!    long, is the baseline of the same run. `--rounds` times (default 3,
//!    the events seeded again each time), reporting the median round. Bar:
//!    under one minute; goal: under 1 s.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use url::Url;

use crate::flags::Args;
use crate::pg::{self, Durability, psql};
use crate::workspace::{self, Profile};
use crate::{Result, cmd};

const WINDOW: Duration = Duration::from_secs(10 * 60);
const DOWNTIME_BAR: Duration = Duration::from_secs(60);
const DOWNTIME_GOAL: Duration = Duration::from_secs(1);
const DEFAULT_EVENTS: usize = 1_000_000;
const DEFAULT_ROUNDS: usize = 3;
/// The load runs this long before the rollback and after the re-apply.
const SETTLE: Duration = Duration::from_secs(2);
/// A throwaway pepper: the databases are dropped afterwards.
const PEPPER: &str = "measure-window pepper: not a secret, only for throwaway databases";
/// The targets in apply order.
const TARGETS: [&str; 2] = ["operational", "analytics"];

const WINDOWS_DB: &str = "xtask_measure_window";
const DOWNTIME_DB: &str = "xtask_measure_window_downtime";

/// What every part gets.
struct Context {
    server: Url,
    dbops: PathBuf,
    steady_load: PathBuf,
    events: usize,
}

impl Context {
    /// `dbops` against database `db`, run in the workspace root.
    fn dbops(&self, db: &Url) -> Command {
        let mut dbops = Command::new(&self.dbops);
        dbops
            .current_dir(workspace::root())
            .env(pg::URL_ENV, db.as_str())
            .env("ANALYTICS_URL", db.as_str())
            .env("DBOPS_API_KEY_PEPPER", PEPPER);
        dbops
    }

    /// Runs `dbops ARGS` quietly and returns its wall time.
    fn timed(&self, db: &Url, args: &[&str]) -> Result<Duration> {
        let mut dbops = self.dbops(db);
        dbops.args(args);
        eprintln!("$ dbops {}", args.join(" "));
        let started = Instant::now();
        cmd::output(&mut dbops)?;
        Ok(started.elapsed())
    }

    /// `dbops migrate redo` on the operational target; returns what it printed.
    fn redo(&self, db: &Url) -> Result<String> {
        let args = ["migrate", "redo", "--target", "operational"];
        eprintln!("$ dbops {}", args.join(" "));
        cmd::read(self.dbops(db).args(args))
    }

    /// A fresh database with every migration applied and both seeds loaded.
    fn seeded_database(&self, name: &str) -> Result<Url> {
        let db = psql::recreate_database(&self.server, name)?;
        self.timed(&db, &["migrate", "up", "--target", "all"])?;
        self.timed(&db, &["seed", "operational"])?;
        let seeding = self.timed(
            &db,
            &["seed", "analytics", "--events", &self.events.to_string()],
        )?;
        eprintln!(
            "measure-window: seeded {} events in {seeding:.1?}",
            self.events
        );
        cmd::output(psql::psql(&db).args(["-c", "VACUUM ANALYZE"]))?;
        Ok(db)
    }
}

/// `cargo xtask measure-window [--events N] [--rounds N] [--keep]`.
pub fn task(args: &mut Args) -> Result {
    let events = args.count("--events")?.unwrap_or(DEFAULT_EVENTS);
    let rounds = args.count("--rounds")?.unwrap_or(DEFAULT_ROUNDS);
    let keep = args.flag("--keep");
    args.finish()?;
    let dbops = workspace::build_dbops(Profile::Release)?;
    let steady_load = build_steady_load()?;
    let server = pg::ensure_with(Durability::Durable)?;
    let ctx = Context {
        server: server.url.clone(),
        dbops,
        steady_load,
        events,
    };
    let ran = run(&ctx, rounds, keep);
    let stopped = server.stop_if_started();
    ran?;
    stopped
}

fn run(ctx: &Context, rounds: usize, keep: bool) -> Result {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let version = psql::server_version(&ctx.server)?;
    println!(
        "machine: {cores} cores; PostgreSQL {version}; {} usage events seeded",
        ctx.events
    );
    windows(ctx)?;
    downtime(ctx, rounds)?;
    if keep {
        eprintln!("measure-window: databases {WINDOWS_DB} and {DOWNTIME_DB} kept (--keep)");
    } else {
        for db in [WINDOWS_DB, DOWNTIME_DB] {
            psql::drop_database(&ctx.server, db)?;
        }
    }
    Ok(())
}

/// Builds the `steady_load` example of `migrate-hooks` (release) and returns its path.
fn build_steady_load() -> Result<PathBuf> {
    let mut build = workspace::cargo();
    build.args([
        "build",
        "--release",
        "--package",
        "migrate-hooks",
        "--example",
        "steady_load",
    ]);
    cmd::run(&mut build)?;
    let binary = workspace::target_dir()
        .join("release")
        .join("examples")
        .join("steady_load");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "cargo built steady_load but {} is not there",
            binary.display()
        )
        .into())
    }
}

/// One migration on disk: `VERSION_SLUG.up.sql`.
struct MigrationFile {
    version: String,
    slug: String,
}

/// The migrations of a target, oldest first, from its folder.
fn migrations(target: &str) -> Result<Vec<MigrationFile>> {
    let dir = workspace::root().join("migrations").join(target);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".up.sql")
            && let Some((version, slug)) = stem.split_once('_')
        {
            found.push(MigrationFile {
                version: version.to_owned(),
                slug: slug.to_owned(),
            });
        }
    }
    found.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(found)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// Part 1: every migration rolled back and applied again, one at a time.
fn windows(ctx: &Context) -> Result {
    let db = ctx.seeded_database(WINDOWS_DB)?;
    let mut rows = Vec::new();
    let mut longest = Duration::ZERO;
    for target in TARGETS.iter().rev() {
        for migration in migrations(target)?.iter().rev() {
            let down = ["migrate", "down", "--target", target, "--steps", "1"];
            let rolled_back = ctx.timed(&db, &down)?;
            let applied = ctx.timed(
                &db,
                &[
                    "migrate",
                    "up",
                    "--target",
                    target,
                    "--to",
                    &migration.version,
                ],
            )?;
            ctx.timed(&db, &down)?;
            longest = longest.max(rolled_back).max(applied);
            rows.push(format!(
                "| {target} | {}_{} | {} | {} | {} |",
                migration.version,
                migration.slug,
                millis(rolled_back),
                millis(applied),
                verdict(rolled_back.max(applied) <= WINDOW),
            ));
        }
    }
    println!(
        "\n### Migration windows: each migration rolled back and applied again, seeded database\n"
    );
    println!("| target | migration | roll back (ms) | apply again (ms) | within 10 min |");
    println!("|---|---|---:|---:|---|");
    for row in rows {
        println!("{row}");
    }
    println!(
        "\nlongest: {} ms; every migration within the 10-minute window: {}",
        millis(longest),
        verdict(longest <= WINDOW)
    );
    Ok(())
}

/// One rollback and re-apply under load, and the same load without them.
struct Round {
    rows: String,
    rolled_back: Duration,
    applied: Duration,
    during: LoadReport,
    baseline: LoadReport,
}

impl Round {
    fn stall_ms(&self) -> f64 {
        self.during.worst().stall_ms
    }
}

/// Part 2: the longest request stall while the newest operational migration
/// is rolled back and re-applied, against the same load without a migration,
/// `rounds` times (each on freshly seeded events).
fn downtime(ctx: &Context, rounds: usize) -> Result {
    let db = ctx.seeded_database(DOWNTIME_DB)?;
    let newest = migrations("operational")?
        .pop()
        .ok_or("migrations/operational holds no migration")?;
    let mut done = Vec::with_capacity(rounds);
    for round in 0..rounds {
        if round > 0 {
            // The rollback dropped the events: load them again.
            ctx.timed(
                &db,
                &["seed", "analytics", "--events", &ctx.events.to_string()],
            )?;
            cmd::output(psql::psql(&db).args(["-c", "VACUUM ANALYZE"]))?;
        }
        done.push(downtime_round(ctx, &db)?);
        eprintln!(
            "measure-window: round {}/{rounds}: longest stall {:.1} ms",
            round + 1,
            done[round].stall_ms()
        );
    }
    done.sort_by(|a, b| a.stall_ms().total_cmp(&b.stall_ms()));
    let median = &done[done.len() / 2];
    let mut baselines: Vec<f64> = done.iter().map(|r| r.baseline.worst().stall_ms).collect();
    baselines.sort_by(f64::total_cmp);
    let median_baseline = baselines[baselines.len() / 2];

    println!(
        "\n### Rollback downtime: {}_{} rolled back and re-applied under load, \
         usage_events holding {} rows (median of {rounds} round(s))\n",
        newest.version,
        newest.slug,
        median.rows.trim()
    );
    println!(
        "median round: rolled back in {} ms, re-applied in {} ms (one `dbops migrate redo`)\n",
        millis(median.rolled_back),
        millis(median.applied)
    );
    println!(
        "| request | ok | failed | longest stall (ms) | baseline longest stall (ms) | median latency (ms) | first error |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for task in &median.during.tasks {
        let base = median
            .baseline
            .tasks
            .iter()
            .find(|b| b.name == task.name)
            .map_or("-".to_owned(), |b| format!("{:.1}", b.stall_ms));
        println!(
            "| {} | {} | {} | {:.1} | {base} | {:.2} | {} |",
            task.name, task.ok, task.failed, task.stall_ms, task.median_ms, task.first_error
        );
    }
    let worst = median.during.worst();
    let waited = median
        .during
        .tasks
        .iter()
        .filter(|t| t.failed == 0)
        .max_by(|a, b| a.stall_ms.total_cmp(&b.stall_ms));
    let all: Vec<String> = done
        .iter()
        .map(|r| format!("{:.1}", r.stall_ms()))
        .collect();
    println!(
        "\nlongest stall, median of {rounds} round(s): {:.1} ms ({}); every round: {} ms; \
         baseline without a migration (median): {median_baseline:.1} ms",
        worst.stall_ms,
        worst.name,
        all.join(", ")
    );
    if let Some(waited) = waited {
        println!(
            "longest wait of a request kind that never failed: {:.1} ms ({})",
            waited.stall_ms, waited.name
        );
    }
    let stall = Duration::from_secs_f64(worst.stall_ms / 1000.0);
    println!(
        "bar: under 60 s: {}; goal: under 1 s: {}",
        verdict(stall < DOWNTIME_BAR),
        verdict(stall < DOWNTIME_GOAL)
    );
    Ok(())
}

fn downtime_round(ctx: &Context, db: &Url) -> Result<Round> {
    let rows = psql::query(db, "SELECT count(*) FROM usage_events")?;
    let load = SteadyLoad::start(ctx, db)?;
    std::thread::sleep(SETTLE);
    let started = Instant::now();
    // One process rolls back and re-applies (`migrate redo`), as an
    // operator testing a down migration would: no process start or
    // connection between the two halves.
    let output = ctx.redo(db)?;
    let changing = started.elapsed();
    let (rolled_back, applied) = redo_times(&output)?;
    std::thread::sleep(SETTLE);
    let during = load.finish()?;

    let load = SteadyLoad::start(ctx, db)?;
    std::thread::sleep(SETTLE + changing + SETTLE);
    let baseline = load.finish()?;
    Ok(Round {
        rows,
        rolled_back,
        applied,
        during,
        baseline,
    })
}

/// The two halves of `migrate redo` from its report: "rolled back V in X ms
/// and applied it again in Y ms".
fn redo_times(output: &str) -> Result<(Duration, Duration)> {
    let numbers: Vec<u64> = output
        .split(" in ")
        .skip(1)
        .filter_map(|part| part.split(" ms").next()?.trim().parse().ok())
        .collect();
    match numbers[..] {
        [down, up] => Ok((Duration::from_millis(down), Duration::from_millis(up))),
        _ => Err(format!("`dbops migrate redo` printed no times: {output}").into()),
    }
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

/// The `steady_load` example, running.
struct SteadyLoad {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

/// One request kind's line of the `steady_load` report.
struct TaskLine {
    name: String,
    ok: u64,
    failed: u64,
    stall_ms: f64,
    median_ms: f64,
    first_error: String,
}

/// The `steady_load` report.
struct LoadReport {
    tasks: Vec<TaskLine>,
}

impl LoadReport {
    fn worst(&self) -> &TaskLine {
        self.tasks
            .iter()
            .max_by(|a, b| a.stall_ms.total_cmp(&b.stall_ms))
            .expect("steady_load reports at least one task")
    }
}

impl SteadyLoad {
    /// Starts the load against `db` and waits until it runs.
    fn start(ctx: &Context, db: &Url) -> Result<SteadyLoad> {
        let mut child = Command::new(&ctx.steady_load)
            .env(pg::URL_ENV, db.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", ctx.steady_load.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("steady_load did not start (it said {line:?})").into());
        }
        Ok(SteadyLoad { child, stdout })
    }

    /// Stops the load (closing its stdin) and reads its report.
    fn finish(mut self) -> Result<LoadReport> {
        drop(self.child.stdin.take());
        let mut tasks = Vec::new();
        for line in self.stdout.lines() {
            let line = line?;
            let fields: Vec<&str> = line.split('\t').collect();
            if let ["task", name, ok, failed, stall, median, error] = fields[..] {
                tasks.push(TaskLine {
                    name: name.to_owned(),
                    ok: ok.parse()?,
                    failed: failed.parse()?,
                    stall_ms: stall.parse()?,
                    median_ms: median.parse()?,
                    first_error: error.to_owned(),
                });
            }
        }
        let status = self.child.wait()?;
        if !status.success() || tasks.is_empty() {
            return Err(format!("steady_load failed ({status})").into());
        }
        Ok(LoadReport { tasks })
    }
}
