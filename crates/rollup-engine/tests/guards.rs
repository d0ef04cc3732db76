//! Bad data and blind spots: poisoned events are quarantined while every other bucket rolls up, prepared transactions and invisible sessions do not let the watermark pass events, and a killed run is marked abandoned.

mod support;

use std::path::Path;

use rollup_engine::check::check;
use rollup_engine::config::{EngineSettings, MissingGrant};
use rollup_engine::reconcile::reconcile;
use rollup_engine::run::{HOURLY_SUM_LIMIT, RunMode, RunOptions};
use rollup_engine::status::status;
use support::{
    Databases, Event, events, hour_ago, insert, rows_as_text, settings, shipped_assertions,
};
use time::OffsetDateTime;
use tokio_postgres::Client;

/// The hourly rows a GROUP BY over the events gives, leaving out the
/// quarantined events, and the rows the rollups hold; both sorted.
async fn expected_without_quarantined(db: &Databases) -> (Vec<String>, Vec<String>) {
    let quarantined: Vec<i64> = db
        .rollups
        .query("SELECT event_id FROM analytics.quarantined_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    db.hourly_expected_without(&quarantined).await
}

/// (event id, reason) of every quarantined event, by id.
async fn quarantine(db: &Databases) -> Vec<(i64, String)> {
    db.rollups
        .query(
            "SELECT event_id, reason FROM analytics.quarantined_events ORDER BY event_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// One event of organization 9 (which `events` never uses), key 91, model 1 at `at`.
fn one_event(at: OffsetDateTime) -> Event {
    Event {
        organization_id: 9,
        api_key_id: Some(91),
        model_id: 1,
        status: "ok",
        input_tokens: 10,
        output_tokens: 20,
        cost_micros: 30,
        latency_ms: 40,
        occurred_at: at,
    }
}

/// Inserts events with the checks that would refuse them out of the way, as
/// on a database migrated before 202512060001_usage_events_bounds, and
/// returns their ids.
async fn insert_past_the_checks(source: &Client, constraint: &str, events: &[Event]) -> Vec<i64> {
    source
        .batch_execute(&format!(
            "ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS {constraint}"
        ))
        .await
        .unwrap();
    let before: i64 = source
        .query_one("SELECT coalesce(max(id), 0) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    insert(source, events).await;
    source
        .query(
            "SELECT id FROM usage_events WHERE id > $1 ORDER BY id",
            &[&before],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn a_negative_api_key_is_quarantined_and_everything_else_rolls_up(mut db: Databases) {
    db.insert(&events(400, 12, hour_ago(0), 1)).await;
    db.run().await;

    // Late events for several organizations and hours, and one of them with
    // api_key_id = -1 in the bucket (organization 9, 3 hours ago).
    let poison_hour = hour_ago(3);
    let mut poison = one_event(poison_hour + time::Duration::minutes(10));
    poison.api_key_id = Some(-1);
    let ids = insert_past_the_checks(&db.source, "usage_events_api_key_id_check", &[poison]).await;
    let late = events(60, 6, hour_ago(0), 2);
    db.insert(&late).await;
    db.insert(&[one_event(poison_hour + time::Duration::minutes(20))])
        .await;

    let report = db.run().await;
    assert_eq!(report.events_quarantined, 1, "{report:?}");
    assert!(report.buckets_covered >= 3, "{report:?}");
    assert_eq!(
        quarantine(&db).await,
        vec![(
            ids[0],
            "api_key_id -1 is not positive (the rollups count events without a key under 0)"
                .to_owned()
        )]
    );
    let (expected, actual) = expected_without_quarantined(&db).await;
    assert_eq!(expected, actual);

    // Reported: `check` fails on it, `status` counts it, `reconcile` sets
    // its bucket apart instead of calling it a mismatch.
    let findings = check(&db.rollups, &shipped_assertions()).await.unwrap();
    let failed: Vec<_> = findings.iter().filter(|f| f.fails()).collect();
    assert_eq!(failed.len(), 1, "{findings:?}");
    assert_eq!(failed[0].assertion, "no_quarantined_events");
    assert_eq!(failed[0].violations, 1);
    assert!(
        failed[0].sample[0].contains(&format!("\"event_id\": {}", ids[0])),
        "{:?}",
        failed[0].sample
    );
    assert_eq!(
        status(&db.rollups, &settings(), 5)
            .await
            .unwrap()
            .quarantined_events,
        1
    );
    let reconciled = reconcile(&db.source, &db.rollups).await.unwrap();
    assert_eq!(reconciled.buckets_quarantined, 1, "{reconciled:?}");
    assert!(reconciled.mismatches.is_empty(), "{reconciled:?}");

    // A full rebuild quarantines it again.
    let full = db.run_mode(RunMode::Full).await;
    assert_eq!(full.events_quarantined, 1);
    assert_eq!(quarantine(&db).await.len(), 1);
    let (expected, actual) = expected_without_quarantined(&db).await;
    assert_eq!(expected, actual);

    // Fixed, the event leaves the quarantine when its hour is recomputed.
    db.source
        .execute(
            "UPDATE usage_events SET api_key_id = NULL WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    let repaired = db
        .run_mode(RunMode::Recompute {
            from: poison_hour,
            to: poison_hour + time::Duration::HOUR,
        })
        .await;
    assert_eq!(repaired.events_quarantined, 0);
    assert!(quarantine(&db).await.is_empty());
    db.assert_hourly_exact().await;
    assert!(
        check(&db.rollups, &shipped_assertions())
            .await
            .unwrap()
            .iter()
            .all(|f| !f.fails())
    );
}

#[tokio::test]
async fn a_negative_api_key_is_quarantined_and_everything_else_rolls_up_locally() {
    a_negative_api_key_is_quarantined_and_everything_else_rolls_up(Databases::local().await).await;
}

#[tokio::test]
async fn a_negative_api_key_is_quarantined_and_everything_else_rolls_up_in_the_warehouse() {
    a_negative_api_key_is_quarantined_and_everything_else_rolls_up(Databases::warehouse().await)
        .await;
}

#[tokio::test]
async fn costs_whose_sum_overflows_are_quarantined_and_the_rest_of_their_row_kept() {
    let mut db = Databases::local().await;
    let hour = hour_ago(2);
    let mut neighbours: Vec<Event> = (0..5)
        .map(|i| one_event(hour + time::Duration::minutes(i)))
        .collect();
    db.insert(&neighbours).await;
    db.insert(&events(200, 6, hour_ago(0), 3)).await;
    let mut huge = one_event(hour + time::Duration::minutes(30));
    huge.cost_micros = 9_000_000_000_000_000_000;
    let ids = insert_past_the_checks(
        &db.source,
        "usage_events_cost_micros_check",
        &[huge.clone(), huge.clone()],
    )
    .await;

    // The first run is a full rebuild.
    let first = db.run().await;
    assert!(first.full_rebuild);
    assert_eq!(first.events_quarantined, 2);
    let reason = format!(
        "cost_micros 9000000000000000000 takes the sum of its hourly row past {HOURLY_SUM_LIMIT} \
         (bigint's maximum / 24, so that a day fits in bigint)"
    );
    assert_eq!(
        quarantine(&db).await,
        vec![(ids[0], reason.clone()), (ids[1], reason.clone())]
    );
    // The five ordinary events of the same row are rolled up.
    let row = rows_as_text(
        &db.rollups,
        &format!(
            "SELECT request_count, cost_micros FROM analytics.usage_hourly_rollups \
             WHERE organization_id = 9 AND api_key_id = 91 AND model_id = 1 AND hour_at = '{}'",
            hour.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        ),
    )
    .await;
    assert_eq!(row, vec!["(5,150)".to_owned()]);
    let (expected, actual) = expected_without_quarantined(&db).await;
    assert_eq!(expected, actual);

    // In an incremental run too: a third one in another hour, with a late
    // ordinary event of the first hour.
    let other_hour = hour_ago(5);
    huge.occurred_at = other_hour + time::Duration::minutes(1);
    let third = insert_past_the_checks(&db.source, "usage_events_cost_micros_check", &[huge]).await;
    neighbours.truncate(1);
    db.insert(&neighbours).await;
    let next = db.run().await;
    assert!(!next.full_rebuild);
    // Both hours were recomputed: three events quarantined.
    assert_eq!(next.events_quarantined, 3, "{next:?}");
    let quarantined = quarantine(&db).await;
    assert_eq!(quarantined.len(), 3);
    assert_eq!(quarantined[2], (third[0], reason));
    let (expected, actual) = expected_without_quarantined(&db).await;
    assert_eq!(expected, actual);
}

#[tokio::test]
async fn a_batch_that_fails_anyway_names_its_buckets() {
    let mut db = Databases::local().await;
    db.insert(&events(50, 3, hour_ago(0), 7)).await;
    db.run().await;
    // A rule of the rollups table that the engine does not know about.
    db.rollups
        .batch_execute(
            "ALTER TABLE analytics.usage_hourly_rollups ADD CONSTRAINT usage_hourly_rollups_model_id_check \
             CHECK (model_id <> 77)",
        )
        .await
        .unwrap();
    let hour = hour_ago(2);
    let mut event = one_event(hour + time::Duration::minutes(5));
    event.model_id = 77;
    db.insert(&[event]).await;
    let options = RunOptions {
        target: "local".into(),
        mode: RunMode::Incremental,
    };
    let error = rollup_engine::run::run(&db.source, &mut db.rollups, &settings(), &options)
        .await
        .unwrap_err();
    let bucket = format!(
        "(organization 9, hour {})",
        hour.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    assert!(
        error
            .to_string()
            .contains(&format!("in the batch of bucket(s) {bucket}")),
        "{error}"
    );
    let recorded: String = db
        .rollups
        .query_one(
            "SELECT error_message FROM analytics.rollup_runs WHERE status = 'failed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(recorded.contains(&bucket), "{recorded}");
}

/// Inserts one event whose `column` is `value` (SQL), the others ordinary.
async fn insert_with(
    client: &Client,
    column: &str,
    value: &str,
) -> Result<u64, tokio_postgres::Error> {
    let mut values = vec![
        ("organization_id", "1"),
        ("user_id", "1"),
        ("api_key_id", "1"),
        ("model_id", "1"),
        ("request_id", "gen_random_uuid()"),
        ("status", "'ok'"),
        ("input_tokens", "1"),
        ("output_tokens", "1"),
        ("cost_micros", "1"),
        ("latency_ms", "1"),
        ("occurred_at", "now()"),
        ("ingested_at", "now()"),
    ];
    values
        .iter_mut()
        .find(|(name, _)| *name == column)
        .expect("a column of usage_events")
        .1 = value;
    let (columns, values): (Vec<&str>, Vec<&str>) = values.into_iter().unzip();
    client
        .execute(
            &format!(
                "INSERT INTO usage_events ({}) VALUES ({})",
                columns.join(", "),
                values.join(", ")
            ),
            &[],
        )
        .await
}

#[tokio::test]
async fn usage_events_refuses_impossible_values_at_insert() {
    let db = Databases::local().await;
    for (column, value, constraint) in [
        ("organization_id", "0", "usage_events_organization_id_check"),
        ("user_id", "-5", "usage_events_user_id_check"),
        ("api_key_id", "-1", "usage_events_api_key_id_check"),
        ("model_id", "0", "usage_events_model_id_check"),
        ("input_tokens", "-1", "usage_events_input_tokens_check"),
        (
            "input_tokens",
            "100000001",
            "usage_events_input_tokens_check",
        ),
        (
            "output_tokens",
            "100000001",
            "usage_events_output_tokens_check",
        ),
        ("cost_micros", "-1", "usage_events_cost_micros_check"),
        (
            "cost_micros",
            "9000000000000000000",
            "usage_events_cost_micros_check",
        ),
        ("latency_ms", "86400001", "usage_events_latency_ms_check"),
        (
            "occurred_at",
            "now() + interval '1 hour'",
            "usage_events_ingested_at_check",
        ),
    ] {
        let error = insert_with(&db.source, column, value).await.unwrap_err();
        let error = error.as_db_error().expect("a database error");
        assert_eq!(
            error.constraint(),
            Some(constraint),
            "{column} = {value}: {error}"
        );
    }
    // ingested_at cannot be checked against the clock by a CHECK: a trigger
    // refuses it with the SQLSTATE of a violated check.
    let future = insert_with(&db.source, "ingested_at", "now() + interval '1 hour'")
        .await
        .unwrap_err();
    let future = future.as_db_error().expect("a database error");
    assert_eq!(future.code().code(), "23514");
    assert!(
        future.message().contains("ingested in the future"),
        "{future}"
    );
    // The bounds themselves, clock skew, and absent ids are accepted.
    for (column, value) in [
        ("input_tokens", "100000000"),
        ("cost_micros", "100000000000"),
        ("latency_ms", "86400000"),
        ("ingested_at", "now() + interval '4 minutes'"),
        ("api_key_id", "NULL"),
        ("user_id", "NULL"),
    ] {
        insert_with(&db.source, column, value)
            .await
            .unwrap_or_else(|e| panic!("{column} = {value}: {e}"));
    }
}

#[tokio::test]
async fn the_bounds_migration_stops_at_the_validation_a_stored_event_breaks() {
    let db = testdb::TestDb::new().await;
    let client = db.connect().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/operational");
    let mut earlier: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".up.sql") && name.as_str() < "202512060001"
        })
        .collect();
    earlier.sort();
    for file in earlier {
        client
            .batch_execute(&std::fs::read_to_string(file).unwrap())
            .await
            .unwrap();
    }
    insert_with(&client, "api_key_id", "-1").await.unwrap();
    let bounds =
        std::fs::read_to_string(dir.join("202512060001_usage_events_bounds.up.sql")).unwrap();
    let error = client.batch_execute(&bounds).await.unwrap_err();
    let message = error.as_db_error().expect("a database error").message();
    assert!(
        message.contains("\"usage_events_api_key_id_check\"")
            && message.contains("violated by some row"),
        "{message}"
    );
}

#[tokio::test]
async fn a_run_whose_session_ended_is_marked_abandoned_by_the_next() {
    let mut db = Databases::local().await;
    db.insert(&events(50, 3, hour_ago(0), 4)).await;
    const START: &str = "INSERT INTO analytics.rollup_runs (target, backend_pid, backend_started_at) \
         SELECT 'local', pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid() \
         RETURNING id, backend_pid";
    // A run killed mid-way (kill -9): its row stays `running`, its session ends.
    let killed = db.source_db.connect().await;
    let row = killed.query_one(START, &[]).await.unwrap();
    let (killed_run, killed_pid): (i64, i32) = (row.get(0), row.get(1));
    db.source
        .execute("SELECT pg_terminate_backend($1)", &[&killed_pid])
        .await
        .unwrap();
    for _ in 0..100 {
        let gone: bool = db
            .source
            .query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                &[&killed_pid],
            )
            .await
            .unwrap()
            .get(0);
        if gone {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A run going on in another session is left alone.
    let alive = db.source_db.connect().await;
    let alive_run: i64 = alive.query_one(START, &[]).await.unwrap().get(0);

    let report = db.run().await;
    assert_eq!(report.abandoned_runs, vec![killed_run]);
    let state = status(&db.rollups, &settings(), 10).await.unwrap();
    let status_of = |id: i64| {
        let run = state.runs.iter().find(|r| r.id == id).unwrap();
        (run.status.clone(), run.error_message.clone())
    };
    assert_eq!(
        status_of(killed_run),
        (
            "abandoned".to_owned(),
            Some(format!(
                "abandoned: its session (pid {killed_pid}) ended while it was running"
            ))
        )
    );
    assert_eq!(status_of(alive_run).0, "running");
    assert_eq!(status_of(report.run_id).0, "succeeded");
    // Nothing more to mark on the next run.
    assert!(db.run().await.abandoned_runs.is_empty());
    drop(alive);
}

#[tokio::test]
async fn a_role_without_pg_read_all_stats_warns_or_is_refused() {
    let mut db = Databases::local().await;
    db.insert(&events(20, 2, hour_ago(0), 5)).await;
    let role = format!("{}_reader", db.source_db.name());
    db.source
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        ))
        .await
        .unwrap();
    let url = db
        .source_db
        .url()
        .replacen("postgres@", &format!("{role}@"), 1);
    let reader = testdb::connect_to(&url).await;
    let options = RunOptions {
        target: "local".into(),
        mode: RunMode::Incremental,
    };
    let refuse = EngineSettings {
        missing_read_all_stats: MissingGrant::Refuse,
        ..settings()
    };
    let error = rollup_engine::run::run(&reader, &mut db.rollups, &refuse, &options)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "role {role} on the operational database lacks pg_read_all_stats, so the rollup watermark cannot see \
             other roles' open transactions and may pass over their events: GRANT pg_read_all_stats TO {role}, \
             or set missing_read_all_stats = \"warn\" in [engine]"
        )
    );
    let runs: i64 = db
        .rollups
        .query_one("SELECT count(*) FROM analytics.rollup_runs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 0, "a refused run records nothing");

    let warned = rollup_engine::run::run(&reader, &mut db.rollups, &settings(), &options)
        .await
        .unwrap();
    assert!(!warned.sees_all_transactions);

    db.source
        .batch_execute(&format!("GRANT pg_read_all_stats TO {role}"))
        .await
        .unwrap();
    let granted = rollup_engine::run::run(&reader, &mut db.rollups, &refuse, &options)
        .await
        .unwrap();
    assert!(granted.sees_all_transactions);

    drop(reader);
    db.source
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn events_of_a_prepared_transaction_are_not_passed_over() {
    // The shared server may have max_prepared_transactions = 0.
    let cluster = testdb::Cluster::start_with(testdb::ClusterSetup {
        settings: "max_prepared_transactions = 4",
        ..Default::default()
    });
    let url = cluster.url();
    let admin = testdb::connect_to(&url).await;
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    testdb::apply_up_files_to(&admin, &migrations.join("operational")).await;
    testdb::apply_up_files_to(&admin, &migrations.join("analytics")).await;
    let source = testdb::connect_to(&url).await;
    let mut rollups = testdb::connect_to(&url).await;
    let options = RunOptions {
        target: "local".into(),
        mode: RunMode::Incremental,
    };
    insert(&source, &events(30, 3, hour_ago(0), 6)).await;
    rollup_engine::run::run(&source, &mut rollups, &settings(), &options)
        .await
        .unwrap();

    let writer = testdb::connect_to(&url).await;
    writer.batch_execute("BEGIN").await.unwrap();
    insert(&writer, &[one_event(hour_ago(1))]).await;
    writer
        .batch_execute("PREPARE TRANSACTION 'rollup-guard-test'")
        .await
        .unwrap();
    let held = rollup_engine::run::run(&source, &mut rollups, &settings(), &options)
        .await
        .unwrap();
    assert!(held.held_by_prepared);
    assert_eq!(held.watermark_to, held.watermark_from);

    writer
        .batch_execute("COMMIT PREPARED 'rollup-guard-test'")
        .await
        .unwrap();
    let after = rollup_engine::run::run(&source, &mut rollups, &settings(), &options)
        .await
        .unwrap();
    assert!(!after.held_by_prepared);
    assert!(after.watermark_to > held.watermark_to);
    let row = rows_as_text(
        &rollups,
        "SELECT request_count, cost_micros FROM analytics.usage_hourly_rollups WHERE organization_id = 9",
    )
    .await;
    assert_eq!(row, vec!["(1,30)".to_owned()]);
}
