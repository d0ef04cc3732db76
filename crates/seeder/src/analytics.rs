//! `dbops seed analytics`: organizations, models, budgets and millions of usage events, loaded with parallel binary COPY.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::api_key::Keyring;
use crate::events::{self, Generator};
use crate::{Error, fixtures, marker};

/// What to seed.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsConfig {
    /// The seed: the same seed and settings give the same rows, byte for byte.
    pub seed: u64,
    /// How many usage events.
    pub events: u64,
    /// How many days (of 24 hours, ending at `until`) the events spread over.
    pub days: u32,
    /// How many organizations the events belong to.
    pub organizations: usize,
    /// The share of events ingested between one and 48 hours after they
    /// occurred (late-arriving events), from 0 to 1.
    pub late_share: f64,
    /// The end of the seeded window. `None`: the window of an earlier run
    /// with the same settings, or else the start of the current hour.
    pub until: Option<OffsetDateTime>,
    /// How many connections load events in parallel.
    pub streams: usize,
    /// Draw a progress bar on standard error when it is a terminal.
    pub progress: bool,
}

impl Default for AnalyticsConfig {
    fn default() -> AnalyticsConfig {
        AnalyticsConfig {
            seed: 1,
            events: 1_000_000,
            days: 30,
            organizations: 1_000,
            late_share: 0.02,
            until: None,
            streams: 2,
            progress: true,
        }
    }
}

impl AnalyticsConfig {
    fn validate(&self) -> Result<(), Error> {
        let invalid = |setting, message: &str| {
            Err(Error::InvalidSetting {
                setting,
                message: message.to_owned(),
            })
        };
        if self.days == 0 || self.days > 3_660 {
            return invalid("--days", "must be between 1 and 3660");
        }
        if self.organizations == 0 || self.organizations > 1_000_000 {
            return invalid("--orgs", "must be between 1 and 1000000");
        }
        if !(0.0..=1.0).contains(&self.late_share) {
            return invalid("--late-share", "must be between 0 and 1");
        }
        if self.streams == 0 || self.streams > 64 {
            return invalid("--streams", "must be between 1 and 64");
        }
        if i64::try_from(self.events).is_err() {
            return invalid("--events", "is too large");
        }
        Ok(())
    }

    /// The settings that define the data set, as recorded in dbops.seed_runs.
    fn parameters(&self, until: OffsetDateTime) -> Value {
        json!({
            "seed": self.seed.to_string(),
            "events": self.events,
            "days": self.days,
            "organizations": self.organizations,
            "late_share": self.late_share,
            "until": until.unix_timestamp(),
        })
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct AnalyticsReport {
    /// Organizations inserted (with their users, keys and budgets).
    pub organizations: u64,
    /// API keys inserted. Their secrets are not kept: seed the operational
    /// data to get keys to use.
    pub keys: u64,
    /// Models inserted into the registry.
    pub models: u64,
    /// Budgets inserted.
    pub budgets: u64,
    /// Partitions of usage_events created for the seeded days.
    pub partitions_created: Vec<String>,
    /// Events loaded by this run.
    pub events_loaded: u64,
    /// Events that an earlier run had loaded already.
    pub events_present: u64,
    /// The end of the seeded window.
    pub until: Option<OffsetDateTime>,
    /// Time spent loading events (COPY only).
    pub load_time: Duration,
}

/// Seeds organizations, models, budgets and usage events.
///
/// Entities are inserted in one transaction; events are loaded in chunks of
/// up to 100,000 (one COPY each) over `streams` connections, into the daily
/// partitions (created as needed). A rerun with the same settings loads only
/// the chunks that are missing, so an interrupted run is resumed and a
/// completed one changes nothing.
///
/// # Errors
/// [`Error::InvalidSetting`] for settings out of range;
/// [`Error::SeededDifferently`] when the database holds seed data made with
/// other settings; [`Error::Database`] or [`Error::Partitions`] when the
/// database refuses a statement.
#[tracing::instrument(skip_all, fields(seed = config.seed, events = config.events, days = config.days))]
pub async fn seed_analytics(
    db: &pgconn::ConnConfig,
    config: &AnalyticsConfig,
    keyring: &Keyring,
) -> Result<AnalyticsReport, Error> {
    config.validate()?;
    let (mut client, _connection) = pgconn::connect(db, "dbops seed").await?;
    // The lock below needs a server session of its own, which a pooler in
    // transaction pooling mode does not give.
    let (second, _second_connection) = pgconn::connect(db, "dbops seed session check").await?;
    pgconn::check_session_kept(&client, Some(&second)).await?;
    drop(second);
    // One analytics seeder at a time per database, for the whole run: two
    // runs loading the same chunks side by side would collide on their ids.
    // The lock goes with this connection.
    client
        .execute(
            "SELECT pg_advisory_lock(hashtextextended('dbops.seed:analytics', 0))",
            &[],
        )
        .await
        .map_err(Error::db("waiting for another analytics seeder to finish"))?;
    let mut report = AnalyticsReport::default();

    let tx = client
        .transaction()
        .await
        .map_err(Error::db("starting the seeding transaction"))?;
    let recorded = marker::lock_and_read(&tx, "analytics", config.seed).await?;
    let (until, first_id) = match recorded {
        Some(recorded) => {
            let until = config
                .until
                .or_else(|| recorded_until(&recorded.parameters))
                .unwrap_or_else(start_of_current_hour);
            if recorded.parameters != config.parameters(until) {
                return Err(Error::SeededDifferently {
                    kind: "analytics",
                    recorded: recorded.parameters.to_string(),
                    requested: config.parameters(until).to_string(),
                });
            }
            (until, recorded.first_event_id.unwrap_or(1))
        }
        None => {
            let until = config.until.unwrap_or_else(start_of_current_hour);
            let first_id = reserve_event_ids(&tx, config.events).await?;
            marker::record(
                &tx,
                "analytics",
                config.seed,
                &config.parameters(until),
                Some(first_id),
            )
            .await?;
            (until, first_id)
        }
    };
    let (models_inserted, models) = fixtures::insert_models(&tx).await?;
    let (inserted, organizations) =
        fixtures::insert_organizations(&tx, keyring, config.seed, config.organizations).await?;
    tx.commit()
        .await
        .map_err(Error::db("committing the seeded organizations"))?;
    report.models = models_inserted;
    report.organizations = inserted.organizations;
    report.budgets = inserted.budgets;
    report.keys = inserted.keys.len() as u64;
    report.until = Some(until);

    let chunks = events::plan(config.events, config.days, until, first_id);
    if let (Some(first), Some(last)) = (chunks.first(), chunks.last()) {
        let partitions = partitions::create_days(&mut client, "usage_events", first.day..=last.day)
            .await
            .map_err(Error::Partitions)?;
        report.partitions_created = partitions.created;
    }

    let generator = Arc::new(Generator {
        seed: config.seed,
        organizations,
        models,
        late_share: config.late_share,
        until: events::pg_micros(until),
    });
    let progress = if config.progress && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(config.events);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} usage events {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta} left)",
            )
            .expect("the progress template is valid"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = Instant::now();
    let (loaded, present) = events::load(
        db,
        generator,
        Arc::new(chunks),
        config.streams,
        progress.clone(),
    )
    .await?;
    progress.finish_and_clear();
    report.load_time = started.elapsed();
    report.events_loaded = loaded;
    report.events_present = present;

    if loaded > 0 {
        // Fresh statistics, so that the first queries get good plans.
        client
            .batch_execute("ANALYZE usage_events")
            .await
            .map_err(Error::db("analyzing usage_events"))?;
    }
    tracing::info!(
        loaded,
        present,
        seconds = report.load_time.as_secs_f64(),
        organizations = report.organizations,
        "seeded analytics data"
    );
    Ok(report)
}

fn recorded_until(parameters: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(parameters.get("until")?.as_i64()?).ok()
}

fn start_of_current_hour() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_time(
        time::Time::from_hms(now.hour(), 0, 0).expect("an hour of the day is a valid time"),
    )
}

/// Takes a block of `count` ids from usage_events' identity sequence, so that
/// seeded events have ids no other writer gets. Writers draw ids inside their
/// INSERT, under a lock that conflicts with the one taken here, so none draws
/// an id in the middle of the reservation.
async fn reserve_event_ids(tx: &tokio_postgres::Transaction<'_>, count: u64) -> Result<i64, Error> {
    tx.batch_execute("LOCK TABLE usage_events IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(Error::db("locking usage_events to reserve event ids"))?;
    let row = tx
        .query_one(
            "WITH s AS (SELECT pg_get_serial_sequence('usage_events', 'id') AS seq), \
                  first AS (SELECT nextval(seq) AS id FROM s) \
             SELECT first.id, CASE WHEN $1::int8 > 1 THEN setval(s.seq, first.id + $1::int8 - 1) END \
             FROM first, s",
            &[&(count as i64)],
        )
        .await
        .map_err(Error::db("reserving event ids"))?;
    Ok(row.get(0))
}
