//! Shared set-up of the rollup tests: databases for both targets, and events to roll up.
// Each test binary (rollups, guards) uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use rollup_engine::check::Assertions;
use rollup_engine::config::EngineSettings;
use rollup_engine::run::{RunMode, RunOptions, RunReport};
use testdb::TestDb;
use time::OffsetDateTime;
use tokio_postgres::Client;

/// The operational database and the database holding the rollups: the same
/// for the `local` target, two for `warehouse`.
pub struct Databases {
    pub source_db: TestDb,
    pub warehouse_db: Option<TestDb>,
    pub source: Client,
    pub rollups: Client,
    pub target: &'static str,
}

fn migrations(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(target)
}

impl Databases {
    /// Rollups in the operational database.
    pub async fn local() -> Databases {
        let source_db = TestDb::new().await;
        source_db.apply_up_files(&migrations("operational")).await;
        source_db.apply_up_files(&migrations("analytics")).await;
        let source = source_db.connect().await;
        let rollups = source_db.connect().await;
        Databases {
            source_db,
            warehouse_db: None,
            source,
            rollups,
            target: "local",
        }
    }

    /// Rollups in a second database.
    pub async fn warehouse() -> Databases {
        let source_db = TestDb::new().await;
        source_db.apply_up_files(&migrations("operational")).await;
        let warehouse_db = TestDb::new().await;
        warehouse_db.apply_up_files(&migrations("analytics")).await;
        let source = source_db.connect().await;
        let rollups = warehouse_db.connect().await;
        Databases {
            source_db,
            warehouse_db: Some(warehouse_db),
            source,
            rollups,
            target: "warehouse",
        }
    }

    /// A second pair of connections, for a concurrent run.
    pub async fn connect_again(&self) -> (Client, Client) {
        let rollups_db = self.warehouse_db.as_ref().unwrap_or(&self.source_db);
        (self.source_db.connect().await, rollups_db.connect().await)
    }

    pub async fn run(&mut self) -> RunReport {
        self.run_mode(RunMode::Incremental).await
    }

    pub async fn run_mode(&mut self, mode: RunMode) -> RunReport {
        let options = RunOptions {
            target: self.target.to_owned(),
            mode,
        };
        rollup_engine::run::run(&self.source, &mut self.rollups, &settings(), &options)
            .await
            .expect("rollup run")
    }

    /// Inserts events; `ingested_at` is left to its default, now().
    pub async fn insert(&self, events: &[Event]) {
        insert(&self.source, events).await;
    }

    /// The hourly rows as a GROUP BY over the events would give them (without
    /// histograms), and as the rollups hold them, both sorted.
    pub async fn hourly_expected_and_actual(&self) -> (Vec<String>, Vec<String>) {
        self.hourly_expected_without(&[]).await
    }

    /// [`Databases::hourly_expected_and_actual`], the events `excluded`
    /// left out of the GROUP BY.
    pub async fn hourly_expected_without(&self, excluded: &[i64]) -> (Vec<String>, Vec<String>) {
        let list: Vec<String> = excluded.iter().map(i64::to_string).collect();
        let expected = rows_as_text(
            &self.source,
            &format!(
                "SELECT date_trunc('hour', occurred_at, 'UTC'), organization_id, coalesce(api_key_id, 0), model_id, \
                 count(*), count(*) FILTER (WHERE status <> 'ok'), sum(input_tokens), sum(output_tokens), sum(cost_micros), \
                 sum(latency_ms), max(latency_ms) FROM usage_events WHERE id <> ALL ('{{{}}}'::bigint[]) \
                 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
                list.join(",")
            ),
        )
        .await;
        let actual = rows_as_text(
            &self.rollups,
            "SELECT hour_at, organization_id, api_key_id, model_id, request_count, error_count, input_tokens, \
             output_tokens, cost_micros, latency_ms_sum, latency_ms_max FROM analytics.usage_hourly_rollups ORDER BY 1, 2, 3, 4",
        )
        .await;
        (expected, actual)
    }

    /// Asserts that the hourly rollups equal a GROUP BY over the events.
    pub async fn assert_hourly_exact(&self) {
        let (expected, actual) = self.hourly_expected_and_actual().await;
        assert!(!expected.is_empty());
        assert_eq!(expected, actual);
    }
}

/// The assertions `dbops rollup check` runs.
pub fn shipped_assertions() -> Assertions {
    Assertions::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../analytics/tests/hourly_rollup.toml"),
    )
    .unwrap()
}

pub fn settings() -> EngineSettings {
    // No lag: the tests' events are committed before each run starts.
    EngineSettings {
        safety_lag: Duration::ZERO,
        ..EngineSettings::default()
    }
}

pub async fn rows_as_text(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(&format!("SELECT row(q.*)::text FROM ({sql}) AS q"), &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// One usage event.
#[derive(Debug, Clone)]
pub struct Event {
    pub organization_id: i64,
    pub api_key_id: Option<i64>,
    pub model_id: i64,
    pub status: &'static str,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_micros: i64,
    pub latency_ms: i32,
    pub occurred_at: OffsetDateTime,
}

/// `count` varied events spread over the `hours` hours before `until`:
/// three organizations, keys and no keys, four models, some errors.
pub fn events(count: u64, hours: i64, until: OffsetDateTime, seed: u64) -> Vec<Event> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = move |bound: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % bound
    };
    let span_seconds = (hours * 3600) as u64;
    (0..count)
        .map(|_| {
            let organization_id = 1 + next(3) as i64;
            let key = next(4);
            Event {
                organization_id,
                api_key_id: (key > 0).then(|| organization_id * 10 + key as i64),
                model_id: 1 + next(4) as i64,
                status: [
                    "ok",
                    "ok",
                    "ok",
                    "ok",
                    "ok",
                    "ok",
                    "client_error",
                    "server_error",
                    "timeout",
                    "rate_limited",
                ][next(10) as usize],
                input_tokens: next(5_000) as i32,
                output_tokens: next(2_000) as i32,
                cost_micros: next(100_000) as i64,
                latency_ms: (20.0 * (1.0 + next(1_000) as f64 / 100.0).powi(2)) as i32,
                occurred_at: until - time::Duration::seconds(1 + next(span_seconds) as i64),
            }
        })
        .collect()
}

pub async fn insert(client: &impl tokio_postgres::GenericClient, events: &[Event]) {
    let column = |f: fn(&Event) -> String| events.iter().map(f).collect::<Vec<String>>();
    client
        .execute(
            "INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, input_tokens, \
             output_tokens, cost_micros, latency_ms, occurred_at) \
             SELECT o::bigint, nullif(k, '')::bigint, m::bigint, gen_random_uuid(), s, i::int, out::int, c::bigint, l::int, t::timestamptz \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) \
                 AS e(o, k, m, s, i, out, c, l, t)",
            &[
                &column(|e| e.organization_id.to_string()),
                &column(|e| e.api_key_id.map(|k| k.to_string()).unwrap_or_default()),
                &column(|e| e.model_id.to_string()),
                &column(|e| e.status.to_owned()),
                &column(|e| e.input_tokens.to_string()),
                &column(|e| e.output_tokens.to_string()),
                &column(|e| e.cost_micros.to_string()),
                &column(|e| e.latency_ms.to_string()),
                &column(|e| {
                    e.occurred_at.format(&time::format_description::well_known::Rfc3339).expect("formatting a timestamp")
                }),
            ],
        )
        .await
        .expect("inserting events");
}

/// The start of the current hour, minus `hours_ago` hours.
pub fn hour_ago(hours_ago: i64) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let hour = now.unix_timestamp().div_euclid(3600) - hours_ago;
    OffsetDateTime::from_unix_timestamp(hour * 3600).expect("valid")
}
