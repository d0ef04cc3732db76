//! `cargo xtask analytics-verify`: seed usage events with late arrivals, roll them up on both
//! targets, run the assertions and the reconciliation (and prove a corrupted row is caught),
//! and time the analytics queries; non-zero exit on any failure.
//!
//! The rollup cycle ([`Verify::rollup_cycle`]) is shared with the analytics step of
//! `cargo xtask smoke`, which runs it on the smoke database.

use std::path::{Path, PathBuf};
use std::process::Command;

use url::Url;

use crate::flags::Args;
use crate::pg::{self, psql};
use crate::workspace::{self, Profile};
use crate::{Result, cmd};

/// `CHECK_FAILED` in crates/dbops/src/exit_code.rs.
const CHECK_FAILED: i32 = 15;
/// The task list's bar for the analytics queries (the goal is 50 ms, measured
/// by `cargo xtask bench rollup` on 10 million events).
const QUERY_P95_LIMIT_MS: f64 = 2_000.0;
/// Executions of each analytics query.
const QUERY_RUNS: usize = 50;
/// Late events inserted between the first and the second run.
const LATE_EVENTS: u32 = 1_000;
/// A throwaway pepper: the databases are dropped afterwards.
const PEPPER: &str = "analytics-verify pepper: not a secret, only for throwaway databases";

/// `cargo xtask analytics-verify [--events N] [--keep]`.
pub fn task(args: &mut Args) -> Result {
    let events = args.count("--events")?.unwrap_or(200_000);
    let keep = args.flag("--keep");
    std::mem::replace(args, Args::new(Vec::new())).finish()?;
    let server = pg::ensure()?;
    let dbops = workspace::build_dbops(Profile::Dev)?;
    let db = psql::create_fresh_database(&server, "xtask_analytics")?;
    let warehouse = psql::create_fresh_database(&server, "xtask_analytics_wh")?;
    eprintln!(
        "analytics-verify: operational {}, warehouse {}",
        psql::redacted(&db),
        psql::redacted(&warehouse)
    );
    let scratch = workspace::target_dir().join("analytics-verify");
    let verify = Verify {
        dbops: &dbops,
        db: &db,
        warehouse: &warehouse,
        config: write_config(&scratch)?,
        record: &|_| {},
    };
    let outcome = (|| -> Result {
        verify.run(&db, &["migrate", "up", "--target", "all"])?;
        let mut seed = verify.dbops(&db);
        seed.env("DBOPS_API_KEY_PEPPER", PEPPER).args([
            "seed",
            "analytics",
            "--events",
            &events.to_string(),
            "--days",
            "7",
            "--orgs",
            "100",
            "--late-share",
            "0.05",
        ]);
        cmd::run(&mut seed)?;
        verify.rollup_cycle()?;
        let timings = time_queries(&db, QUERY_RUNS)?;
        println!(
            "\nanalytics queries on {events} events, {QUERY_RUNS} runs each (goal P95 < 50 ms, bar {QUERY_P95_LIMIT_MS} ms):"
        );
        let mut slow = Vec::new();
        for t in &timings {
            println!(
                "  {:<28} median {:>8.2} ms   P95 {:>8.2} ms",
                t.name, t.median_ms, t.p95_ms
            );
            if t.p95_ms > QUERY_P95_LIMIT_MS {
                slow.push(t.name);
            }
        }
        if slow.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "queries over the {QUERY_P95_LIMIT_MS} ms P95 bar: {}",
                slow.join(", ")
            )
            .into())
        }
    })();
    match outcome {
        Ok(()) if !keep => {
            psql::drop_database(&server, psql::database_name(&db))?;
            psql::drop_database(&server, psql::database_name(&warehouse))?;
            println!("analytics-verify: all checks passed");
            Ok(())
        }
        Ok(()) => {
            println!("analytics-verify: all checks passed; databases kept (--keep)");
            Ok(())
        }
        Err(e) => {
            eprintln!("analytics-verify: databases kept for a look");
            Err(e)
        }
    }
}

/// One verification: `dbops` against an operational database that holds
/// events, and a second database for the warehouse target.
pub struct Verify<'a> {
    /// The `dbops` binary.
    pub dbops: &'a Path,
    /// The operational database (DB_URL), with seeded events.
    pub db: &'a Url,
    /// An empty database for the warehouse target.
    pub warehouse: &'a Url,
    /// A rollup configuration with no safety lag, from [`write_config`].
    pub config: PathBuf,
    /// Called with the arguments of every `dbops` command that ran successfully.
    pub record: &'a dyn Fn(&[&str]),
}

impl Verify<'_> {
    /// `dbops` with DB_URL at the operational database and ANALYTICS_URL at `analytics`.
    fn dbops(&self, analytics: &Url) -> Command {
        let mut dbops = Command::new(self.dbops);
        dbops
            .current_dir(workspace::root())
            .env("DB_URL", self.db.as_str())
            .env("ANALYTICS_URL", analytics.as_str())
            .env("DBOPS_ROLLUP_CONFIG", &self.config);
        dbops
    }

    fn run(&self, analytics: &Url, args: &[&str]) -> Result {
        cmd::run(self.dbops(analytics).args(args))?;
        (self.record)(args);
        Ok(())
    }

    /// Runs `dbops ARGS` and fails unless it exits with `code`.
    fn expect_exit(&self, analytics: &Url, args: &[&str], code: i32) -> Result {
        let mut dbops = self.dbops(analytics);
        dbops.args(args);
        eprintln!("$ {}  (expecting exit code {code})", cmd::display(&dbops));
        let output = dbops
            .output()
            .map_err(|e| format!("cannot start `{}`: {e}", cmd::display(&dbops)))?;
        if output.status.code() == Some(code) {
            print!("{}", String::from_utf8_lossy(&output.stdout));
            Ok(())
        } else {
            Err(format!(
                "expected exit code {code}: {}",
                cmd::failure(&dbops, &output)
            )
            .into())
        }
    }

    /// The rollup cycle on a database with events and the analytics schema:
    /// a first run (a full rebuild), late events and an incremental run,
    /// assertions and reconciliation; then the warehouse target in the second
    /// database, a corrupted rollup row that reconciliation must catch, its
    /// repair, and the run log.
    pub fn rollup_cycle(&self) -> Result {
        let (db, warehouse) = (self.db, self.warehouse);
        self.run(db, &["rollup", "run"])?;
        insert_late_events(db, LATE_EVENTS)?;
        self.run(db, &["rollup", "run"])?;
        let queued = psql::query(db, "SELECT count(*) FROM analytics.rollup_dirty_buckets")?;
        expect(
            queued.trim() == "0",
            "the incremental run left nothing queued",
            &queued,
        )?;
        self.run(db, &["rollup", "check"])?;
        self.run(db, &["rollup", "reconcile"])?;

        self.run(warehouse, &["migrate", "up", "--target", "analytics"])?;
        self.run(warehouse, &["rollup", "run", "--target", "warehouse"])?;
        self.run(warehouse, &["rollup", "check", "--target", "warehouse"])?;
        self.run(warehouse, &["rollup", "reconcile", "--target", "warehouse"])?;

        // Reconciliation is not vacuous: a damaged row is reported, and
        // recomputing its hour repairs it.
        let damaged = psql::query(
            warehouse,
            "UPDATE analytics.usage_hourly_rollups SET input_tokens = input_tokens + 1 \
             WHERE (organization_id, hour_at, api_key_id, model_id) = \
                   (SELECT organization_id, hour_at, api_key_id, model_id FROM analytics.usage_hourly_rollups \
                    ORDER BY hour_at DESC, organization_id LIMIT 1) \
             RETURNING to_char(hour_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00:00Z')",
        )?;
        let hour = damaged.trim().to_owned();
        expect(!hour.is_empty(), "a rollup row to damage", &damaged)?;
        self.expect_exit(
            warehouse,
            &["rollup", "reconcile", "--target", "warehouse"],
            CHECK_FAILED,
        )?;
        let until = psql::query(
            warehouse,
            &format!(
                "SELECT to_char(timestamptz '{hour}' + interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            ),
        )?;
        self.run(
            warehouse,
            &[
                "rollup",
                "run",
                "--target",
                "warehouse",
                "--recompute-from",
                &hour,
                "--recompute-to",
                until.trim(),
            ],
        )?;
        self.run(warehouse, &["rollup", "reconcile", "--target", "warehouse"])?;
        self.run(db, &["rollup", "status"])?;
        Ok(())
    }
}

/// Writes the shipped rollup configuration with no safety lag (events
/// inserted a moment ago are rolled up at once) and an absolute assertions
/// path, and returns its path.
pub fn write_config(dir: &Path) -> Result<PathBuf> {
    let root = workspace::root();
    let shipped = root.join("analytics/transforms/config.toml");
    let text = std::fs::read_to_string(&shipped)
        .map_err(|e| format!("reading {}: {e}", shipped.display()))?;
    let assertions = root.join("analytics/tests/hourly_rollup.toml");
    let clickhouse_assertions = root.join("analytics/tests/clickhouse/hourly_rollup.toml");
    let mut out = String::new();
    for line in text.lines() {
        let line = if line.starts_with("safety_lag") {
            "safety_lag = \"0s\"".to_owned()
        } else if line.starts_with("assertions") {
            format!("assertions = {:?}", assertions.display().to_string())
        } else if line.starts_with("clickhouse_assertions") {
            format!(
                "clickhouse_assertions = {:?}",
                clickhouse_assertions.display().to_string()
            )
        } else {
            line.to_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join("rollup-config.toml");
    std::fs::write(&path, out).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// [`write_config`], with the `clickhouse` target's rollups in the
/// ClickHouse database `database` instead of the shipped one.
pub fn write_clickhouse_config(dir: &Path, database: &str) -> Result<PathBuf> {
    let config = write_config(dir)?;
    let text = std::fs::read_to_string(&config)
        .map_err(|e| format!("reading {}: {e}", config.display()))?;
    let shipped = "database = \"dbops_analytics\"";
    if !text.contains(shipped) {
        return Err(format!("{} has no `{shipped}` to replace", config.display()).into());
    }
    std::fs::write(
        &config,
        text.replace(shipped, &format!("database = \"{database}\"")),
    )
    .map_err(|e| format!("writing {}: {e}", config.display()))?;
    Ok(config)
}

/// Inserts `count` copies of existing events, each moved two hours earlier
/// (ten or more hours touched) and ingested now: late arrivals.
pub fn insert_late_events(db: &Url, count: u32) -> Result {
    eprintln!("$ psql: insert {count} late events");
    psql::query(
        db,
        &format!(
            "INSERT INTO usage_events (organization_id, user_id, api_key_id, model_id, request_id, status, \
                                       input_tokens, output_tokens, cost_micros, latency_ms, occurred_at) \
             SELECT organization_id, user_id, api_key_id, model_id, gen_random_uuid(), status, input_tokens, \
                    output_tokens, cost_micros, latency_ms, occurred_at - interval '2 hours' \
             FROM usage_events TABLESAMPLE SYSTEM (50) REPEATABLE (7) LIMIT {count}"
        ),
    )?;
    Ok(())
}

/// The timings of one analytics query.
#[derive(Debug)]
pub struct QueryTiming {
    /// The query file's name.
    pub name: &'static str,
    /// Median, in milliseconds.
    pub median_ms: f64,
    /// 95th percentile, in milliseconds.
    pub p95_ms: f64,
}

/// Runs each query of `analytics/queries/` `runs` times in one `psql`
/// session (server time plus a loopback round trip) and returns the
/// median and P95, on the newest data of the rollups database `db`.
pub fn time_queries(db: &Url, runs: usize) -> Result<Vec<QueryTiming>> {
    let params = psql::query(
        db,
        "SELECT (SELECT organization_id FROM analytics.usage_daily_rollups GROUP BY 1 ORDER BY sum(request_count) DESC, 1 LIMIT 1), \
                (SELECT max(day) FROM analytics.usage_daily_rollups), \
                (SELECT to_char(max(hour_at) + interval '1 hour', 'YYYY-MM-DD HH24:MI:SS+00') FROM analytics.usage_hourly_rollups)",
    )?;
    let fields: Vec<&str> = params.trim().split('|').collect();
    let [organization, day, until] = fields[..] else {
        return Err(format!("unexpected query parameters: {params}").into());
    };
    let queries = workspace::root().join("analytics/queries");
    let mut timings = Vec::new();
    for name in [
        "organization_daily_usage",
        "top_models_by_tokens",
        "key_error_ratio",
    ] {
        let file = queries.join(format!("{name}.sql"));
        let mut script = String::from("\\timing on\n\\o /dev/null\n");
        for _ in 0..runs {
            script.push_str(&format!("\\i '{}'\n", file.display()));
        }
        let path = workspace::target_dir().join(format!("analytics-queries-{name}.psql"));
        std::fs::write(&path, &script).map_err(|e| format!("writing {}: {e}", path.display()))?;
        let mut psql = psql::psql(db);
        psql.args([
            "-v",
            &format!("organization_id={organization}"),
            "-v",
            &format!("until_day={day}"),
        ])
        .args(["-v", &format!("until_at={until}"), "-f"])
        .arg(&path);
        let output = cmd::read(&mut psql)?;
        let mut times: Vec<f64> = output
            .lines()
            .filter_map(|line| line.strip_prefix("Time: "))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect();
        if times.len() != runs {
            return Err(format!("{name}: expected {runs} timings, psql printed:\n{output}").into());
        }
        times.sort_by(f64::total_cmp);
        timings.push(QueryTiming {
            name,
            median_ms: times[runs / 2],
            p95_ms: times[(runs * 95).div_ceil(100) - 1],
        });
    }
    Ok(timings)
}

fn expect(holds: bool, what: &str, output: &str) -> Result {
    if holds {
        Ok(())
    } else {
        Err(format!("expected: {what}; got:\n{output}").into())
    }
}
