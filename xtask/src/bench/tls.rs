//! `cargo xtask bench tls`: the cost of TLS to a run. `dbops migrate up` of
//! the 300 migrations of `bench apply`, hooks and audit on, over TLS
//! (`sslmode=require`) against the same over plain TCP (`sslmode=disable`),
//! each round on fresh databases. The server must accept both (a default
//! Debian cluster does, with its snakeoil certificate).
//!
//! Goal (issue 12): TLS adds no more than one handshake per connection, at
//! most 1.10× the time over plain TCP.

use std::process::Command;

use url::Url;

use super::Context;
use super::fixture;
use super::paired::{Case, paired};
use crate::Result;

const MIGRATIONS: usize = 300;
const DEFAULT_ROUNDS: usize = 11;
const GOAL: f64 = 1.10;

pub fn run(ctx: &Context) -> Result {
    let fixture = fixture::write(&ctx.scratch.join("fixture"), MIGRATIONS)?;
    let up = |db: &str, sslmode: &str| -> Result<Command> {
        let mut url: Url = ctx.fresh_database(db)?;
        url.query_pairs_mut().append_pair("sslmode", sslmode);
        let mut dbops = ctx.dbops(&url);
        dbops
            .arg("migrate")
            .args(super::apply::UP)
            .arg("--dir")
            .arg(&fixture.migrations);
        Ok(dbops)
    };
    let comparison = paired(
        ctx.rounds(DEFAULT_ROUNDS),
        Case::new("dbops migrate up, sslmode=disable", || {
            up("xtask_bench_tls_plain", "disable")
        }),
        Case::new("dbops migrate up, sslmode=require", || {
            up("xtask_bench_tls", "require")
        }),
    )?;
    println!(
        "\n### {MIGRATIONS} migrations over TLS and over plain TCP\n\n{}",
        comparison.report()
    );
    println!("{}", comparison.goal(GOAL));
    Ok(())
}
