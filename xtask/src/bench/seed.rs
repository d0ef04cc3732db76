//! `cargo xtask bench seed`: `dbops seed analytics` loading 10 million usage
//! events, next to a server-side `INSERT ... SELECT FROM generate_series`
//! producing the same kind of rows into the same table (daily partitions,
//! every index), in the same run.
//!
//! Both sides start from a freshly migrated database and end with the table
//! analyzed, ready for queries: the seeder analyzes after loading, so the
//! baseline's SQL does too. The seeder's time also includes inserting its
//! 1,000 organizations with their users, keys and budgets, and creating the
//! partitions; the baseline's partitions are created before its clock starts.
//!
//! Goal (issue 3): the seeder's rate at least 0.9 times the baseline's, that
//! is a median time ratio (seeder / baseline) of at most 1.11.

use super::Context;
use super::paired::{Case, paired, seconds};
use crate::pg::psql;
use crate::{Result, cmd};

const EVENTS: u64 = 10_000_000;
const DAYS: u32 = 30;
const ORGANIZATIONS: u32 = 1_000;
const DEFAULT_ROUNDS: usize = 3;
/// Seeder time over baseline time must stay at or below this (a rate of 0.9x).
const GOAL_RATIO: f64 = 1.0 / 0.9;
/// The end of the seeded window: fixed, so every round loads the same rows.
const UNTIL: &str = "2025-11-15T00:00:00Z";
const PEPPER: &str = "bench pepper: not a secret, only for throwaway databases";

const BASELINE_DB: &str = "xtask_bench_seed_baseline";
const SEEDER_DB: &str = "xtask_bench_seed_seeder";

pub fn run(ctx: &Context) -> Result {
    let rounds = ctx.rounds(DEFAULT_ROUNDS);
    let comparison = paired(
        rounds,
        Case::new("INSERT ... SELECT FROM generate_series", || {
            let db = migrated(ctx, BASELINE_DB)?;
            cmd::output(psql::psql(&db).args(["-v", "ON_ERROR_STOP=1", "-c", &partitions_sql()]))?;
            let mut psql = psql::psql(&db);
            psql.args(["-v", "ON_ERROR_STOP=1", "-c", &generate_series_sql()]);
            Ok(psql)
        }),
        Case::new(format!("dbops seed analytics --events {EVENTS}"), || {
            let db = migrated(ctx, SEEDER_DB)?;
            let mut dbops = ctx.dbops(&db);
            dbops.env("DBOPS_API_KEY_PEPPER", PEPPER).args([
                "seed",
                "analytics",
                "--events",
                &EVENTS.to_string(),
                "--days",
                &DAYS.to_string(),
                "--orgs",
                &ORGANIZATIONS.to_string(),
                "--until",
                UNTIL,
            ]);
            Ok(dbops)
        }),
    )?;
    let ratio = comparison.median_ratio();
    let rate = EVENTS as f64 / comparison.candidate_median().as_secs_f64();
    println!(
        "\n### Seeding {EVENTS} usage events ({DAYS} days, {ORGANIZATIONS} organizations)\n\n{}",
        comparison.report()
    );
    println!(
        "seeder: {:.0} events/s at the median; rate relative to generate_series: {:.2}x",
        rate,
        1.0 / ratio
    );
    let verdict = if ratio <= GOAL_RATIO {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "goal: at least 0.9x the generate_series rate: {verdict} (median time ratio {ratio:.3}, at most {GOAL_RATIO:.3} needed; seeder median {})",
        seconds(comparison.candidate_median().as_secs_f64())
    );
    psql::drop_database(&ctx.server, BASELINE_DB)?;
    psql::drop_database(&ctx.server, SEEDER_DB)
}

/// A fresh database with the operational migrations applied (not timed).
/// The files are applied with psql rather than `dbops migrate up`, so that
/// the figure depends on nothing but the schema and the seeder.
fn migrated(ctx: &Context, name: &str) -> Result<url::Url> {
    let db = ctx.fresh_database(name)?;
    let dir = crate::workspace::root().join("migrations/operational");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".up.sql"))
        .collect();
    files.sort();
    for file in files {
        cmd::output(psql::psql(&db).arg("-1").arg("-f").arg(&file))?;
    }
    Ok(db)
}

/// The daily partitions of the window, as the seeder creates them.
fn partitions_sql() -> String {
    format!(
        "DO $$ DECLARE day date; BEGIN
           FOR day IN SELECT d::date FROM generate_series(timestamptz '{UNTIL}' - interval '{DAYS} days',
                                                          timestamptz '{UNTIL}' - interval '1 microsecond',
                                                          interval '1 day') AS d
           LOOP
             EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
                            'usage_events_p' || to_char(day, 'YYYYMMDD'), day || ' 00:00:00+00', (day + 1) || ' 00:00:00+00');
           END LOOP;
         END $$"
    )
}

/// Rows shaped like the seeder's: random organizations, keys, users and
/// models, about 5 % errors, 2 % late events, in time order over the window.
fn generate_series_sql() -> String {
    format!(
        "SET TimeZone = 'UTC';
         INSERT INTO usage_events (organization_id, user_id, api_key_id, model_id, request_id, status,
                                   input_tokens, output_tokens, cost_micros, latency_ms, occurred_at, ingested_at)
         SELECT 1 + floor(random() * {ORGANIZATIONS})::int8,
                CASE WHEN random() < 0.7 THEN 1 + floor(random() * {users})::int8 END,
                CASE WHEN random() < 0.95 THEN 1 + floor(random() * {keys})::int8 END,
                1 + floor(random() ^ 2 * 20)::int8,
                gen_random_uuid(),
                s.status,
                s.input_tokens,
                s.output_tokens,
                (s.input_tokens * 2500000::int8 + s.output_tokens * 10000000::int8) / 1000000,
                150 + s.output_tokens * 12,
                s.occurred_at,
                s.occurred_at + CASE WHEN random() < 0.02 THEN interval '1 hour' + random() * interval '47 hours'
                                     ELSE interval '20 milliseconds' + random() * interval '2 seconds' END
         FROM (
             SELECT CASE WHEN random() < 0.95 THEN 'ok' ELSE 'server_error' END AS status,
                    20 + floor(random() * 3980)::int AS input_tokens,
                    1 + floor(random() * 1499)::int AS output_tokens,
                    timestamptz '{UNTIL}' - interval '{DAYS} days'
                        + (g - 1) * (interval '{DAYS} days' / {EVENTS}) AS occurred_at
             FROM generate_series(1, {EVENTS}) AS g
         ) AS s;
         ANALYZE usage_events;",
        users = ORGANIZATIONS * 5,
        keys = ORGANIZATIONS * 3,
    )
}
