//! `cargo xtask smoke`: the whole tool against a real server, in a fresh
//! database, as an operator would run it.
//!
//! Smoke is a list of steps run in order against one database. The first
//! step migrates every target up, down to nothing and up again; the steps
//! after it find the database migrated to the newest version. To add a step,
//! write `xtask/src/smoke/<yours>.rs` with a `pub fn run(ctx: &Context) ->
//! Result`, declare it below with `mod <yours>;` and add one line to
//! [`STEPS`].

mod analytics;
mod clickhouse;
mod docs;
mod lint;
mod observability;
mod quickstart;
mod roundtrip;
mod seed;

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use url::Url;

use crate::flags::Args;
use crate::pg::{self, psql};
use crate::workspace::{self, Profile};
use crate::{Result, cmd};

/// One named part of a smoke run.
#[derive(Debug)]
pub struct Step {
    name: &'static str,
    run: fn(&Context) -> Result,
}

impl Step {
    const fn new(name: &'static str, run: fn(&Context) -> Result) -> Step {
        Step { name, run }
    }
}

/// The steps, in the order they run.
const STEPS: &[Step] = &[
    Step::new("migrate up, down to 0, up again", roundtrip::run),
    Step::new("lint: migration files and the live schema", lint::run),
    Step::new("seed twice, ensure partitions twice", seed::run),
    Step::new("docs validate: current, and a drift caught", docs::run),
    Step::new(
        "rollups on both targets: check, reconcile, a corruption caught",
        analytics::run,
    ),
    Step::new(
        "rollups on the two-shard ClickHouse cluster: migrate, run, check, reconcile, status",
        clickhouse::run,
    ),
    Step::new(
        "roll back and re-apply with telemetry on; health; audit chain",
        observability::run,
    ),
    // Keep this one last: it checks the commands of the steps above.
    Step::new("quickstart commands all ran", quickstart::run),
];

/// What every step gets.
#[derive(Debug)]
pub struct Context {
    /// The `dbops` binary under test (dev profile).
    pub dbops: PathBuf,
    /// The smoke run's own database; `DB_URL` and `ANALYTICS_URL` of
    /// [`Context::dbops`] point at it.
    pub db: Url,
    /// The environment named with `--env`, for steps whose behaviour depends
    /// on it; `None` for a local run.
    pub env: Option<String>,
    /// The arguments of every `dbops` command run through
    /// [`Context::run_dbops`], in order.
    ran: RefCell<Vec<Vec<String>>>,
}

impl Context {
    /// A `dbops` command against the smoke database, run in the workspace
    /// root so that it finds `configs/` and `migrations/`.
    pub fn dbops(&self) -> Command {
        let mut dbops = Command::new(&self.dbops);
        dbops
            .current_dir(workspace::root())
            .env("DB_URL", self.db.as_str())
            .env("ANALYTICS_URL", self.db.as_str());
        dbops
    }

    /// Runs `dbops ARGS` against the smoke database, echoing it, and notes
    /// that it ran (for the quickstart check).
    pub fn run_dbops(&self, args: &[&str]) -> Result {
        cmd::run(self.dbops().args(args))?;
        self.note(args);
        Ok(())
    }

    /// Like [`Context::run_dbops`], for a command that takes dbops's `--env`
    /// (`migrate up` and `down`): with `smoke --env NAME` it runs with
    /// `--env NAME --yes`, the environment's policy applying and its
    /// confirmation answered as CI would.
    pub fn run_dbops_in_env(&self, args: &[&str]) -> Result {
        let mut dbops = self.dbops();
        dbops.args(args);
        if let Some(env) = &self.env {
            dbops.args(["--env", env, "--yes"]);
        }
        cmd::run(&mut dbops)?;
        self.note(args);
        Ok(())
    }

    fn note(&self, args: &[&str]) {
        self.ran
            .borrow_mut()
            .push(args.iter().map(|arg| arg.to_string()).collect());
    }
}

/// How to run smoke.
#[derive(Debug, Default)]
pub struct Options {
    pub env: Option<String>,
    /// Keep the database after a successful run too.
    pub keep: bool,
    /// How to build the `dbops` under test.
    pub build: Profile,
}

/// `cargo xtask smoke [--env NAME] [--keep]`.
pub fn task(args: &mut Args) -> Result {
    let options = Options {
        env: args.value("--env")?,
        keep: args.flag("--keep"),
        build: Profile::Dev,
    };
    args.finish()?;
    run(&pg::ensure()?, &options)
}

/// Runs every step against a fresh database on `server`. The database is
/// dropped after a successful run and kept for a look after a failure.
pub fn run(server: &Url, options: &Options) -> Result {
    let dbops = workspace::build_dbops(options.build)?;
    let db = psql::create_fresh_database(server, "xtask_smoke")?;
    let ctx = Context {
        dbops,
        db,
        env: options.env.clone(),
        ran: RefCell::default(),
    };
    let env = ctx
        .env
        .as_deref()
        .map_or(String::new(), |env| format!(" (environment {env})"));
    eprintln!("smoke: database {}{env}", psql::redacted(&ctx.db));
    for (i, step) in STEPS.iter().enumerate() {
        eprintln!("smoke: step {}/{}: {}", i + 1, STEPS.len(), step.name);
        let started = Instant::now();
        (step.run)(&ctx).map_err(|e| {
            format!(
                "smoke step `{}` failed: {e}\n(database {} kept for a look)",
                step.name,
                psql::redacted(&ctx.db)
            )
        })?;
        eprintln!(
            "smoke: step {}/{} passed in {:.1?}",
            i + 1,
            STEPS.len(),
            started.elapsed()
        );
    }
    if options.keep {
        eprintln!(
            "smoke: passed; database {} kept (--keep)",
            psql::redacted(&ctx.db)
        );
    } else {
        psql::drop_database(server, psql::database_name(&ctx.db))?;
        eprintln!("smoke: passed");
    }
    Ok(())
}
