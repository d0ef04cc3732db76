//! Partition maintenance against a real usage_events table: creation ahead, strays in the default partition, retention, concurrency.

use std::path::Path;
use std::time::Duration;

use partitions::{EnsureConfig, Retire};
use testdb::TestDb;
use time::OffsetDateTime;
use time::macros::{date, datetime};
use tokio_postgres::Client;

const NOW: OffsetDateTime = datetime!(2030-01-10 15:30 UTC);

async fn migrated() -> TestDb {
    let db = TestDb::new().await;
    db.apply_up_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/operational"))
        .await;
    // The migration creates partitions around the real today; the tests work
    // around a fixed NOW, far from it, and start without dated partitions.
    // Their events are ingested at that NOW, years from the real clock, which
    // the trigger refusing future ingestion would reject: it goes too.
    db.connect()
        .await
        .batch_execute(
            "DO $$ DECLARE p regclass; BEGIN
                 FOR p IN SELECT inhrelid::regclass FROM pg_inherits
                          WHERE inhparent = 'usage_events'::regclass AND inhrelid <> 'usage_events_default'::regclass
                 LOOP EXECUTE format('DROP TABLE %s', p); END LOOP;
             END $$;
             DROP TRIGGER usage_events_refuse_future ON usage_events",
        )
        .await
        .unwrap();
    db
}

fn config(retention_days: Option<u64>, retire: Retire) -> EnsureConfig {
    EnsureConfig {
        table: "usage_events".to_owned(),
        ahead_days: 3,
        retention: retention_days.map(|days| Duration::from_secs(days * 86_400)),
        retire,
        now: NOW,
    }
}

async fn insert_event(client: &Client, occurred_at: &str) -> i64 {
    client
        .query_one(
            "INSERT INTO usage_events (organization_id, model_id, request_id, status, input_tokens, output_tokens,
                                       cost_micros, latency_ms, occurred_at, ingested_at)
             VALUES (1, 1, gen_random_uuid(), 'ok', 10, 20, 30, 40, $1::text::timestamptz, $1::text::timestamptz)
             RETURNING id",
            &[&occurred_at],
        )
        .await
        .unwrap()
        .get(0)
}

async fn partition_of(client: &Client, id: i64) -> String {
    client
        .query_one(
            "SELECT tableoid::regclass::text FROM usage_events WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

async fn attached(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'usage_events'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn creates_the_days_ahead_once() {
    let db = migrated().await;
    let mut client = db.connect().await;
    let report = partitions::ensure(&mut client, &config(None, Retire::Detach))
        .await
        .unwrap();
    assert_eq!(
        report.created,
        [
            "usage_events_p20300110",
            "usage_events_p20300111",
            "usage_events_p20300112",
            "usage_events_p20300113"
        ]
    );
    assert_eq!(report.table, "public.usage_events");
    let again = partitions::ensure(&mut client, &config(None, Retire::Detach))
        .await
        .unwrap();
    assert!(again.is_noop(), "{again:?}");
    // The new partitions carry every index of the parent.
    let count = |table: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT count(*) FROM pg_indexes WHERE tablename = $1",
                    &[&table],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let parent = count("usage_events").await;
    assert!(
        parent >= 4,
        "the parent has its primary key and secondary indexes: {parent}"
    );
    assert_eq!(count("usage_events_p20300112").await, parent);
}

#[tokio::test]
async fn rows_waiting_in_the_default_partition_move_to_their_day() {
    let db = migrated().await;
    let mut client = db.connect().await;
    let past = insert_event(&client, "2030-01-07 23:59:59.999999+00").await;
    let future = insert_event(&client, "2030-02-01 00:00:00+00").await;
    let far_future = insert_event(&client, "2030-02-01 12:00:00+00").await;
    assert_eq!(partition_of(&client, past).await, "usage_events_default");

    let report = partitions::ensure(&mut client, &config(None, Retire::Detach))
        .await
        .unwrap();
    assert_eq!(report.moved_from_default, 3);
    assert!(
        report
            .created
            .contains(&"usage_events_p20300107".to_owned()),
        "{report:?}"
    );
    assert!(
        report
            .created
            .contains(&"usage_events_p20300201".to_owned()),
        "{report:?}"
    );
    assert_eq!(partition_of(&client, past).await, "usage_events_p20300107");
    assert_eq!(
        partition_of(&client, future).await,
        "usage_events_p20300201"
    );
    assert_eq!(
        partition_of(&client, far_future).await,
        "usage_events_p20300201"
    );
    let left: i64 = client
        .query_one("SELECT count(*) FROM usage_events_default", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert!(
        partitions::ensure(&mut client, &config(None, Retire::Detach))
            .await
            .unwrap()
            .is_noop()
    );
}

#[tokio::test]
async fn old_partitions_are_detached_and_late_rows_follow_them() {
    let db = migrated().await;
    let mut client = db.connect().await;
    partitions::create_days(
        &mut client,
        "usage_events",
        date!(2029 - 12 - 01)..=date!(2029 - 12 - 03),
    )
    .await
    .unwrap();
    let old = insert_event(&client, "2029-12-01 10:00:00+00").await;

    // 40 days before NOW is 2029-12-01 15:30: the 1st is still partly inside
    // the retention, so only days before it go.
    let kept = partitions::ensure(&mut client, &config(Some(40), Retire::Detach))
        .await
        .unwrap();
    assert!(kept.retired.is_empty(), "{kept:?}");
    let report = partitions::ensure(&mut client, &config(Some(39), Retire::Detach))
        .await
        .unwrap();
    assert_eq!(report.retired, ["usage_events_p20291201"]);
    assert!(
        !attached(&client)
            .await
            .contains(&"usage_events_p20291201".to_owned())
    );
    let archived: i64 = client
        .query_one(
            "SELECT count(*) FROM usage_events_p20291201 WHERE id = $1",
            &[&old],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(archived, 1, "a detached partition keeps its rows");

    // A late event for the archived day lands in the default partition, and
    // the next run moves it into the archive rather than losing it.
    let late = insert_event(&client, "2029-12-01 11:00:00+00").await;
    let report = partitions::ensure(&mut client, &config(Some(39), Retire::Detach))
        .await
        .unwrap();
    assert_eq!(
        (
            report.moved_from_default,
            report.created.len(),
            report.retired.len()
        ),
        (1, 0, 0)
    );
    let archived: i64 = client
        .query_one(
            "SELECT count(*) FROM usage_events_p20291201 WHERE id = $1",
            &[&late],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(archived, 1);

    let dropped = partitions::ensure(&mut client, &config(Some(37), Retire::Drop))
        .await
        .unwrap();
    assert_eq!(
        dropped.retired,
        ["usage_events_p20291202", "usage_events_p20291203"]
    );
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('usage_events_p20291202') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!exists);
}

#[tokio::test]
async fn concurrent_runs_do_the_work_once() {
    let db = migrated().await;
    let mut setup = db.connect().await;
    insert_event(&setup, "2030-01-05 08:00:00+00").await;
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let mut client = db.connect().await;
        runs.spawn(async move {
            partitions::ensure(&mut client, &config(Some(400), Retire::Detach)).await
        });
    }
    let reports = runs.join_all().await;
    let mut created: Vec<String> = Vec::new();
    let mut moved = 0;
    for report in reports {
        let report = report.unwrap();
        created.extend(report.created);
        moved += report.moved_from_default;
    }
    created.sort();
    assert_eq!(created.len(), 5, "{created:?}");
    created.dedup();
    assert_eq!(created.len(), 5, "a partition was created twice");
    assert_eq!(moved, 1);
    assert!(
        partitions::ensure(&mut setup, &config(Some(400), Retire::Detach))
            .await
            .unwrap()
            .is_noop()
    );
}

#[tokio::test]
async fn tables_that_are_not_partitioned_by_day_are_refused() {
    let db = migrated().await;
    let mut client = db.connect().await;
    for table in ["organizations", "no_such_table"] {
        let error = partitions::ensure(
            &mut client,
            &EnsureConfig {
                table: table.to_owned(),
                ..config(None, Retire::Drop)
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, partitions::Error::NotDailyPartitioned { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(table), "{error}");
    }
}
