//! `cargo xtask bench lint`: `dbops lint` on the `.up.sql` files of the
//! realistic history (xtask's `realistic` generator), 300 and 3,000 of them,
//! next to squawk 2.66 on the same files (paired, same run), then `dbops lint
//! --db` on a live schema of 500 tables.
//!
//! squawk comes from npm: `npm install squawk-cli@2.66.0` in the bench's
//! folder under target/, or set SQUAWK to its binary. Goals: no slower than
//! squawk on 300 files (issue 4, median ratio <= 1); 3,000 files within half
//! squawk's time (issue 13, ratio <= 0.5); live lint of 500 tables under 1 s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::paired::{Case, paired, seconds};
use super::realistic::{self, ROWS};
use super::{Context, verdict};
use crate::pg::psql;
use crate::{Result, cmd};

/// The sizes of history linted, and the largest median ratio to squawk each may have.
const SIZES: &[(usize, f64)] = &[(300, 1.0), (3_000, 0.5)];
const TABLES: usize = 500;
const DEFAULT_ROUNDS: usize = 11;
const LIVE_GOAL: Duration = Duration::from_secs(1);
const DB: &str = "xtask_bench_lint";

pub fn run(ctx: &Context) -> Result {
    let squawk = squawk(ctx)?;
    for &(files, goal) in SIZES {
        lint_files(ctx, &squawk, files, goal)?;
    }

    let db = ctx.fresh_database(DB)?;
    eprintln!("bench: creating {TABLES} tables (not timed)");
    let mut ddl = String::new();
    for i in 0..TABLES {
        ddl += &format!(
            "CREATE TABLE t{i}s (id bigint GENERATED ALWAYS AS IDENTITY, org_id bigint NOT NULL, name text NOT NULL, \
             created_at timestamptz NOT NULL DEFAULT now(), CONSTRAINT t{i}s_pkey PRIMARY KEY (id), \
             CONSTRAINT t{i}s_name_check CHECK (char_length(name) <= 200));\
             CREATE INDEX t{i}s_org_id_idx ON t{i}s (org_id);\n"
        );
    }
    let ddl_file = ctx.scratch.join("tables.sql");
    std::fs::write(&ddl_file, ddl).map_err(|e| format!("writing {}: {e}", ddl_file.display()))?;
    cmd::output(psql::psql(&db).arg("-f").arg(&ddl_file))?;
    // No files: the live checks alone are timed.
    let no_files = ctx.scratch.join("no-files");
    std::fs::create_dir_all(&no_files)
        .map_err(|e| format!("creating {}: {e}", no_files.display()))?;
    let live = paired(
        ctx.rounds(DEFAULT_ROUNDS),
        Case::new("psql -c 'SELECT 1'", || {
            let mut psql = psql::psql(&db);
            psql.args(["-c", "SELECT 1"]);
            Ok(psql)
        }),
        Case::new("dbops lint --db (500 tables)", || {
            let mut dbops = ctx.dbops(&db);
            dbops.args(["lint", "--db"]).arg(&no_files);
            Ok(ignoring_status(dbops))
        }),
    )?;
    let median = live.candidate_median();
    println!("\n### Live lint of {TABLES} tables\n\n{}", live.report());
    println!(
        "goal: under {}: {} ({})",
        seconds(LIVE_GOAL.as_secs_f64()),
        if median < LIVE_GOAL { "met" } else { "NOT met" },
        seconds(median.as_secs_f64())
    );
    psql::drop_database(&ctx.server, DB)
}

/// Times `dbops lint` and squawk on the `.up.sql` files of a realistic history of `count` migrations.
fn lint_files(ctx: &Context, squawk: &Path, count: usize, goal: f64) -> Result {
    let out = ctx.scratch.join(format!("realistic-{count}"));
    let (fixture, steps) = realistic::write_sized(&out, ROWS, count)?;
    let mut up_files: Vec<PathBuf> = std::fs::read_dir(&fixture.migrations)
        .map_err(|e| format!("reading {}: {e}", fixture.migrations.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_string_lossy().ends_with(".up.sql"))
        .collect();
    up_files.sort();
    let timed = paired(
        ctx.rounds(DEFAULT_ROUNDS),
        Case::new("squawk 2.66 FILES", || {
            let mut squawk = Command::new(squawk);
            squawk.args(&up_files);
            Ok(ignoring_status(squawk))
        }),
        Case::new("dbops lint FILES", || {
            let mut dbops = ctx.dbops(&ctx.server);
            dbops.arg("lint").args(&up_files);
            Ok(ignoring_status(dbops))
        }),
    )?;
    println!(
        "\n### Linting the {} `.up.sql` files of a realistic history\n\n{}\n\n{}\ngoal: median ratio <= {goal}: {}",
        up_files.len(),
        realistic::summary(&steps),
        timed.report(),
        verdict(timed.median_ratio() <= goal)
    );
    Ok(())
}

/// The squawk binary: SQUAWK, or npm's install under the scratch folder.
fn squawk(ctx: &Context) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SQUAWK") {
        return Ok(path.into());
    }
    let dir = ctx.scratch.join("squawk");
    let bin = dir.join("node_modules/.bin/squawk");
    if !bin.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        cmd::output(Command::new("npm").current_dir(&dir).args([
            "install",
            "--silent",
            "squawk-cli@2.66.0",
        ]))?;
    }
    Ok(bin)
}

/// `command` run through `sh -c '"$@" >/dev/null; true'`: linters exit
/// non-zero on findings (the fixtures break naming rules), which is not a
/// failure here. The program and its arguments stay separate arguments of
/// `sh`: thousands of file names do not fit in one.
fn ignoring_status(command: Command) -> Command {
    let mut sh = Command::new("sh");
    sh.args(["-c", "\"$@\" >/dev/null; true", "sh"])
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        sh.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            sh.env(key, value);
        }
    }
    sh
}
