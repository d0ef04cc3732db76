//! The four operational queries of the platform on 10 million usage events of 1,000 organizations: latency (P50, P95) and plans.
//!
//! Run with `DB_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p dbops-benches --bench operational_queries`.
//! The first run creates the database `dbops_bench_operational`, applies the
//! operational migrations and seeds it (about a minute for 10 million
//! events; `BENCH_EVENTS` sets another count); later runs reuse it, because
//! seeding is idempotent. Besides criterion's estimates, each query's P50 and
//! P95 over every timed execution and its `EXPLAIN (ANALYZE, BUFFERS)` plan
//! are printed at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seeder::analytics::{AnalyticsConfig, seed_analytics};
use seeder::api_key::{self, ApiKeySecret, Keyring, NewApiKey, Pepper};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

const DATABASE: &str = "dbops_bench_operational";
const DEFAULT_EVENTS: u64 = 10_000_000;
const ORGANIZATIONS: usize = 1_000;
const DAYS: u32 = 30;
/// The end of the seeded window: "now" for the queries, fixed so that the
/// database can be reused from run to run.
const UNTIL: OffsetDateTime = datetime!(2025-11-15 00:00 UTC);
const PEPPER: &[u8] = b"bench pepper: not a secret, only for a throwaway database";
/// Keys issued by the benchmark itself, so that it knows their secrets.
const BENCH_KEYS: usize = 200;

const KEY_LOOKUP: &str = "SELECT id, organization_id, key_hash, scopes, expires_at, revoked_at \
                          FROM api_keys WHERE key_prefix = $1";
const ORG_LAST_24H: &str = "SELECT count(*), count(*) FILTER (WHERE status <> 'ok'), \
                                   coalesce(sum(input_tokens), 0)::int8, coalesce(sum(output_tokens), 0)::int8, \
                                   coalesce(sum(cost_micros), 0)::int8 \
                            FROM usage_events \
                            WHERE organization_id = $1 AND occurred_at >= $2::timestamptz - interval '24 hours' \
                              AND occurred_at < $2::timestamptz";
const USER_RECENT_50: &str = "SELECT id, occurred_at, model_id, status, input_tokens, output_tokens, cost_micros, latency_ms \
                              FROM usage_events WHERE user_id = $1 ORDER BY occurred_at DESC LIMIT 50";
/// A monthly budget, the longest period: the sum over the month so far.
const KEY_BUDGET: &str = "SELECT coalesce(sum(cost_micros), 0)::int8, \
                                 coalesce(sum(input_tokens::int8 + output_tokens), 0)::int8 \
                          FROM usage_events \
                          WHERE api_key_id = $1 AND occurred_at >= $2::timestamptz - interval '30 days' \
                            AND occurred_at < $2::timestamptz";

/// What the queries are run with, drawn once.
struct Fixture {
    client: Client,
    /// The four queries, prepared once as a service would.
    statements: [Statement; 4],
    keys: Vec<ApiKeySecret>,
    organizations: Vec<i64>,
    users: Vec<i64>,
    api_keys: Vec<i64>,
    pepper: Pepper,
}

fn server_url() -> String {
    std::env::var("DB_URL").expect("DB_URL must name a PostgreSQL server (any database on it)")
}

fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("DB_URL looks like postgres://user@host:port/database");
    format!("{base}/{database}")
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connecting to the benchmark database");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn prepare() -> Fixture {
    let server = server_url();
    let admin = connect(&server).await;
    let exists: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)",
            &[&DATABASE],
        )
        .await
        .unwrap()
        .get(0);
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .unwrap();
    }
    let url = with_database(&server, DATABASE);
    let client = connect(&url).await;
    let migrated: bool = client
        .query_one("SELECT to_regclass('usage_events') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    if !migrated {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/operational");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.to_string_lossy().ends_with(".up.sql"))
            .collect();
        files.sort();
        for file in files {
            client
                .batch_execute(&std::fs::read_to_string(&file).unwrap())
                .await
                .unwrap();
        }
    }

    let pepper = Pepper::new(PEPPER.to_vec()).unwrap();
    let keyring = Keyring::single(api_key::DEFAULT_PEPPER_ID, pepper.clone()).unwrap();
    let events = std::env::var("BENCH_EVENTS").map_or(DEFAULT_EVENTS, |n| {
        n.parse().expect("BENCH_EVENTS is a number")
    });
    let config = AnalyticsConfig {
        seed: 1,
        events,
        days: DAYS,
        organizations: ORGANIZATIONS,
        late_share: 0.02,
        until: Some(UNTIL),
        streams: 2,
        progress: true,
    };
    let report = seed_analytics(&url.parse().unwrap(), &config, &keyring)
        .await
        .expect("seeding the benchmark database");
    if report.events_loaded > 0 {
        eprintln!(
            "seeded {} events in {:.1} s; vacuuming",
            report.events_loaded,
            report.load_time.as_secs_f64()
        );
        // Sets the visibility map, as autovacuum would on a live system, so
        // that index-only scans skip the heap.
        client
            .batch_execute("VACUUM (ANALYZE) usage_events")
            .await
            .unwrap();
    }

    let ids = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<_, i64>(0))
                .collect::<Vec<i64>>()
        }
    };
    let organizations = ids("SELECT id FROM organizations ORDER BY id").await;
    let users = ids("SELECT id FROM users ORDER BY id").await;
    let api_keys = ids("SELECT id FROM api_keys ORDER BY id").await;

    // Keys with known secrets, issued through the one path that stores keys.
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let new_keys: Vec<NewApiKey> = (0..BENCH_KEYS)
        .map(|i| NewApiKey {
            organization_id: organizations[i % organizations.len()],
            user_id: None,
            name: format!("bench key {i}"),
            scopes: vec!["inference".to_owned()],
            created_at: UNTIL - time::Duration::days(60),
            expires_at: None,
            secret: api_key::generate(&mut rng),
        })
        .collect();
    api_key::insert(&client, &keyring, &new_keys).await.unwrap();
    let keys = new_keys.into_iter().map(|k| k.secret).collect();

    let mut statements = Vec::new();
    for sql in [KEY_LOOKUP, ORG_LAST_24H, USER_RECENT_50, KEY_BUDGET] {
        statements.push(client.prepare(sql).await.unwrap());
    }
    let statements = statements.try_into().expect("four statements");
    Fixture {
        client,
        statements,
        keys,
        organizations,
        users,
        api_keys,
        pepper,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1_000.0)
}

async fn explain(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> String {
    client
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}"),
            params,
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The queries measured.
#[derive(Debug, Clone, Copy)]
enum Query {
    ApiKeyLookupAndVerify,
    OrganizationUsageLast24h,
    UserRecent50Events,
    ApiKeyMonthlyBudgetCheck,
}

impl Query {
    const ALL: [Query; 4] = [
        Query::ApiKeyLookupAndVerify,
        Query::OrganizationUsageLast24h,
        Query::UserRecent50Events,
        Query::ApiKeyMonthlyBudgetCheck,
    ];

    fn name(self) -> &'static str {
        match self {
            Query::ApiKeyLookupAndVerify => "api_key_lookup_and_verify",
            Query::OrganizationUsageLast24h => "organization_usage_last_24h",
            Query::UserRecent50Events => "user_recent_50_events",
            Query::ApiKeyMonthlyBudgetCheck => "api_key_monthly_budget_check",
        }
    }

    /// Runs the query once, for the `n`-th candidate of a fixed pseudo-random
    /// walk over the keys, organizations, users or API keys.
    async fn run(self, f: &Fixture, n: u64) {
        let pick = |len: usize| (n.wrapping_mul(2_654_435_761) >> 7) as usize % len;
        match self {
            Query::ApiKeyLookupAndVerify => {
                let key = &f.keys[pick(f.keys.len())];
                let prefix = api_key::parse_prefix(key.expose()).expect("a well-formed key");
                let row = f
                    .client
                    .query_one(&f.statements[0], &[&prefix])
                    .await
                    .unwrap();
                assert!(api_key::verify(
                    &f.pepper,
                    key.expose(),
                    row.get::<_, &[u8]>(2)
                ));
            }
            Query::OrganizationUsageLast24h => {
                let org = f.organizations[pick(f.organizations.len())];
                f.client
                    .query_one(&f.statements[1], &[&org, &UNTIL])
                    .await
                    .unwrap();
            }
            Query::UserRecent50Events => {
                let user = f.users[pick(f.users.len())];
                f.client.query(&f.statements[2], &[&user]).await.unwrap();
            }
            Query::ApiKeyMonthlyBudgetCheck => {
                let key = f.api_keys[pick(f.api_keys.len())];
                f.client
                    .query_one(&f.statements[3], &[&key, &UNTIL])
                    .await
                    .unwrap();
            }
        }
    }
}

fn operational_queries(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let fixture = runtime.block_on(prepare());
    let mut results: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut group = c.benchmark_group("operational_queries");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    for query in Query::ALL {
        let mut samples = Vec::new();
        let mut n = 0;
        group.bench_function(query.name(), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    n += 1;
                    let started = Instant::now();
                    runtime.block_on(query.run(&fixture, n));
                    let elapsed = started.elapsed();
                    samples.push(elapsed);
                    total += elapsed;
                }
                total
            })
        });
        results.push((query.name(), samples));
    }
    group.finish();

    println!("\n| query | executions | P50 | P95 |\n|---|---|---|---|");
    for (name, samples) in &results {
        let mut sorted = samples.clone();
        sorted.sort();
        if sorted.is_empty() {
            continue;
        }
        println!(
            "| {name} | {} | {} | {} |",
            sorted.len(),
            millis(percentile(&sorted, 0.5)),
            millis(percentile(&sorted, 0.95))
        );
    }

    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let f = &fixture;
    let prefix = f.keys[0].prefix().to_owned();
    let org = f.organizations[rng.random_range(0..f.organizations.len())];
    let user = f.users[rng.random_range(0..f.users.len())];
    let key = f.api_keys[rng.random_range(0..f.api_keys.len())];
    runtime.block_on(async {
        for (name, sql, params) in [
            (
                "api_key_lookup_and_verify",
                KEY_LOOKUP,
                vec![&prefix as &(dyn ToSql + Sync)],
            ),
            (
                "organization_usage_last_24h",
                ORG_LAST_24H,
                vec![&org as _, &UNTIL as _],
            ),
            ("user_recent_50_events", USER_RECENT_50, vec![&user as _]),
            (
                "api_key_monthly_budget_check",
                KEY_BUDGET,
                vec![&key as _, &UNTIL as _],
            ),
        ] {
            println!(
                "\n#### {name}\n\n```\n{}\n```",
                explain(&f.client, sql, &params).await
            );
        }
    });
}

criterion_group!(benches, operational_queries);
criterion_main!(benches);
