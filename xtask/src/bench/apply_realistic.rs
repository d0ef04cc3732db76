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

use std::path::Path;
use std::process::Command;

use url::Url;

use super::paired::{Case, paired};
use super::{Context, realistic};
use crate::pg::psql;
use crate::{Result, cmd};

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
    let dir = fixture.migrations.as_path();
    let dbops = |db: &Url, args: &[&str]| {
        let mut dbops = ctx.dbops(db);
        dbops.arg("migrate").args(args).arg("--dir").arg(dir);
        dbops
    };
    let dbops = &dbops;
    let dbops_up = || {
        Case::new("dbops migrate up --allow-lint-errors --dir", move || {
            Ok(dbops(&ctx.fresh_database(DBOPS_DB)?, super::apply::UP))
        })
    };
    let dbops_down = || {
        Case::new("dbops migrate down --to 0 --dir", move || {
            let db = ctx.fresh_database(DBOPS_DB)?;
            cmd::output(&mut dbops(&db, super::apply::UP))?;
            Ok(dbops(&db, &["down", "--to", "0"]))
        })
    };
    // `psql -f` of `up` untimed, then of `down` timed.
    let psql_down = |label, up, down| {
        Case::new(label, move || {
            let db = ctx.fresh_database(PSQL_DB)?;
            cmd::output(&mut psql_file(&db, up))?;
            Ok(psql_file(&db, down))
        })
    };

    let up = paired(
        rounds,
        Case::new("psql -f all.sql", || {
            Ok(psql_file(&ctx.fresh_database(PSQL_DB)?, &fixture.all_up))
        }),
        dbops_up(),
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
        psql_down("psql -f all-down.sql", &fixture.all_up, &fixture.all_down),
        dbops_down(),
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

    let up_each = paired(
        rounds,
        Case::new("psql -f each.sql", || {
            Ok(psql_file(&ctx.fresh_database(PSQL_DB)?, &fixture.each_up))
        }),
        dbops_up(),
    )?;
    ctx.same_schema(PSQL_DB, DBOPS_DB)?;
    println!(
        "\n### Applying {} realistic migrations, against one transaction per migration\n\n{}",
        steps.len(),
        up_each.report()
    );
    let down_each = paired(
        rounds,
        psql_down(
            "psql -f each-down.sql",
            &fixture.each_up,
            &fixture.each_down,
        ),
        dbops_down(),
    )?;
    ctx.same_schema(PSQL_DB, DBOPS_DB)?;
    println!(
        "\n### Rolling {} realistic migrations back, against one transaction per migration\n\n{}",
        steps.len(),
        down_each.report()
    );

    for db in [PSQL_DB, DBOPS_DB] {
        psql::drop_database(&ctx.server, db)?;
    }
    Ok(())
}

/// `psql -f FILE`: the file holds its own transactions.
fn psql_file(db: &Url, file: &Path) -> Command {
    let mut psql = psql::psql(db);
    psql.arg("-f").arg(file);
    psql
}
