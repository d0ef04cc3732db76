//! Smoke step: both seeds load, a second run changes nothing, and partition
//! maintenance leaves the default partition empty and is idempotent too.

use super::Context;
use crate::pg::psql;
use crate::{Result, cmd};

/// A throwaway pepper: the smoke database is dropped afterwards.
const PEPPER: &str = "smoke pepper: not a secret, only for a throwaway database";
const EVENTS: &str = "50000";

pub fn run(ctx: &Context) -> Result {
    let seed = |args: &[&str]| -> Result<String> {
        let mut dbops = ctx.dbops();
        dbops
            .env("DBOPS_API_KEY_PEPPER", PEPPER)
            .arg("seed")
            .args(args);
        eprintln!("$ dbops seed {}", args.join(" "));
        cmd::read(&mut dbops)
    };
    let operational = ["operational", "--seed", "7"];
    let analytics = [
        "analytics",
        "--seed",
        "7",
        "--events",
        EVENTS,
        "--days",
        "3",
        "--orgs",
        "20",
    ];

    let first = seed(&operational)?;
    expect(
        first.contains("dbk_"),
        "the first operational seed shows the new API keys",
        &first,
    )?;
    seed(&analytics)?;
    let before = fingerprint(ctx)?;

    let again = seed(&operational)?;
    expect(
        !again.contains("dbk_"),
        "a second operational seed creates and shows no key",
        &again,
    )?;
    let again = seed(&analytics)?;
    expect(
        again.contains(" 0 event(s) loaded"),
        "a second analytics seed loads nothing",
        &again,
    )?;
    let after = fingerprint(ctx)?;
    expect(
        before == after,
        "seeding twice leaves every table as it was",
        &format!("{before}\n---\n{after}"),
    )?;
    expect(
        after.contains(&format!("usage_events|{EVENTS}|")),
        "every event was loaded",
        &after,
    )?;

    ctx.run_dbops(&["partitions", "ensure"])?;
    let noop = cmd::read(ctx.dbops().args(["partitions", "ensure", "--json"]))?;
    expect(
        noop.contains("\"created\": []"),
        "a second `partitions ensure` creates nothing",
        &noop,
    )?;
    let stray = psql::query(&ctx.db, "SELECT count(*) FROM usage_events_default")?;
    expect(
        stray.trim() == "0",
        "no event waits in the default partition",
        &stray,
    )?;
    Ok(())
}

/// Row count and checksum of each seeded table.
fn fingerprint(ctx: &Context) -> Result<String> {
    let tables = [
        "organizations",
        "users",
        "api_keys",
        "models",
        "budgets",
        "usage_events",
    ];
    let sql = tables
        .iter()
        .map(|t| format!("SELECT '{t}', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM {t} x"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    psql::query(&ctx.db, &sql)
}

fn expect(holds: bool, what: &str, output: &str) -> Result {
    if holds {
        Ok(())
    } else {
        Err(format!("expected: {what}; got:\n{output}").into())
    }
}
