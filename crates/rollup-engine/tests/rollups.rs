//! Rollup runs, late events, concurrency, crash recovery, checks and reconciliation against real databases, for both targets.

mod support;

use rollup_engine::check::check;
use rollup_engine::histogram::Histogram;
use rollup_engine::reconcile::{FieldDifference, MismatchKind, reconcile};
use rollup_engine::run::RunMode;
use rollup_engine::status::status;
use support::{Databases, events, hour_ago, rows_as_text, settings, shipped_assertions};

/// Every hourly and daily row as (kind, bucket start in epoch seconds, key,
/// the transaction that last wrote it), to see which rows a run rewrote.
type RowVersion = (String, i64, String, String);

async fn row_versions(db: &Databases) -> Vec<RowVersion> {
    let rows = db
        .rollups
        .query(
            "SELECT 'hour', extract(epoch FROM hour_at)::bigint, concat_ws('/', organization_id, api_key_id, model_id), xmin::text \
             FROM analytics.usage_hourly_rollups \
             UNION ALL \
             SELECT 'day', extract(epoch FROM day::timestamp)::bigint, concat_ws('/', organization_id, api_key_id, model_id), xmin::text \
             FROM analytics.usage_daily_rollups \
             ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn first_run_rebuilds_then_late_events_touch_only_their_hours(mut db: Databases) {
    db.insert(&events(2_000, 48, hour_ago(0), 1)).await;
    let first = db.run().await;
    assert!(first.full_rebuild);
    assert!(first.hours_covered >= 47, "{first:?}");
    assert_eq!(first.hours_covered as usize, {
        let hours = rows_as_text(
            &db.rollups,
            "SELECT DISTINCT hour_at FROM analytics.usage_hourly_rollups",
        )
        .await;
        hours.len()
    });
    db.assert_hourly_exact().await;

    // Nothing new: nothing is queued or written.
    let before = row_versions(&db).await;
    let idle = db.run().await;
    assert!(!idle.full_rebuild);
    assert_eq!(
        (
            idle.buckets_queued,
            idle.hours_covered,
            idle.hourly_rows_written,
            idle.daily_rows_written
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(row_versions(&db).await, before);

    // Late events for two hours of yesterday: exactly those hours and their
    // day are rewritten; the other rows are untouched.
    let late_hours = [hour_ago(30), hour_ago(27)];
    let mut late_buckets = std::collections::BTreeSet::new();
    for (i, hour) in late_hours.iter().enumerate() {
        let late = events(25, 1, *hour + time::Duration::HOUR, 10 + i as u64);
        late_buckets.extend(late.iter().map(|e| (*hour, e.organization_id)));
        db.insert(&late).await;
    }
    let late = db.run().await;
    assert_eq!(
        (
            late.buckets_queued,
            late.buckets_covered,
            late.hours_covered
        ),
        (late_buckets.len() as u64, late_buckets.len() as u64, 2),
        "{late:?}"
    );
    let after = row_versions(&db).await;
    let late_hours: Vec<i64> = late_hours.iter().map(|h| h.unix_timestamp()).collect();
    let late_days: Vec<i64> = late_hours
        .iter()
        .map(|h| h - h.rem_euclid(86_400))
        .collect();
    let changed: Vec<&RowVersion> = after.iter().filter(|row| !before.contains(row)).collect();
    assert!(changed.iter().any(|(kind, ..)| kind == "hour"));
    assert!(changed.iter().any(|(kind, ..)| kind == "day"));
    for (kind, bucket, key, _) in &changed {
        let late = if kind == "hour" {
            &late_hours
        } else {
            &late_days
        };
        assert!(
            late.contains(bucket),
            "rewrote {kind} {bucket} {key}, not one the late events touched"
        );
    }
    db.assert_hourly_exact().await;

    let report = reconcile(&db.source, &db.rollups).await.unwrap();
    assert!(report.mismatches.is_empty(), "{report:?}");
    assert_eq!(report.buckets_pending, 0);
    assert!(report.buckets_compared > 100);
}

#[tokio::test]
async fn local_first_run_rebuilds_then_late_events_touch_only_their_hours() {
    first_run_rebuilds_then_late_events_touch_only_their_hours(Databases::local().await).await;
}

#[tokio::test]
async fn warehouse_first_run_rebuilds_then_late_events_touch_only_their_hours() {
    first_run_rebuilds_then_late_events_touch_only_their_hours(Databases::warehouse().await).await;
}

/// Daily rows are the sums of their hours, and the daily P95 read from the
/// merged histogram is within 2% of the exact P95 of the day's events.
async fn days_derive_from_hours_with_an_exact_p95(mut db: Databases) {
    db.insert(&events(3_000, 72, hour_ago(0), 2)).await;
    db.run().await;
    check_days_against_events(&db).await;
}

async fn check_days_against_events(db: &Databases) {
    let days = db
        .rollups
        .query(
            "SELECT day, organization_id, api_key_id, model_id, latency_bins, latency_bin_counts, request_count, \
             analytics.latency_quantile(latency_bins, latency_bin_counts, 0.95) FROM analytics.usage_daily_rollups",
            &[],
        )
        .await
        .unwrap();
    assert!(days.len() > 20);
    for row in &days {
        let (day, org, key, model): (time::Date, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let histogram =
            Histogram::from_unsorted(&row.get::<_, Vec<i16>>(4), &row.get::<_, Vec<i64>>(5));
        assert_eq!(histogram.total(), row.get::<_, i64>(6));
        let mut latencies: Vec<i32> = db
            .source
            .query(
                "SELECT latency_ms FROM usage_events WHERE (occurred_at AT TIME ZONE 'UTC')::date = $1 \
                 AND organization_id = $2 AND coalesce(api_key_id, 0) = $3 AND model_id = $4",
                &[&day, &org, &key, &model],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        latencies.sort_unstable();
        let rank = (0.95 * latencies.len() as f64).ceil() as usize;
        let exact = f64::from(latencies[rank - 1]);
        let from_sql: f64 = row.get(7);
        let from_rust = histogram.quantile(0.95).unwrap();
        assert!(
            (from_sql - from_rust).abs() < 1e-9 * from_rust,
            "SQL {from_sql} and Rust {from_rust} disagree"
        );
        assert!(
            (from_sql - exact).abs() <= 0.02 * exact,
            "day {day}: exact P95 {exact}, read {from_sql}"
        );
    }
    let findings = check(&db.rollups, &shipped_assertions()).await.unwrap();
    let failed: Vec<_> = findings.iter().filter(|f| !f.passed()).collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[tokio::test]
async fn local_days_derive_from_hours_with_an_exact_p95() {
    days_derive_from_hours_with_an_exact_p95(Databases::local().await).await;
}

#[tokio::test]
async fn a_rebuild_whose_days_do_not_fit_in_memory_derives_them_from_the_written_hours() {
    let mut db = Databases::local().await;
    db.insert(&events(3_000, 72, hour_ago(0), 2)).await;
    let no_memory = rollup_engine::config::EngineSettings {
        rebuild_memory_mib: 0,
        ..settings()
    };
    let options = rollup_engine::run::RunOptions {
        target: "local".into(),
        mode: RunMode::Full,
    };
    let report = rollup_engine::run::run(&db.source, &mut db.rollups, &no_memory, &options)
        .await
        .unwrap();
    assert!(
        report.full_rebuild && report.daily_rows_written > 20,
        "{report:?}"
    );
    check_days_against_events(&db).await;
}

#[tokio::test]
async fn warehouse_days_derive_from_hours_with_an_exact_p95() {
    days_derive_from_hours_with_an_exact_p95(Databases::warehouse().await).await;
}

#[tokio::test]
async fn reconcile_reports_each_corrupted_bucket() {
    let mut db = Databases::warehouse().await;
    db.insert(&events(1_000, 24, hour_ago(0), 3)).await;
    db.run().await;
    assert!(
        reconcile(&db.source, &db.rollups)
            .await
            .unwrap()
            .mismatches
            .is_empty()
    );

    let corrupted = db
        .rollups
        .query_one(
            "UPDATE analytics.usage_hourly_rollups SET input_tokens = input_tokens + 7 \
             WHERE (hour_at, organization_id, api_key_id, model_id) = \
                   (SELECT hour_at, organization_id, api_key_id, model_id FROM analytics.usage_hourly_rollups \
                    ORDER BY hour_at, organization_id LIMIT 1) \
             RETURNING hour_at, organization_id",
            &[],
        )
        .await
        .unwrap();
    let deleted = db
        .rollups
        .query(
            "DELETE FROM analytics.usage_hourly_rollups WHERE (hour_at, organization_id) = \
                 (SELECT hour_at, organization_id FROM analytics.usage_hourly_rollups ORDER BY hour_at DESC, organization_id LIMIT 1) \
             RETURNING hour_at, organization_id",
            &[],
        )
        .await
        .unwrap()
        .remove(0);
    let report = reconcile(&db.source, &db.rollups).await.unwrap();
    assert_eq!(report.mismatches.len(), 2, "{report:?}");
    let first = &report.mismatches[0];
    assert_eq!(
        (first.hour_at, first.organization_id),
        (corrupted.get(0), corrupted.get(1))
    );
    let MismatchKind::Differs(differences) = &first.kind else {
        panic!("{first:?}")
    };
    let events_total = differences[0].events;
    assert_eq!(
        differences,
        &vec![FieldDifference {
            field: "input_tokens",
            events: events_total,
            rollups: events_total + 7
        }]
    );
    let last = &report.mismatches[1];
    assert_eq!(
        (last.hour_at, last.organization_id),
        (deleted.get(0), deleted.get(1))
    );
    // The deleted bucket may have held several keys or models: the remaining
    // rows of the organization and hour are gone with it, so it is missing.
    assert_eq!(last.kind, MismatchKind::MissingFromRollups);

    // The check catches the corrupted token sum too, through the daily rows.
    let findings = check(&db.rollups, &shipped_assertions()).await.unwrap();
    let failed: Vec<&str> = findings
        .iter()
        .filter(|f| f.fails())
        .map(|f| f.assertion.as_str())
        .collect();
    assert_eq!(failed, ["daily_counts_and_token_sums_match_hourly"]);
    let finding = findings.iter().find(|f| f.fails()).unwrap();
    assert!(
        finding.violations >= 2 && finding.sample[0].contains("hourly_input_tokens"),
        "{finding:?}"
    );

    // Recomputing the range repairs both.
    db.run_mode(RunMode::Recompute {
        from: hour_ago(30),
        to: hour_ago(-1),
    })
    .await;
    assert!(
        reconcile(&db.source, &db.rollups)
            .await
            .unwrap()
            .mismatches
            .is_empty()
    );
    assert!(
        check(&db.rollups, &shipped_assertions())
            .await
            .unwrap()
            .iter()
            .all(|f| f.passed())
    );
}

#[tokio::test]
async fn an_open_inserting_transaction_holds_the_watermark_back() {
    let mut db = Databases::local().await;
    db.insert(&events(200, 10, hour_ago(0), 4)).await;
    db.run().await;
    db.insert(&events(5, 1, hour_ago(3) + time::Duration::HOUR, 6))
        .await;

    // A writer opens its transaction (ingested_at = now() is its start) and
    // inserts a late event, but commits only after the next run.
    let mut writer = db.source_db.connect().await;
    let tx = writer.transaction().await.unwrap();
    let late_hour = hour_ago(8);
    support::insert(&tx, &events(5, 1, late_hour + time::Duration::HOUR, 5)).await;
    let tx_start: time::OffsetDateTime = tx.query_one("SELECT now()", &[]).await.unwrap().get(0);

    let during = db.run().await;
    assert_eq!(
        during.hours_covered, 1,
        "only the committed events' hour: {during:?}"
    );
    assert!(
        during.watermark_to.unwrap() <= tx_start,
        "{during:?} passed the open transaction at {tx_start}"
    );
    tx.commit().await.unwrap();

    let after = db.run().await;
    assert_eq!(after.hours_covered, 1, "{after:?}");
    db.assert_hourly_exact().await;
    let report = reconcile(&db.source, &db.rollups).await.unwrap();
    assert!(
        report.mismatches.is_empty() && report.buckets_pending == 0,
        "{report:?}"
    );
}

#[tokio::test]
async fn concurrent_runs_share_the_work_and_agree_with_the_events() {
    let mut db = Databases::warehouse().await;
    db.insert(&events(1_000, 48, hour_ago(0), 7)).await;
    db.run().await;
    for round in 0..3_u64 {
        db.insert(&events(300, 40, hour_ago(1), 20 + round)).await;
        let (source_a, mut rollups_a) = db.connect_again().await;
        let (source_b, mut rollups_b) = db.connect_again().await;
        let options = rollup_engine::run::RunOptions {
            target: "warehouse".into(),
            mode: RunMode::Incremental,
        };
        let small_batches = rollup_engine::config::EngineSettings {
            max_batch_buckets: 3,
            ..settings()
        };
        let (a, b) = tokio::join!(
            rollup_engine::run::run(&source_a, &mut rollups_a, &small_batches, &options),
            rollup_engine::run::run(&source_b, &mut rollups_b, &small_batches, &options),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.hours_covered + b.hours_covered >= 30, "{a:?} {b:?}");
        db.assert_hourly_exact().await;
    }
    let report = reconcile(&db.source, &db.rollups).await.unwrap();
    assert!(report.mismatches.is_empty(), "{report:?}");
    assert!(
        check(&db.rollups, &shipped_assertions())
            .await
            .unwrap()
            .iter()
            .all(|f| f.passed())
    );
}

#[tokio::test]
async fn hours_left_queued_by_a_crashed_run_are_recomputed() {
    let mut db = Databases::local().await;
    db.insert(&events(500, 12, hour_ago(0), 8)).await;
    db.run().await;
    // A run that crashed after queueing: the bucket is queued (twice, as
    // two runs may do), its rows stale.
    let stale_hour = hour_ago(5);
    let stale = db
        .rollups
        .execute(
            "UPDATE analytics.usage_hourly_rollups SET cost_micros = 0 \
             WHERE hour_at = $1 AND organization_id = 1",
            &[&stale_hour],
        )
        .await
        .unwrap();
    assert!(stale > 0);
    db.rollups
        .execute(
            "INSERT INTO analytics.rollup_dirty_buckets (hour_at, organization_id) VALUES ($1, 1), ($1, 1)",
            &[&stale_hour],
        )
        .await
        .unwrap();
    async fn queued(db: &Databases) -> i64 {
        let state = status(&db.rollups, &settings(), 10).await.unwrap();
        state.queued_buckets
    }
    assert_eq!(queued(&db).await, 1);
    let resumed = db.run().await;
    assert_eq!(
        (
            resumed.buckets_queued,
            resumed.buckets_covered,
            resumed.hours_covered,
            resumed.days_covered
        ),
        (0, 1, 1, 1)
    );
    db.assert_hourly_exact().await;
    assert_eq!(queued(&db).await, 0);
}

#[tokio::test]
async fn status_lists_runs_with_durations_and_flags_slow_ones() {
    let mut db = Databases::local().await;
    db.insert(&events(100, 5, hour_ago(0), 9)).await;
    let report = db.run().await;
    // A run that took 11 minutes for 2 hours of data: over 5 minutes per hour.
    db.rollups
        .execute(
            "INSERT INTO analytics.rollup_runs (target, status, started_at, finished_at, duration_ms, hours_covered) \
             VALUES ('warehouse', 'succeeded', now() + interval '1 second', now() + interval '661 seconds', 660000, 2)",
            &[],
        )
        .await
        .unwrap();
    let state = status(&db.rollups, &settings(), 10).await.unwrap();
    assert_eq!(state.watermark, report.watermark_to);
    assert_eq!(state.runs.len(), 2);
    let (slow, ours) = (&state.runs[0], &state.runs[1]);
    assert!(
        slow.slow && slow.seconds_per_hour() == Some(330.0),
        "{slow:?}"
    );
    assert_eq!(ours.id, report.run_id);
    assert_eq!(ours.status, "succeeded");
    assert!(!ours.slow);
    assert!(ours.duration.is_some());
    assert_eq!(ours.hours_covered as u64, report.hours_covered);
    assert!(report.hours_covered >= 5);
}

#[tokio::test]
async fn a_run_without_the_analytics_schema_says_what_to_do() {
    let db = testdb::TestDb::new().await;
    let source = db.connect().await;
    let mut rollups = db.connect().await;
    let options = rollup_engine::run::RunOptions {
        target: "local".into(),
        mode: RunMode::Incremental,
    };
    let error = rollup_engine::run::run(&source, &mut rollups, &settings(), &options)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the rollups database has no analytics schema, or not its latest version: run `dbops migrate up --target analytics` first"
    );
}
