//! The analytics queries on the two-shard cluster give the answers the PostgreSQL queries give
//! on the `local` target's rollups of the same events, with late events rewritten by later
//! runs (several versions of a row on the cluster).

mod support;

use rollup_clickhouse::queries::Query;
use rollup_engine::config::EngineSettings;
use rollup_engine::run::{RunMode, RunOptions};
use support::{drop_database, root, setup};
use time::macros::{date, datetime};
use tokio_postgres::{Client, SimpleQueryMessage};

fn settings() -> EngineSettings {
    EngineSettings {
        safety_lag: std::time::Duration::ZERO,
        max_batch_buckets: 7,
        ..EngineSettings::default()
    }
}

/// Events of 12 organizations over 9 days (ten of its hours each), keys with
/// and without an API key, three models, errors, and latencies from 0 ms to
/// 20 s, ingested now.
async fn insert_events(source: &Client, count: i32, seed: i32) {
    source
        .execute(
            "INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, \
             input_tokens, output_tokens, cost_micros, latency_ms, occurred_at) \
             SELECT 1 + (i * 7 + $2) % 12, nullif((i + $2) % 4, 0), 20 + (i * 3 + $2) % 3, \
                    gen_random_uuid(), \
                    CASE WHEN (i * 5 + $2) % 9 = 0 THEN 'server_error' \
                         WHEN (i + $2) % 13 = 0 THEN 'rate_limited' ELSE 'ok' END, \
                    (i * 31 + $2) % 4000, (i * 17) % 1500, (i * 11 + $2) % 90000, \
                    CASE WHEN i % 50 = 0 THEN 0 ELSE (i * i + $2) % 20000 END, \
                    timestamptz '2025-11-08 00:00+00' + ((i * 37 + $2) % 9) * interval '1 day' \
                      + ((i + $2) % 10) * interval '1 hour' + (i % 3600) * interval '1 second' \
             FROM generate_series(1, $1) AS i",
            &[&count, &seed],
        )
        .await
        .unwrap();
}

/// The rows a PostgreSQL query file prints, its psql variables bound to `values`.
async fn postgres_rows(client: &Client, name: &str, values: &[(&str, &str)]) -> Vec<Vec<String>> {
    let mut sql =
        std::fs::read_to_string(root().join(format!("analytics/queries/{name}.sql"))).unwrap();
    for (variable, value) in values {
        sql = sql.replace(&format!(":'{variable}'"), &format!("'{value}'"));
    }
    client
        .simple_query(&sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Whether two rows hold the same values: numbers compared as numbers
/// (PostgreSQL prints 0.5000 where ClickHouse prints 0.5).
fn same(postgres: &[Vec<String>], clickhouse: &[Vec<String>]) -> bool {
    postgres.len() == clickhouse.len()
        && postgres.iter().zip(clickhouse).all(|(p, c)| {
            p.len() == c.len()
                && p.iter().zip(c).all(|(a, b)| {
                    a == b
                        || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
                })
        })
}

#[tokio::test]
async fn the_three_queries_answer_as_on_postgresql_with_several_versions_of_rows() {
    let (db, source, ch) = setup().await;
    let mut rollups = db.connect().await;

    let local = RunOptions {
        target: "local".into(),
        mode: RunMode::Incremental,
    };
    // A first run, then two rounds of late events in buckets already
    // written: the cluster holds up to three versions of some rows.
    for (count, seed) in [(4000, 1), (700, 2), (300, 3)] {
        insert_events(&source, count, seed).await;
        rollup_engine::run::run(&source, &mut rollups, &settings(), &local)
            .await
            .unwrap();
        rollup_clickhouse::run::run(&ch, &source, &rollups, &settings(), RunMode::Incremental)
            .await
            .unwrap();
    }
    let versions: String = ch
        .query(
            0,
            "SELECT max(c) FROM (SELECT count() AS c FROM usage_hourly_rollups \
             GROUP BY organization_id, hour_at, api_key_id, model_id) FORMAT TabSeparated",
            "counting versions",
        )
        .await
        .unwrap();
    assert!(versions.trim().parse::<u32>().unwrap() >= 2, "{versions}");

    let mut checked = 0;
    for organization_id in [1_i64, 5, 12] {
        for until_day in [date!(2025 - 11 - 12), date!(2025 - 11 - 16)] {
            let until_text = until_day.to_string();
            let organization_text = organization_id.to_string();
            for (query, values) in [
                (
                    Query::OrganizationDailyUsage {
                        organization_id,
                        until_day,
                    },
                    vec![
                        ("organization_id", organization_text.as_str()),
                        ("until_day", until_text.as_str()),
                    ],
                ),
                (
                    Query::TopModelsByTokens { until_day },
                    vec![("until_day", until_text.as_str())],
                ),
            ] {
                let expected = postgres_rows(&source, query.name(), &values).await;
                assert_same(&ch, query, &expected).await;
                checked += 1;
            }
        }
    }
    for until_at in [
        datetime!(2025-11-10 05:00 UTC),
        datetime!(2025-11-16 10:00 UTC),
        datetime!(2025-11-13 00:30 UTC),
    ] {
        let query = Query::KeyErrorRatio { until_at };
        let expected = postgres_rows(
            &source,
            query.name(),
            &[(
                "until_at",
                &format!(
                    "{} {:02}:{:02}:00+00",
                    until_at.date(),
                    until_at.hour(),
                    until_at.minute()
                ),
            )],
        )
        .await;
        assert_same(&ch, query, &expected).await;
        checked += 1;
    }
    assert_eq!(checked, 15);
    drop_database(&ch).await;
}

/// Asserts that `query` answers on ClickHouse what PostgreSQL answered.
async fn assert_same(ch: &rollup_clickhouse::ClickHouse, query: Query, expected: &[Vec<String>]) {
    let seen: Vec<Vec<String>> = query
        .run(ch)
        .await
        .unwrap()
        .lines()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect();
    assert!(!expected.is_empty(), "{query:?}");
    assert!(
        same(expected, &seen),
        "{query:?}\nPostgreSQL: {expected:?}\nClickHouse: {seen:?}"
    );
}
