//! Rewriting buckets and runs of the target on the real two-shard cluster: exact
//! per-(organization, hour) and per-(organization, day) rows under late events, replays and
//! crashed runs.

mod support;

use rollup_clickhouse::ClickHouse;
use rollup_clickhouse::buckets::{Bucket, Written, rewrite};
use rollup_clickhouse::run::{RUN_LOCK, RunMode, run};
use rollup_clickhouse::totals::{self, Difference};
use rollup_engine::config::EngineSettings;
use rollup_engine::histogram::Histogram;
use support::{drop_database, setup};
use time::OffsetDateTime;
use time::macros::datetime;
use tokio_postgres::Client;

/// `count` deterministic events of organizations 1 to 5 from `from` over
/// four hours, `seed` varying their measures.
async fn insert_events(source: &Client, count: i32, from: OffsetDateTime, seed: i32) {
    source
        .execute(
            "INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, \
             input_tokens, output_tokens, cost_micros, latency_ms, occurred_at) \
             SELECT 1 + i % 5, nullif((i + $3) % 3, 0), 10 + (i + $3) % 2, gen_random_uuid(), \
                    CASE WHEN (i + $3) % 7 = 0 THEN 'server_error' ELSE 'ok' END, \
                    (i * $3) % 100, i % 50, i * 3, (i * 37 + $3) % 5000, \
                    $2::timestamptz + ((i * 13 + $3) % 14400) * interval '1 second' \
             FROM generate_series(1, $1) AS i",
            &[&count, &from, &seed],
        )
        .await
        .unwrap();
}

/// Every (organization, hour) or (organization, day) bucket of the events
/// on PostgreSQL, aggregated there, with its histogram, as text.
async fn expected(source: &Client, bucket: &str) -> String {
    let rows = source
        .query(
            &format!(
                "SELECT organization_id, {bucket}, coalesce(api_key_id, 0), model_id, count(*), \
                 count(*) FILTER (WHERE status <> 'ok'), sum(input_tokens), sum(output_tokens), \
                 sum(cost_micros)::bigint, sum(latency_ms), max(latency_ms), array_agg(latency_ms) \
                 FROM usage_events GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
            ),
            &[],
        )
        .await
        .unwrap();
    let mut text = String::new();
    for row in rows {
        let histogram = Histogram::from_latencies(&row.get::<_, Vec<i32>>(11));
        let list = |v: Vec<String>| format!("[{}]", v.join(","));
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            row.get::<_, i64>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3),
            row.get::<_, i64>(4),
            row.get::<_, i64>(5),
            row.get::<_, i64>(6),
            row.get::<_, i64>(7),
            row.get::<_, i64>(8),
            row.get::<_, i64>(9),
            row.get::<_, i32>(10),
            list(histogram.bins().iter().map(i16::to_string).collect()),
            list(histogram.counts().iter().map(i64::to_string).collect()),
        ));
    }
    text
}

const MEASURES: &str = "api_key_id, model_id, request_count, error_count, input_tokens, \
     output_tokens, cost_micros, latency_ms_sum, latency_ms_max, latency_bins, latency_bin_counts";

/// What readers see of `table` on ClickHouse (its bucket column first, as
/// text): one version per key (FINAL). ClickHouse 18.16 reads a Distributed
/// table FINAL only when the sort key and the version are selected, hence
/// `SELECT *` inside.
async fn readers_see(ch: &ClickHouse, table: &str, bucket: &str) -> String {
    ch.query(
        0,
        &format!(
            "SELECT organization_id, toString({bucket}), {MEASURES} FROM (SELECT * FROM {table} FINAL) \
             ORDER BY organization_id, {bucket}, api_key_id, model_id FORMAT TabSeparated"
        ),
        "reading the rollups",
    )
    .await
    .unwrap()
}

/// The buckets whose totals differ between the events and the cluster, as
/// (organization, hour in seconds since the epoch).
async fn differing(ch: &ClickHouse, source: &Client) -> Vec<(i64, i64)> {
    totals::compare(ch, source)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.organization_id, d.hour_at))
        .collect()
}

async fn hourly(ch: &ClickHouse) -> String {
    readers_see(ch, "usage_hourly_rollups", "hour_at").await
}

async fn daily(ch: &ClickHouse) -> String {
    readers_see(ch, "usage_daily_rollups", "day").await
}

/// The versions readers see per (organization, hour), as text.
async fn versions(ch: &ClickHouse) -> String {
    ch.query(
        0,
        "SELECT organization_id, toString(hour_at), groupUniqArray(version) FROM \
         (SELECT organization_id, hour_at, api_key_id, model_id, version FROM usage_hourly_rollups FINAL) \
         GROUP BY organization_id, hour_at ORDER BY organization_id, hour_at FORMAT TabSeparated",
        "reading the versions",
    )
    .await
    .unwrap()
}

const HOUR_TEXT: &str =
    "to_char(date_trunc('hour', occurred_at, 'UTC') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')";
const DAY_TEXT: &str = "((occurred_at AT TIME ZONE 'UTC')::date)::text";

async fn all_buckets(source: &Client, ingested_after: OffsetDateTime) -> Vec<Bucket> {
    source
        .query(
            "SELECT DISTINCT organization_id, date_trunc('hour', occurred_at, 'UTC') \
             FROM usage_events WHERE ingested_at >= $1 ORDER BY 1, 2",
            &[&ingested_after],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Bucket {
            organization_id: row.get(0),
            hour_at: row.get(1),
        })
        .collect()
}

#[tokio::test]
async fn late_events_and_replays_leave_exactly_the_rows_of_the_events() {
    let (_db, source, ch) = setup().await;
    // Four hours across a UTC midnight, so two days per organization.
    let start = datetime!(2025-11-16 22:00 UTC);
    insert_events(&source, 3000, start, 1).await;
    let buckets = all_buckets(&source, OffsetDateTime::UNIX_EPOCH).await;
    assert_eq!(buckets.len(), 20, "5 organizations, 4 hours");
    let first = rewrite(&ch, &source, &buckets, 1).await.unwrap();
    assert_eq!(first.days, 10);
    assert_eq!(hourly(&ch).await, expected(&source, HOUR_TEXT).await);
    assert_eq!(daily(&ch).await, expected(&source, DAY_TEXT).await);
    assert_eq!(totals::compare(&ch, &source).await.unwrap(), vec![]);

    // Late events in two hours of organization 2 (new keys and models among
    // them); only those buckets are rewritten, by run 2.
    let before_late: OffsetDateTime = source.query_one("SELECT now()", &[]).await.unwrap().get(0);
    source
        .execute(
            "INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, \
             input_tokens, output_tokens, cost_micros, latency_ms, occurred_at) \
             SELECT 2, 40 + i % 2, 10 + i % 3, gen_random_uuid(), 'timeout', i, i, i, 9000 + i, \
                    '2025-11-16 23:10+00'::timestamptz + i * interval '70 minutes' \
             FROM generate_series(0, 1) AS i",
            &[],
        )
        .await
        .unwrap();
    let late = all_buckets(&source, before_late).await;
    assert_eq!(
        late,
        vec![
            Bucket {
                organization_id: 2,
                hour_at: datetime!(2025-11-16 23:00 UTC)
            },
            Bucket {
                organization_id: 2,
                hour_at: datetime!(2025-11-17 00:00 UTC)
            },
        ]
    );
    // Before they are rolled up, the comparison reports their two buckets.
    let pending = totals::compare(&ch, &source).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|d| (d.organization_id, d.hour_at))
            .collect::<Vec<_>>(),
        vec![(2, 1763334000), (2, 1763337600)],
        "{pending:?}"
    );
    let [postgres, clickhouse] = [pending[0].postgres.unwrap(), pending[0].clickhouse.unwrap()];
    assert_eq!(
        postgres[0],
        clickhouse[0] + 1,
        "one more request: {pending:?}"
    );
    let second = rewrite(&ch, &source, &late, 2).await.unwrap();
    assert_eq!(totals::compare(&ch, &source).await.unwrap(), vec![]);
    assert_eq!(second.days, 2, "{second:?}");
    assert_eq!(hourly(&ch).await, expected(&source, HOUR_TEXT).await);
    assert_eq!(daily(&ch).await, expected(&source, DAY_TEXT).await);
    // Only the two late buckets carry run 2.
    let seen = versions(&ch).await;
    let rewritten: Vec<&str> = seen.lines().filter(|l| l.ends_with("[2]")).collect();
    assert_eq!(
        rewritten,
        vec!["2\t2025-11-16 23:00:00\t[2]", "2\t2025-11-17 00:00:00\t[2]"],
        "{seen}"
    );
    assert_eq!(
        seen.lines().filter(|l| l.ends_with("[1]")).count(),
        18,
        "{seen}"
    );

    // A replay of run 2 (a crash after writing, before the watermark
    // moved), and a later run over every bucket: nothing readers see
    // changes but the versions.
    let hourly_before = hourly(&ch).await;
    let daily_before = daily(&ch).await;
    let replay = rewrite(&ch, &source, &late, 2).await.unwrap();
    assert_eq!(replay, second);
    rewrite(&ch, &source, &buckets, 3).await.unwrap();
    assert_eq!(hourly(&ch).await, hourly_before);
    assert_eq!(daily(&ch).await, daily_before);
    // Merging the parts does not change what readers see either.
    for node in 0..ch.nodes() {
        for table in ["usage_hourly_rollups_local", "usage_daily_rollups_local"] {
            ch.query(node, &format!("OPTIMIZE TABLE {table} FINAL"), "merging")
                .await
                .unwrap();
        }
    }
    assert_eq!(hourly(&ch).await, hourly_before);
    assert_eq!(daily(&ch).await, daily_before);

    // A row no event explains, and a corrupted newer version of a row, are
    // both reported.
    ch.query(
        0,
        "INSERT INTO usage_hourly_rollups SELECT hour_at, 99, api_key_id, model_id, request_count, \
         error_count, input_tokens, output_tokens, cost_micros, latency_ms_sum, latency_ms_max, \
         latency_bins, latency_bin_counts, version FROM (SELECT * FROM usage_hourly_rollups FINAL) \
         WHERE organization_id = 1 AND hour_at = toDateTime('2025-11-16 22:00:00', 'UTC') LIMIT 1",
        "inserting a stray row",
    )
    .await
    .unwrap();
    ch.query(
        0,
        "INSERT INTO usage_hourly_rollups SELECT hour_at, organization_id, api_key_id, model_id, \
         request_count, error_count, input_tokens + 1, output_tokens, cost_micros, latency_ms_sum, \
         latency_ms_max, latency_bins, latency_bin_counts, 10 FROM (SELECT * FROM usage_hourly_rollups FINAL) \
         WHERE organization_id = 3 AND hour_at = toDateTime('2025-11-17 01:00:00', 'UTC') LIMIT 1",
        "corrupting a row",
    )
    .await
    .unwrap();
    let found = totals::compare(&ch, &source).await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        matches!(
            found[0],
            Difference { organization_id: 3, hour_at: 1763341200, postgres: Some(p), clickhouse: Some(c) }
                if c[2] == p[2] + 1 && c[0] == p[0]
        ),
        "{found:?}"
    );
    assert!(
        matches!(
            found[1],
            Difference {
                organization_id: 99,
                hour_at: 1763330400,
                postgres: None,
                clickhouse: Some(_)
            }
        ),
        "{found:?}"
    );

    // Nothing to rewrite writes nothing.
    assert_eq!(
        rewrite(&ch, &source, &[], 4).await.unwrap(),
        Written::default()
    );
    let error = rewrite(
        &ch,
        &source,
        &[Bucket {
            organization_id: 1,
            hour_at: datetime!(2025-11-16 22:30 UTC),
        }],
        5,
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "bucket hour 2025-11-16 22:30:00.0 +00:00:00 is not the start of a UTC hour"
    );
    drop_database(&ch).await;
}

/// Engine settings for tests: no safety lag, so a run sees the events
/// committed before it; small batches, so runs take several.
fn settings() -> EngineSettings {
    EngineSettings {
        safety_lag: std::time::Duration::ZERO,
        max_batch_buckets: 3,
        ..EngineSettings::default()
    }
}

async fn insert_late(source: &Client, organization: i64, at: &str) {
    source
        .execute(
            "INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, \
             input_tokens, output_tokens, cost_micros, latency_ms, occurred_at) \
             VALUES ($1, 77, 12, gen_random_uuid(), 'ok', 5, 6, 7, 1234, $2::text::timestamptz)",
            &[&organization, &at],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn runs_rewrite_what_late_events_touched_and_a_crashed_run_is_redone() {
    let (db, source, ch) = setup().await;
    let bookkeeping = db.connect().await;
    insert_events(&source, 1500, datetime!(2025-11-16 22:00 UTC), 2).await;

    let first = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap();
    assert!(first.full_rebuild);
    assert_eq!((first.buckets, first.hours, first.days), (20, 4, 10));
    assert_eq!(hourly(&ch).await, expected(&source, HOUR_TEXT).await);
    assert_eq!(daily(&ch).await, expected(&source, DAY_TEXT).await);

    // Nothing new: nothing written.
    let idle = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap();
    assert_eq!(
        (idle.full_rebuild, idle.buckets, idle.hourly_rows_written),
        (false, 0, 0)
    );
    assert_eq!(idle.watermark_from, Some(first.watermark_to));

    // Late events in two buckets: only they are rewritten, by the new run.
    insert_late(&source, 3, "2025-11-16 22:59:59+00").await;
    insert_late(&source, 5, "2025-11-17 01:00:00+00").await;
    let late = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap();
    assert_eq!((late.buckets, late.hours, late.days), (2, 2, 2));
    assert_eq!(hourly(&ch).await, expected(&source, HOUR_TEXT).await);
    assert_eq!(daily(&ch).await, expected(&source, DAY_TEXT).await);
    let seen = versions(&ch).await;
    let newest: Vec<&str> = seen
        .lines()
        .filter(|l| l.ends_with(&format!("[{}]", late.run_id)))
        .collect();
    assert_eq!(
        newest,
        vec![
            format!("3\t2025-11-16 22:00:00\t[{}]", late.run_id),
            format!("5\t2025-11-17 01:00:00\t[{}]", late.run_id)
        ],
        "{seen}"
    );

    // A run that dies after writing its rows, before moving the watermark:
    // its row stays `running` and its buckets are written again by the next
    // run, with a higher version, to the same result.
    insert_late(&source, 1, "2025-11-16 23:30:00+00").await;
    let crashed: i64 = bookkeeping
        .query_one(
            "INSERT INTO analytics.rollup_runs (target) VALUES ('clickhouse') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    rewrite(
        &ch,
        &source,
        &[Bucket {
            organization_id: 1,
            hour_at: datetime!(2025-11-16 23:00 UTC),
        }],
        crashed as u64,
    )
    .await
    .unwrap();
    let redo = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap();
    assert!(redo.run_id > crashed);
    assert_eq!(redo.buckets, 1);
    assert_eq!(hourly(&ch).await, expected(&source, HOUR_TEXT).await);
    assert_eq!(daily(&ch).await, expected(&source, DAY_TEXT).await);
    assert_eq!(totals::compare(&ch, &source).await.unwrap(), vec![]);

    // One run at a time.
    let other = db.connect().await;
    other
        .execute(
            "SELECT pg_advisory_lock($1, $2)",
            &[&RUN_LOCK.0, &RUN_LOCK.1],
        )
        .await
        .unwrap();
    let error = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("another run of the ClickHouse rollup target holds its lock"),
        "{error}"
    );
    drop(other);

    // A run that cannot reach ClickHouse fails, is recorded as failed, and
    // leaves the watermark for the next run.
    insert_late(&source, 2, "2025-11-17 00:10:00+00").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable = ch.settings().clone();
    unreachable.urls = vec![url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()];
    let unreachable = ClickHouse::new(unreachable).unwrap();
    let error = run(
        &unreachable,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().starts_with("cannot reach ClickHouse"),
        "{error}"
    );
    let recorded: (String, String) = bookkeeping
        .query_one(
            "SELECT status, error_message FROM analytics.rollup_runs ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(recorded.0, "failed");
    assert!(
        recorded
            .1
            .starts_with("cannot reach ClickHouse at http://127.0.0.1:"),
        "{recorded:?}"
    );
    let next = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap();
    assert_eq!(next.buckets, 1);
    assert_eq!(hourly(&ch).await, expected(&source, HOUR_TEXT).await);
    assert_eq!(daily(&ch).await, expected(&source, DAY_TEXT).await);
    drop_database(&ch).await;
}

/// Rows of `table` on the servers, every version counted (no FINAL).
async fn stored_rows(ch: &ClickHouse, table: &str) -> u64 {
    ch.query(
        0,
        &format!("SELECT count() FROM {table} FORMAT TabSeparated"),
        "counting stored rows",
    )
    .await
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

#[tokio::test]
async fn recompute_and_full_runs_drop_the_rows_whose_events_are_gone() {
    let (db, source, ch) = setup().await;
    let bookkeeping = db.connect().await;
    insert_events(&source, 1500, datetime!(2025-11-16 22:00 UTC), 4).await;
    run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap();
    insert_late(&source, 2, "2025-11-16 23:10:00+00").await;
    run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap();

    // Events deleted behind the engine's back (a retention job, a GDPR
    // erasure): every event of organization 1 at 23:00, and of organization
    // 2 at 01:00 the next day. No event was ingested, so an incremental run
    // sees nothing to do and both buckets differ.
    source
        .execute(
            "DELETE FROM usage_events WHERE (organization_id = 1 AND occurred_at >= '2025-11-16 23:00+00' \
             AND occurred_at < '2025-11-17 00:00+00') OR (organization_id = 2 \
             AND occurred_at >= '2025-11-17 01:00+00' AND occurred_at < '2025-11-17 02:00+00')",
            &[],
        )
        .await
        .unwrap();
    let idle = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Incremental,
    )
    .await
    .unwrap();
    assert_eq!(idle.buckets, 0);
    let hour = |at: OffsetDateTime| at.unix_timestamp();
    let before = differing(&ch, &source).await;
    assert_eq!(
        before,
        vec![
            (1, hour(datetime!(2025-11-16 23:00 UTC))),
            (2, hour(datetime!(2025-11-17 01:00 UTC)))
        ]
    );

    // A recompute of 23:10 to 23:20 covers the whole 23:00 hour: the bucket
    // of organization 1 goes, the other one stays until its hour is covered.
    let recompute = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Recompute {
            from: datetime!(2025-11-16 23:10 UTC),
            to: datetime!(2025-11-16 23:20 UTC),
        },
    )
    .await
    .unwrap();
    assert!(!recompute.full_rebuild);
    assert_eq!(recompute.hours, 1);
    let after = differing(&ch, &source).await;
    assert_eq!(after, vec![(2, hour(datetime!(2025-11-17 01:00 UTC)))]);

    // A row written by hand with a version no run has hides the runs' rows
    // of its key; a recompute of its hour deletes it before writing, so a
    // merge cannot keep it over the recompute's row.
    ch.query(
        0,
        "INSERT INTO usage_hourly_rollups SELECT hour_at, organization_id, api_key_id, model_id, \
         request_count + 1, error_count, input_tokens, output_tokens, cost_micros, latency_ms_sum, \
         latency_ms_max, latency_bins, latency_bin_counts, 1000000000 \
         FROM usage_hourly_rollups FINAL WHERE organization_id = 3 \
         AND hour_at = toDateTime('2025-11-16 22:00:00', 'UTC') LIMIT 1",
        "writing a foreign version",
    )
    .await
    .unwrap();
    let foreign = differing(&ch, &source).await;
    assert!(
        foreign.contains(&(3, hour(datetime!(2025-11-16 22:00 UTC)))),
        "{foreign:?}"
    );
    for node in 0..ch.nodes() {
        ch.query(
            node,
            "OPTIMIZE TABLE usage_hourly_rollups_local FINAL",
            "merging",
        )
        .await
        .unwrap();
    }
    run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Recompute {
            from: datetime!(2025-11-16 22:00 UTC),
            to: datetime!(2025-11-16 23:00 UTC),
        },
    )
    .await
    .unwrap();
    let repaired = differing(&ch, &source).await;
    assert_eq!(repaired, vec![(2, hour(datetime!(2025-11-17 01:00 UTC)))]);

    // A full run rewrites everything and leaves one stored version per key,
    // exactly the rows of the events.
    let full = run(&ch, &source, &bookkeeping, &settings(), RunMode::Full)
        .await
        .unwrap();
    assert!(full.full_rebuild);
    assert_eq!(totals::compare(&ch, &source).await.unwrap(), vec![]);
    assert_eq!(hourly(&ch).await, expected(&source, HOUR_TEXT).await);
    assert_eq!(daily(&ch).await, expected(&source, DAY_TEXT).await);
    assert_eq!(
        stored_rows(&ch, "usage_hourly_rollups").await,
        hourly(&ch).await.lines().count() as u64
    );
    assert_eq!(
        stored_rows(&ch, "usage_daily_rollups").await,
        daily(&ch).await.lines().count() as u64
    );
    assert!(
        versions(&ch)
            .await
            .lines()
            .all(|l| l.ends_with(&format!("[{}]", full.run_id)))
    );

    let error = run(
        &ch,
        &source,
        &bookkeeping,
        &settings(),
        RunMode::Recompute {
            from: datetime!(2025-11-16 23:00 UTC),
            to: datetime!(2025-11-16 23:00 UTC),
        },
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the recompute range is empty")
    );
    drop_database(&ch).await;
}
