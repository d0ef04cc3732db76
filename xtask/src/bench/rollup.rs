//! `cargo xtask bench rollup`: the usage rollups on 10 million events (1,000 organizations,
//! 40 models, 30 days), three figures of issue 7.
//!
//! 1. Full rebuild: `dbops rollup run` on rollup tables emptied beforehand (a first run),
//!    paired with a hand-written `INSERT ... SELECT ... GROUP BY` of the same
//!    (organization, hour, key, model) buckets into a table with the same primary key, in
//!    the same run. The dbops side does more: histograms, the daily rows and its bookkeeping.
//!    Goal: median ratio at most 1.2.
//! 2. Incremental run after 1,000 late events spread over 10 hours, at two history sizes
//!    (10 and 30 days of the same density), paired. Goal: under 0.5 s at both sizes, so
//!    the cost follows the buckets touched, not the history (a ratio near 1).
//! 3. The three analytics queries of `analytics/queries/` on the 30-day rollups, 100 runs
//!    each. Goal: P95 under 50 ms.
//!
//! The event fixtures are generated server-side with `generate_series` (the shape of
//! `shared/benchmarks/anchors.md`: 720,000 hourly buckets in 30 days, one key and one model
//! per organization and day, so 30,000 daily buckets) and kept between runs; `usage_events` gets a btree index on
//! `ingested_at`, which the operational schema does not have yet (see docs/analytics.md).

use url::Url;

use super::paired::{Case, paired, seconds};
use super::{Context, verdict};
use crate::analytics_verify::{time_queries, write_config};
use crate::pg::psql;
use crate::{Result, cmd};

/// The end of the fixtures' window: fixed, so every run rolls up the same events.
const UNTIL: &str = "2025-11-15 00:00:00+00";
const EVENTS_PER_DAY: u64 = 10_000_000 / 30;
const ORGANIZATIONS: u64 = 1_000;
const MODELS: u64 = 40;
const LATE_EVENTS: u64 = 1_000;
const LATE_HOURS: u64 = 10;
/// Bumped when the fixture's SQL changes, so that stale fixtures are rebuilt.
const FIXTURE_VERSION: &str = "rollup fixture v3";
const FULL_RATIO_GOAL: f64 = 1.2;
const INCREMENTAL_GOAL_SECONDS: f64 = 0.5;
const QUERY_P95_GOAL_MS: f64 = 50.0;
const QUERY_RUNS: usize = 100;

pub fn run(ctx: &Context) -> Result {
    let config = write_config(&ctx.scratch)?;
    let long = fixture(ctx, 30)?;
    let short = fixture(ctx, 10)?;
    let dbops = |db: &Url, args: &[&str]| {
        let mut dbops = ctx.dbops(db);
        dbops.env("DBOPS_ROLLUP_CONFIG", &config).args(args);
        dbops
    };

    // 1. Full rebuild against the hand-written GROUP BY.
    let full = paired(
        ctx.rounds(3),
        Case::new(
            "INSERT ... SELECT ... GROUP BY (hour, organization, key, model)",
            || {
                cmd::output(psql::psql(&long).args([
                    "-c",
                    "TRUNCATE bench_hourly_baseline",
                    "-c",
                    "CHECKPOINT",
                ]))?;
                let mut psql = psql::psql(&long);
                psql.args(["-c", BASELINE_SQL]);
                Ok(psql)
            },
        ),
        Case::new(
            "dbops rollup run (first run: full rebuild, hourly + daily)",
            || {
                cmd::output(psql::psql(&long).args(["-c", RESET_ROLLUPS_SQL, "-c", "CHECKPOINT"]))?;
                Ok(dbops(&long, &["rollup", "run"]))
            },
        ),
    )?;
    let full_ratio = full.median_ratio();
    println!(
        "\n### Full hourly rollup of 10,000,000 events (1,000 organizations, 40 models, 30 days)\n\n{}",
        full.report()
    );
    println!(
        "goal: at most {FULL_RATIO_GOAL}x the hand-written GROUP BY: {}",
        verdict(full_ratio <= FULL_RATIO_GOAL)
    );

    // 2. Incremental runs after late events, at two history sizes.
    for db in [&short, &long] {
        cmd::output(&mut dbops(db, &["rollup", "run"]))?;
    }
    let incremental = paired(
        ctx.rounds(10),
        Case::new("dbops rollup run, 10-day history (3.3M events)", || {
            insert_late_events(&short)?;
            Ok(dbops(&short, &["rollup", "run"]))
        }),
        Case::new("dbops rollup run, 30-day history (10M events)", || {
            insert_late_events(&long)?;
            Ok(dbops(&long, &["rollup", "run"]))
        }),
    )?;
    let slowest = incremental
        .baseline
        .iter()
        .chain(&incremental.candidate)
        .map(|d| d.as_secs_f64())
        .fold(0.0, f64::max);
    let medians = [
        median_secs(&incremental.baseline),
        median_secs(&incremental.candidate),
    ];
    println!(
        "\n### Incremental run after {LATE_EVENTS} late events over {LATE_HOURS} hours, two history sizes\n\n{}",
        incremental.report()
    );
    println!(
        "goal: under {INCREMENTAL_GOAL_SECONDS} s at both sizes: {} (medians {} and {}, slowest round {})",
        verdict(medians.iter().all(|&m| m < INCREMENTAL_GOAL_SECONDS)),
        seconds(medians[0]),
        seconds(medians[1]),
        seconds(slowest)
    );

    // 3. The analytics queries on the 30-day rollups.
    cmd::output(psql::psql(&long).args([
        "-c",
        "VACUUM ANALYZE analytics.usage_hourly_rollups",
        "-c",
        "VACUUM ANALYZE analytics.usage_daily_rollups",
    ]))?;
    let timings = time_queries(&long, QUERY_RUNS)?;
    println!(
        "\n### Analytics queries on the 30-day rollups ({QUERY_RUNS} runs each, psql on loopback)\n"
    );
    println!("| query | median | P95 |\n|---|---|---|");
    for t in &timings {
        println!(
            "| `analytics/queries/{}.sql` | {:.2} ms | {:.2} ms |",
            t.name, t.median_ms, t.p95_ms
        );
    }
    println!(
        "\ngoal: P95 under {QUERY_P95_GOAL_MS} ms: {}",
        verdict(timings.iter().all(|t| t.p95_ms < QUERY_P95_GOAL_MS))
    );
    Ok(())
}

fn median_secs(times: &[std::time::Duration]) -> f64 {
    let secs: Vec<f64> = times.iter().map(|d| d.as_secs_f64()).collect();
    super::paired::median(&secs)
}

/// The hand-written rollup: the same buckets and sums, no histogram, no daily
/// rows; grouped in the primary key's order, as the engine's SQL is.
const BASELINE_SQL: &str = "INSERT INTO bench_hourly_baseline \
     SELECT date_trunc('hour', occurred_at, 'UTC'), organization_id, coalesce(api_key_id, 0), model_id, \
            count(*), count(*) FILTER (WHERE status <> 'ok'), sum(input_tokens), sum(output_tokens), \
            sum(cost_micros), sum(latency_ms), max(latency_ms) \
     FROM usage_events GROUP BY 2, 1, 3, 4";

/// Empties the rollups and forgets the watermark: the next run is a first run.
pub(super) const RESET_ROLLUPS_SQL: &str = "TRUNCATE analytics.usage_hourly_rollups, analytics.usage_daily_rollups, \
     analytics.rollup_dirty_buckets; DELETE FROM analytics.rollup_watermarks";

/// `days` days of events ending at [`UNTIL`], in a database kept between runs.
pub(super) fn fixture(ctx: &Context, days: u64) -> Result<Url> {
    let name = format!("xtask_bench_rollup_{days}d");
    let db = psql::database_url(&ctx.server, &name);
    let exists = psql::query(
        &ctx.server,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    )?;
    if exists.trim() == "1" {
        let version = psql::query(&db, "SELECT version FROM bench_fixture").unwrap_or_default();
        if version.trim() == FIXTURE_VERSION {
            eprintln!("bench: reusing fixture database {name}");
            return Ok(db);
        }
    }
    let events = EVENTS_PER_DAY * days;
    eprintln!(
        "bench: generating {events} events over {days} days in {name} (once; kept for later runs)"
    );
    let db = ctx.fresh_database(&name)?;
    cmd::output(ctx.dbops(&db).args(["migrate", "up", "--target", "all"]))?;
    let sql = format!(
        "SET TimeZone = 'UTC';
         DO $$ DECLARE day date; BEGIN
           FOR day IN SELECT d::date FROM generate_series(timestamptz '{UNTIL}' - interval '{days} days',
                                                          timestamptz '{UNTIL}' - interval '1 microsecond',
                                                          interval '1 day') AS d
           LOOP
             EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
                            'usage_events_p' || to_char(day, 'YYYYMMDD'), day || ' 00:00:00+00', (day + 1) || ' 00:00:00+00');
           END LOOP;
         END $$;
         INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, input_tokens,
                                   output_tokens, cost_micros, latency_ms, occurred_at, ingested_at)
         SELECT o, CASE WHEN o % 10 = 0 THEN NULL ELSE o END,
                1 + (o * 7 + floor(extract(epoch FROM t) / 86400)::int8) % {MODELS},
                gen_random_uuid(),
                CASE WHEN r % 50 = 0 THEN 'server_error' WHEN r % 97 = 0 THEN 'rate_limited' ELSE 'ok' END,
                20 + r % 3980, 1 + (r / 3980) % 1500,
                (20 + r % 3980) * 3 + (1 + (r / 3980) % 1500) * 15,
                (40 + exp((r % 1000) / 1000.0 * 5.5) * 20)::int,
                t, t + interval '2 seconds'
         FROM generate_series(0, {events} - 1) AS g,
              LATERAL (SELECT 1 + g % {ORGANIZATIONS} AS o, hashint8(g) & 2147483647 AS r,
                              timestamptz '{UNTIL}' - interval '{days} days' + g * (interval '{days} days' / {events}) AS t) AS x;
         CREATE INDEX IF NOT EXISTS usage_events_ingested_at_idx ON usage_events (ingested_at);
         ANALYZE usage_events;
         CREATE TABLE bench_hourly_baseline (
             hour_at timestamptz, organization_id bigint, api_key_id bigint, model_id bigint,
             request_count bigint, error_count bigint, input_tokens bigint, output_tokens bigint,
             cost_micros bigint, latency_ms_sum bigint, latency_ms_max integer,
             PRIMARY KEY (organization_id, hour_at, api_key_id, model_id));
         CREATE TABLE bench_fixture (version text);
         INSERT INTO bench_fixture VALUES ('{FIXTURE_VERSION}');"
    );
    cmd::output(psql::psql(&db).args(["-c", &sql]))?;
    Ok(db)
}

/// 1,000 events over 10 hours of the last 10 days (so within both
/// histories), one organization each (a bucket per event), ingested now.
pub(super) fn insert_late_events(db: &Url) -> Result {
    cmd::output(psql::psql(db).args([
        "-c",
        &format!(
            "INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, input_tokens,
                                       output_tokens, cost_micros, latency_ms, occurred_at)
             SELECT o, o, 1 + i % {MODELS}, gen_random_uuid(), 'ok', 100, 50, 1050, 200 + i % 700,
                    timestamptz '{UNTIL}' - ((i % {LATE_HOURS}) * 23 + 5) * interval '1 hour' + (i % 3600) * interval '1 second'
             FROM generate_series(0, {LATE_EVENTS} - 1) AS i, LATERAL (SELECT 1 + (i * 7) % {ORGANIZATIONS} AS o) AS x"
        ),
    ]))?;
    Ok(())
}
