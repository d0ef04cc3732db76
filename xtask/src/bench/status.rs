//! `cargo xtask bench status`: `dbops migrate status` with 1,000 applied
//! migrations, next to `psql -c 'SELECT 1'` (starting a client and
//! connecting: the floor of any command-line status check).
//!
//! Goal (issue 2): under 100 ms.

use std::time::Duration;

use super::paired::{Case, paired, seconds};
use super::{Context, fixture};
use crate::pg::psql;
use crate::{Result, cmd};

const MIGRATIONS: usize = 1_000;
const DEFAULT_ROUNDS: usize = 31;
const GOAL: Duration = Duration::from_millis(100);

const DB: &str = "xtask_bench_status";

pub fn run(ctx: &Context) -> Result {
    let fixture = fixture::write(&ctx.scratch.join("fixture"), MIGRATIONS)?;
    let db = ctx.fresh_database(DB)?;
    eprintln!("bench: applying {MIGRATIONS} migrations (not timed)");
    cmd::output(
        ctx.dbops(&db)
            .arg("migrate")
            .args(super::apply::UP)
            .arg("--dir")
            .arg(&fixture.migrations),
    )?;

    let comparison = paired(
        ctx.rounds(DEFAULT_ROUNDS),
        Case::new("psql -c 'SELECT 1'", || {
            let mut psql = psql::psql(&db);
            psql.args(["-c", "SELECT 1"]);
            Ok(psql)
        }),
        Case::new("dbops migrate status --dir", || {
            let mut dbops = ctx.dbops(&db);
            dbops
                .args(["migrate", "status", "--dir"])
                .arg(&fixture.migrations);
            Ok(dbops)
        }),
    )?;
    let median = comparison.candidate_median();
    let verdict = if median < GOAL { "met" } else { "NOT met" };
    println!(
        "\n### Status with {MIGRATIONS} applied migrations\n\n{}",
        comparison.report()
    );
    println!(
        "goal: `dbops migrate status` under {}: {verdict} ({})",
        seconds(GOAL.as_secs_f64()),
        seconds(median.as_secs_f64())
    );
    psql::drop_database(&ctx.server, DB)
}
