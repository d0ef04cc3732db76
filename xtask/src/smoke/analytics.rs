//! Smoke step: the rollup cycle of `cargo xtask analytics-verify` on the smoke database's
//! seeded events (local target), then on a second database (warehouse target).

use super::Context;
use crate::Result;
use crate::analytics_verify::{Verify, write_config};
use crate::pg::psql;
use crate::workspace;

pub fn run(ctx: &Context) -> Result {
    let server = psql::database_url(&ctx.db, "postgres");
    let warehouse = psql::create_fresh_database(&server, "xtask_smoke_warehouse")?;
    let record = |args: &[&str]| {
        ctx.ran
            .borrow_mut()
            .push(args.iter().map(|arg| arg.to_string()).collect());
    };
    let verify = Verify {
        dbops: &ctx.dbops,
        db: &ctx.db,
        warehouse: &warehouse,
        config: write_config(&workspace::target_dir().join("smoke-analytics"))?,
        record: &record,
    };
    verify.rollup_cycle()?;
    psql::drop_database(&server, psql::database_name(&warehouse))
}
