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
//! 2.0×. The downs undo backfills (an `UPDATE` of up to 50,000 rows each),
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
use crate::{Result, cmd, fingerprint};

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

    let up = paired(
        rounds,
        Case::new("psql -f all.sql", || {
            Ok(psql_file(&ctx.fresh_database(PSQL_DB)?, &fixture.all_up))
        }),
        Case::new("dbops migrate up --allow-lint-errors --dir", || {
            Ok(dbops(&ctx.fresh_database(DBOPS_DB)?, super::apply::UP))
        }),
    )?;
    let applied = same_schema(ctx)?;
    println!(
        "\n### Applying {} realistic migrations ({applied})\n\n{}",
        steps.len(),
        up.report()
    );
    println!("{}", up.goal(UP_GOAL));

    let down = paired(
        rounds,
        Case::new("psql -f all-down.sql", || {
            let db = ctx.fresh_database(PSQL_DB)?;
            cmd::output(&mut psql_file(&db, &fixture.all_up))?;
            Ok(psql_file(&db, &fixture.all_down))
        }),
        Case::new("dbops migrate down --to 0 --dir", || {
            let db = ctx.fresh_database(DBOPS_DB)?;
            cmd::output(&mut dbops(&db, super::apply::UP))?;
            Ok(dbops(&db, &["down", "--to", "0"]))
        }),
    )?;
    let left = same_schema(ctx)?;
    if left != "0 objects" {
        return Err(format!("rolling everything back left {left}").into());
    }
    println!(
        "\n### Rolling {} realistic migrations back\n\n{}",
        steps.len(),
        down.report()
    );
    println!("{}", down.goal(DOWN_GOAL));

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

/// Both sides must have done the same work: after the last round, the
/// databases hold the same objects outside dbops's own schema. Tells how
/// many.
fn same_schema(ctx: &Context) -> Result<String> {
    let objects = |name: &str| -> Result<Vec<String>> {
        let db = psql::database_url(&ctx.server, name);
        Ok(fingerprint::take(&db)?.outside(&["dbops"]))
    };
    let (by_psql, by_dbops) = (objects(PSQL_DB)?, objects(DBOPS_DB)?);
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
