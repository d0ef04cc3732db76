//! Smoke step: the `clickhouse` rollup target on the two-shard cluster of
//! `cargo xtask clickhouse` (started here, as `cargo xtask ci` does, unless
//! it is running): its migrations, a run over the smoke database's seeded
//! events, check (the assertions), reconcile, a full rebuild and reconcile
//! again, status, then its migrations reverted.

use super::Context;
use crate::analytics_verify::write_clickhouse_config;
use crate::{Result, clickhouse, cmd, workspace};

/// The ClickHouse database smoke's rollups go to, apart from the shipped
/// configuration's.
const DATABASE: &str = "xtask_smoke";

pub fn run(ctx: &Context) -> Result {
    let servers = clickhouse::ensure()?;
    let result = cycle(ctx, &servers.urls);
    let stopped = servers.stop_if_started();
    result.and(stopped)
}

fn cycle(ctx: &Context, urls: &str) -> Result {
    let config =
        write_clickhouse_config(&workspace::target_dir().join("smoke-clickhouse"), DATABASE)?;
    for args in [
        &["rollup", "migrate", "--target", "clickhouse"][..],
        &["rollup", "run", "--target", "clickhouse"],
        &["rollup", "check", "--target", "clickhouse"],
        &["rollup", "reconcile", "--target", "clickhouse"],
        &["rollup", "run", "--target", "clickhouse", "--full"],
        &["rollup", "reconcile", "--target", "clickhouse"],
        &["rollup", "status", "--target", "clickhouse"],
        &[
            "rollup",
            "migrate",
            "--target",
            "clickhouse",
            "--down-to",
            "0",
        ],
    ] {
        cmd::run(
            ctx.dbops()
                .env(clickhouse::URLS_ENV, urls)
                .env("DBOPS_ROLLUP_CONFIG", &config)
                .args(args),
        )?;
        ctx.note(args);
    }
    Ok(())
}
