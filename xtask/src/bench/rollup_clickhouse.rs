//! `cargo xtask bench rollup-clickhouse`: the usage rollups of the 10-million-event fixture of
//! `bench rollup` on the two-shard ClickHouse cluster of `cargo xtask clickhouse`, the four
//! figures of issue 15.
//!
//! 1. Full rebuild: `dbops rollup run --target clickhouse` with the target's tables emptied
//!    and its watermark forgotten (a first run), paired with the `local` target's full
//!    rebuild (`dbops rollup run` on emptied PostgreSQL rollups) in the same rounds. Goal: median
//!    ratio at most 1.3.
//! 2. Incremental run after 1,000 late events over 10 hours, paired with the `local` target's
//!    run after the same events. Goal: under 0.5 s.
//! 3. The three analytics queries of `analytics/queries/clickhouse/`, and each in the other way
//!    of reading one version per key (`rollup_clickhouse/NAME.sql`: `argMax` where the shipped
//!    query uses `FINAL` and the reverse, same answers), 100 runs each over HTTP on loopback
//!    (curl's `time_total`: connection, query and transfer). Goal: P95 under 50 ms.
//! 4. `dbops rollup reconcile --target clickhouse` over the 10M events, paired with the
//!    `local` target's reconcile: time recorded.
//!
//! The ClickHouse tables live in the database `xtask_bench_rollup` on the cluster, kept
//! between runs like the PostgreSQL fixture.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use url::Url;

use super::paired::{Case, median, paired, seconds};
use super::rollup::{RESET_ROLLUPS_SQL, fixture, insert_late_events};
use super::{Context, verdict};
use crate::analytics_verify::write_clickhouse_config;
use crate::pg::psql;
use crate::{Result, clickhouse, cmd, workspace};

const DATABASE: &str = "xtask_bench_rollup";
const FULL_RATIO_GOAL: f64 = 1.3;
const INCREMENTAL_GOAL_SECONDS: f64 = 0.5;
const QUERY_P95_GOAL_MS: f64 = 50.0;
const QUERY_RUNS: usize = 100;

pub fn run(ctx: &Context) -> Result {
    let servers = clickhouse::ensure()?;
    let result = measure(ctx, &servers.urls);
    let stopped = servers.stop_if_started();
    result.and(stopped)
}

fn measure(ctx: &Context, urls: &str) -> Result {
    let config = write_clickhouse_config(&ctx.scratch, DATABASE)?;
    let db = fixture(ctx, 30)?;
    let first = urls.split(',').next().unwrap_or_default().to_owned();
    let dbops = |args: &[&str]| {
        let mut dbops = ctx.dbops(&db);
        dbops
            .env("DBOPS_ROLLUP_CONFIG", &config)
            .env(clickhouse::URLS_ENV, urls)
            .args(args);
        dbops
    };
    cmd::output(&mut dbops(&["rollup", "migrate", "--target", "clickhouse"]))?;

    // 1. Full rebuild, ClickHouse against local.
    let full = paired(
        ctx.rounds(3),
        Case::new(
            "dbops rollup run (local: full rebuild, hourly + daily)",
            || {
                cmd::output(psql::psql(&db).args(["-c", RESET_ROLLUPS_SQL, "-c", "CHECKPOINT"]))?;
                Ok(dbops(&["rollup", "run"]))
            },
        ),
        Case::new(
            "dbops rollup run --target clickhouse (full rebuild, 2 shards)",
            || {
                reset_clickhouse(&db, urls)?;
                cmd::output(psql::psql(&db).args(["-c", "CHECKPOINT"]))?;
                Ok(dbops(&["rollup", "run", "--target", "clickhouse"]))
            },
        ),
    )?;
    println!(
        "\n### Full rebuild of 10,000,000 events into the two-shard cluster\n\n{}",
        full.report()
    );
    println!("{}", full.goal(FULL_RATIO_GOAL));

    // 2. Incremental runs after late events (both targets are caught up now).
    cmd::output(&mut dbops(&["rollup", "run"]))?;
    let incremental = paired(
        ctx.rounds(10),
        Case::new("dbops rollup run (local)", || {
            insert_late_events(&db)?;
            Ok(dbops(&["rollup", "run"]))
        }),
        Case::new("dbops rollup run --target clickhouse", || {
            insert_late_events(&db)?;
            Ok(dbops(&["rollup", "run", "--target", "clickhouse"]))
        }),
    )?;
    let slowest = incremental
        .candidate
        .iter()
        .map(|d| d.as_secs_f64())
        .fold(0.0, f64::max);
    let median_secs = incremental.candidate_median().as_secs_f64();
    println!(
        "\n### Incremental run after 1,000 late events over 10 hours (10M-event history)\n\n{}",
        incremental.report()
    );
    println!(
        "goal: under {INCREMENTAL_GOAL_SECONDS} s on ClickHouse: {} (median {}, slowest round {})",
        verdict(median_secs < INCREMENTAL_GOAL_SECONDS),
        seconds(median_secs),
        seconds(slowest)
    );
    // Each round added events to one target's queue only; catch both up.
    cmd::output(&mut dbops(&["rollup", "run"]))?;
    cmd::output(&mut dbops(&["rollup", "run", "--target", "clickhouse"]))?;

    // 3. The analytics queries, argMax (shipped) and FINAL.
    let params = psql::query(
        &db,
        "SELECT (SELECT organization_id FROM analytics.usage_daily_rollups GROUP BY 1 ORDER BY sum(request_count) DESC, 1 LIMIT 1), \
                (SELECT max(day) FROM analytics.usage_daily_rollups), \
                (SELECT to_char(max(hour_at) + interval '1 hour', 'YYYY-MM-DD HH24:MI:SS') FROM analytics.usage_hourly_rollups)",
    )?;
    let fields: Vec<&str> = params.trim().split('|').collect();
    let [organization, day, until] = fields[..] else {
        return Err(format!("unexpected query parameters: {params}").into());
    };
    let shipped = workspace::root().join("analytics/queries/clickhouse");
    let others = workspace::root().join("xtask/src/bench/rollup_clickhouse");
    println!(
        "\n### Analytics queries on the two-shard cluster ({QUERY_RUNS} runs each, HTTP on loopback)\n"
    );
    println!("| query | one version per key by | median | P95 |\n|---|---|---|---|");
    let mut shipped_p95 = Vec::new();
    for name in [
        "organization_daily_usage",
        "top_models_by_tokens",
        "key_error_ratio",
    ] {
        for (shipped_form, file) in [
            (true, shipped.join(format!("{name}.sql"))),
            (false, others.join(format!("{name}.sql"))),
        ] {
            let text = read_query(&file)?;
            let how = if text.contains(" FINAL") {
                "FINAL"
            } else {
                "argMax"
            };
            let sql = text
                .replace("{organization_id}", organization)
                .replace("{until_day}", day)
                .replace("{until_at}", until);
            let times = time_query(&first, &sql)?;
            let (median_ms, p95_ms) = (median(&times), p95(&times));
            let label = if shipped_form {
                shipped_p95.push(p95_ms);
                format!("{how} (shipped)")
            } else {
                how.to_owned()
            };
            println!("| `{name}` | {label} | {median_ms:.2} ms | {p95_ms:.2} ms |");
        }
    }
    println!(
        "\ngoal: P95 under {QUERY_P95_GOAL_MS} ms (shipped queries): {}",
        verdict(shipped_p95.iter().all(|&p| p < QUERY_P95_GOAL_MS))
    );

    // 4. Reconcile of the 10M events.
    let reconcile = paired(
        ctx.rounds(3),
        Case::new("dbops rollup reconcile (local)", || {
            Ok(dbops(&["rollup", "reconcile"]))
        }),
        Case::new("dbops rollup reconcile --target clickhouse", || {
            Ok(dbops(&["rollup", "reconcile", "--target", "clickhouse"]))
        }),
    )?;
    println!(
        "\n### Reconcile of 10,000,000 events, every (organization, hour)\n\n{}",
        reconcile.report()
    );
    Ok(())
}

/// Empties the target's tables on every server and forgets its watermark:
/// its next run is a first run.
fn reset_clickhouse(db: &Url, urls: &str) -> Result {
    for url in urls.split(',') {
        for table in ["usage_hourly_rollups_local", "usage_daily_rollups_local"] {
            post(url, &format!("TRUNCATE TABLE {DATABASE}.{table}"))?;
        }
    }
    psql::query(
        db,
        "DELETE FROM analytics.rollup_watermarks WHERE source_table = 'public.usage_events@clickhouse'",
    )?;
    Ok(())
}

/// The query of a file, its comment lines left out.
fn read_query(file: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    Ok(text
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn post(url: &str, sql: &str) -> Result<String> {
    cmd::read(Command::new("curl").args([
        "--silent",
        "--show-error",
        "--fail-with-body",
        "--data-binary",
        sql,
        url,
    ]))
}

/// `QUERY_RUNS` timings of `sql` in milliseconds, after one untimed run: curl's
/// `time_total`, which leaves out starting curl.
fn time_query(url: &str, sql: &str) -> Result<Vec<f64>> {
    let url = format!("{url}/?database={DATABASE}");
    post(&url, sql)?;
    let mut times = Vec::with_capacity(QUERY_RUNS);
    for _ in 0..QUERY_RUNS {
        let started = Instant::now();
        let out = cmd::read(Command::new("curl").args([
            "--silent",
            "--show-error",
            "--fail-with-body",
            "--output",
            "/dev/null",
            "--write-out",
            "%{time_total}",
            "--data-binary",
            sql,
            &url,
        ]))?;
        let seconds: f64 = out.trim().parse().map_err(|_| {
            format!(
                "curl printed {out:?} instead of a time (after {:?})",
                started.elapsed()
            )
        })?;
        times.push(seconds * 1000.0);
    }
    Ok(times)
}

/// The 95th percentile by the nearest-rank rule.
fn p95(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() as f64 * 0.95).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
