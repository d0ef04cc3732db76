//! `cargo xtask bench apply-realistic [--rows N]`: applying and rolling
//! back the realistic history of `realistic.rs` (320 migrations over tables
//! holding up to N rows, default 50,000) with `dbops migrate --dir` and the
//! standard hooks on, against `psql` running the same SQL in one file, each
//! round on fresh databases. The fewer the rows, the larger dbops's own
//! share of the time (`--rows 1000`: mostly DDL on small tables).
//!
//! The floor is `psql -f all.sql`: every up in one file, each stretch of
//! transactional migrations in one transaction and the no-transaction ones
//! (`CREATE INDEX CONCURRENTLY`) between them, as `psql -1` would run it if
//! it could run those (see `realistic.rs`). Rolling back, the floor is
//! `psql -f all-down.sql`, after an untimed apply, against `dbops migrate
//! down --to 0` after an untimed `dbops migrate up`.
//!
//! Goals (issue 11): applying at most 1.3× the floor; rolling back at most
//! 2.0×. Both directions are also timed against `psql -f each.sql`, one
//! transaction per migration ([`super::fixture::one_transaction_each`]): the
//! floor of any tool that commits each migration on its own. The downs undo backfills (an `UPDATE` of up to 50,000 rows each),
//! so much of the rollback's time is the data's, on both sides; `cargo
//! xtask bench apply` rolls back 300 `DROP TABLE`s, where dbops's own cost
//! per step shows.
//!
//! The history's table names break the project's conventions, so `up` runs
//! with `--allow-lint-errors`, as in `bench apply`.

use super::cases::{Cases, Psql};
use super::paired::paired;
use super::{Context, realistic};
use crate::Result;
use crate::pg::psql;

const DEFAULT_ROUNDS: usize = 7;
const UP_GOAL: f64 = 1.3;
const DOWN_GOAL: f64 = 2.0;

const PSQL_DB: &str = "xtask_bench_realistic_psql";
const DBOPS_DB: &str = "xtask_bench_realistic_dbops";

pub fn run(ctx: &Context) -> Result {
    let rows = ctx.count("--rows", realistic::ROWS);
    let (fixture, steps) = realistic::write(&ctx.scratch.join("fixture"), rows)?;
    println!(
        "fixture: {}; up to {rows} rows per table",
        realistic::summary(&steps)
    );
    let rounds = ctx.rounds(DEFAULT_ROUNDS);
    let cases = Cases::new(ctx, &fixture.migrations, PSQL_DB, DBOPS_DB);

    let up = paired(
        rounds,
        cases.psql_up("psql -f all.sql", Psql::AsWritten, &fixture.all_up),
        cases.dbops_up(),
    )?;
    let applied = ctx.same_schema(PSQL_DB, DBOPS_DB)?;
    println!(
        "\n### Applying {} realistic migrations ({applied})\n\n{}",
        steps.len(),
        up.report()
    );
    println!("{}", up.goal(UP_GOAL));

    let down = paired(
        rounds,
        cases.psql_down(
            "psql -f all-down.sql",
            Psql::AsWritten,
            &fixture.all_up,
            &fixture.all_down,
        ),
        cases.dbops_down("0"),
    )?;
    let left = ctx.same_schema(PSQL_DB, DBOPS_DB)?;
    if left != "0 objects" {
        return Err(format!("rolling everything back left {left}").into());
    }
    println!(
        "\n### Rolling {} realistic migrations back\n\n{}",
        steps.len(),
        down.report()
    );
    println!("{}", down.goal(DOWN_GOAL));

    cases.against_one_commit_each(
        rounds,
        &format!("{} realistic migrations", steps.len()),
        (&fixture.each_up, &fixture.each_down),
        "0",
        |_| ctx.same_schema(PSQL_DB, DBOPS_DB).map(drop),
    )?;

    for db in [PSQL_DB, DBOPS_DB] {
        psql::drop_database(&ctx.server, db)?;
    }
    Ok(())
}
