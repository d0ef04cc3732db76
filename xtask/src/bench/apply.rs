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

use super::cases::{Cases, Psql};
use super::paired::{Case, paired};
use super::{Context, fixture};
use crate::Result;
use crate::pg::psql;

const MIGRATIONS: usize = 300;
const DEFAULT_ROUNDS: usize = 15;
const GOAL_RATIO: f64 = 1.05;
/// Issue 6: the same apply with hooks, audit and telemetry export on.
const OBSERVED_GOAL_RATIO: f64 = 1.25;

/// `dbops migrate` arguments to apply the fixture: see the module docs.
pub use super::cases::UP;

const PSQL_DB: &str = "xtask_bench_apply_psql";
const DBOPS_DB: &str = "xtask_bench_apply_dbops";

pub fn run(ctx: &Context) -> Result {
    let fixture = fixture::write(&ctx.scratch.join("fixture"), MIGRATIONS)?;
    let rounds = ctx.rounds(DEFAULT_ROUNDS);
    let cases = Cases::new(ctx, &fixture.migrations, PSQL_DB, DBOPS_DB);

    let up = paired(
        rounds,
        cases.psql_up("psql -1 -f all.sql", Psql::OneTransaction, &fixture.all_up),
        cases.dbops_up(),
    )?;
    expect_tables(ctx, MIGRATIONS)?;
    println!("\n### Applying {MIGRATIONS} migrations\n\n{}", up.report());
    println!("{}", up.goal(GOAL_RATIO));

    // Issue 6: with hooks, audit and telemetry on (spans and metrics
    // exported over OTLP/HTTP to a receiver in this process).
    let (endpoint, received) = crate::otlp::receiver()?;
    let observed = paired(
        rounds,
        cases.psql_up("psql -1 -f all.sql", Psql::OneTransaction, &fixture.all_up),
        Case::new(
            "dbops migrate up --allow-lint-errors --dir, OTLP export on",
            || {
                let mut up = cases.dbops(&cases.dbops_database()?, UP);
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
        cases.psql_down(
            "psql -1 -f all-down.sql",
            Psql::OneTransaction,
            &fixture.all_up,
            &fixture.all_down,
        ),
        cases.dbops_down("0"),
    )?;
    expect_tables(ctx, 0)?;
    println!(
        "\n### Rolling {MIGRATIONS} migrations back\n\n{}",
        down.report()
    );

    cases.against_one_commit_each(
        rounds,
        &format!("{MIGRATIONS} migrations"),
        (&fixture.each_up, &fixture.each_down),
        "0",
        |applied| expect_tables(ctx, if applied { MIGRATIONS } else { 0 }),
    )?;

    for db in [PSQL_DB, DBOPS_DB] {
        psql::drop_database(&ctx.server, db)?;
    }
    Ok(())
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
