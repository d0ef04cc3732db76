//! `cargo xtask bench apply`: applying and rolling back 300 migrations with
//! `dbops migrate --dir`, against the floor of `psql -1` running the same SQL
//! in one file, each round on fresh databases.
//!
//! Goals: applying takes at most 1.05× the time of `psql -1 -f all.sql`
//! (issue 11; hooks and audit are on, as in any real run), and at most 1.25×
//! with OpenTelemetry export on as well (issue 6).
//!
//! Both directions are also timed against `psql -f each.sql`, the same SQL
//! with one transaction per migration ([`fixture::one_transaction_each`]):
//! the floor of any tool that commits each migration on its own, so that
//! the ratio to it is what dbops's own work costs.
//!
//! The fixture's names break the project's conventions (`bench_t1` is not a
//! plural), so `up` runs with `--allow-lint-errors`: the lint of the pending
//! migrations still runs and is part of the time, as in any real `up`.

use std::path::Path;
use std::process::Command;

use url::Url;

use super::paired::{Case, paired};
use super::{Context, fixture};
use crate::pg::psql;
use crate::{Result, cmd};

const MIGRATIONS: usize = 300;
const DEFAULT_ROUNDS: usize = 15;
const GOAL_RATIO: f64 = 1.05;
/// Issue 6: the same apply with hooks, audit and telemetry export on.
const OBSERVED_GOAL_RATIO: f64 = 1.25;

/// `dbops migrate` arguments to apply the fixture: see the module docs.
pub const UP: &[&str] = &["up", "--allow-lint-errors"];

const PSQL_DB: &str = "xtask_bench_apply_psql";
const DBOPS_DB: &str = "xtask_bench_apply_dbops";

pub fn run(ctx: &Context) -> Result {
    let fixture = fixture::write(&ctx.scratch.join("fixture"), MIGRATIONS)?;
    let rounds = ctx.rounds(DEFAULT_ROUNDS);
    let dir = fixture.migrations.as_path();
    let dbops = |db: &Url, args: &[&str]| {
        let mut dbops = ctx.dbops(db);
        dbops.args(["migrate"]).args(args).arg("--dir").arg(dir);
        dbops
    };
    let dbops = &dbops;
    let dbops_up = || {
        Case::new("dbops migrate up --allow-lint-errors --dir", move || {
            Ok(dbops(&ctx.fresh_database(DBOPS_DB)?, UP))
        })
    };
    let dbops_down = || {
        Case::new("dbops migrate down --to 0 --dir", move || {
            let db = ctx.fresh_database(DBOPS_DB)?;
            cmd::output(&mut dbops(&db, UP))?;
            Ok(dbops(&db, &["down", "--to", "0"]))
        })
    };
    // `psql` applying `up` untimed, then `down` timed.
    let psql_down = |label, psql: fn(&Url, &Path) -> Command, up, down| {
        Case::new(label, move || {
            let db = ctx.fresh_database(PSQL_DB)?;
            cmd::output(&mut psql(&db, up))?;
            Ok(psql(&db, down))
        })
    };

    let up = paired(
        rounds,
        Case::new("psql -1 -f all.sql", || {
            Ok(psql_file(&ctx.fresh_database(PSQL_DB)?, &fixture.all_up))
        }),
        dbops_up(),
    )?;
    expect_tables(ctx, MIGRATIONS)?;
    println!("\n### Applying {MIGRATIONS} migrations\n\n{}", up.report());
    println!("{}", up.goal(GOAL_RATIO));

    // Issue 6: with hooks, audit and telemetry on (spans and metrics
    // exported over OTLP/HTTP to a receiver in this process).
    let (endpoint, received) = crate::otlp::receiver()?;
    let observed = paired(
        rounds,
        Case::new("psql -1 -f all.sql", || {
            Ok(psql_file(&ctx.fresh_database(PSQL_DB)?, &fixture.all_up))
        }),
        Case::new(
            "dbops migrate up --allow-lint-errors --dir, OTLP export on",
            || {
                let mut up = dbops(&ctx.fresh_database(DBOPS_DB)?, UP);
                up.env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
                    .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
                Ok(up)
            },
        ),
    )?;
    expect_tables(ctx, MIGRATIONS)?;
    let exported = received
        .lock()
        .map_err(|_| "the OTLP receiver panicked")?
        .clone();
    if !exported.contains_key("/v1/traces") || !exported.contains_key("/v1/metrics") {
        return Err(format!("telemetry did not reach the receiver: {exported:?}").into());
    }
    println!(
        "\n### Applying {MIGRATIONS} migrations with hooks, audit and telemetry on\n\n{}",
        observed.report()
    );
    println!("{}", observed.goal(OBSERVED_GOAL_RATIO));

    let down = paired(
        rounds,
        psql_down(
            "psql -1 -f all-down.sql",
            psql_file,
            &fixture.all_up,
            &fixture.all_down,
        ),
        dbops_down(),
    )?;
    expect_tables(ctx, 0)?;
    println!(
        "\n### Rolling {MIGRATIONS} migrations back\n\n{}",
        down.report()
    );

    let up_each = paired(
        rounds,
        Case::new("psql -f each.sql", || {
            Ok(psql_each(&ctx.fresh_database(PSQL_DB)?, &fixture.each_up))
        }),
        dbops_up(),
    )?;
    expect_tables(ctx, MIGRATIONS)?;
    println!(
        "\n### Applying {MIGRATIONS} migrations, against one transaction per migration\n\n{}",
        up_each.report()
    );
    let down_each = paired(
        rounds,
        psql_down(
            "psql -f each-down.sql",
            psql_each,
            &fixture.each_up,
            &fixture.each_down,
        ),
        dbops_down(),
    )?;
    expect_tables(ctx, 0)?;
    println!(
        "\n### Rolling {MIGRATIONS} migrations back, against one transaction per migration\n\n{}",
        down_each.report()
    );

    for db in [PSQL_DB, DBOPS_DB] {
        psql::drop_database(&ctx.server, db)?;
    }
    Ok(())
}

/// `psql -1 -f FILE` against `db`.
pub(super) fn psql_file(db: &Url, file: &Path) -> Command {
    let mut psql = psql::psql(db);
    psql.arg("-1").arg("-f").arg(file);
    psql
}

/// `psql -f FILE` against `db`: the file holds its own transactions.
pub(super) fn psql_each(db: &Url, file: &Path) -> Command {
    let mut psql = psql::psql(db);
    psql.arg("-f").arg(file);
    psql
}

/// Both sides must have done the work: `count` tables of the fixture in each
/// database after the last round.
fn expect_tables(ctx: &Context, count: usize) -> Result {
    for name in [PSQL_DB, DBOPS_DB] {
        let db = psql::database_url(&ctx.server, name);
        let found = psql::query(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'bench\\_t%'",
        )?;
        if found.trim() != count.to_string() {
            return Err(format!(
                "database {name} has {} fixture tables, not {count}",
                found.trim()
            )
            .into());
        }
    }
    Ok(())
}
