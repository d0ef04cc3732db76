//! Usage events: the deterministic generator and the parallel binary-COPY loader.
//!
//! The seeded window is cut into chunks of at most [`CHUNK_ROWS`] events, each
//! inside one UTC day. A chunk's events depend only on the seed and the
//! chunk's number (each chunk has its own random stream), so chunks can be
//! generated and loaded in any order, on any connection, and the result is the
//! same byte for byte. Each chunk is one `COPY ... FROM STDIN (FORMAT binary)`
//! straight into its day's partition: one statement, so a chunk is loaded
//! entirely or not at all, and an interrupted run resumes by skipping the
//! chunks whose events are all there.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::BytesMut;
use futures_util::pin_mut;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;
use time::{Date, OffsetDateTime};
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::Error;
use crate::fixtures::{EVENT_STREAM_BASE, SeededModel, SeededOrganization, stream};

/// The most events in one chunk (one COPY statement, one transaction).
pub(crate) const CHUNK_ROWS: u64 = 100_000;

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// 2000-01-01 00:00 UTC, PostgreSQL's timestamp epoch, in Unix microseconds.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

const COLUMNS: &str = "id, organization_id, user_id, api_key_id, model_id, request_id, status, \
                       input_tokens, output_tokens, cost_micros, latency_ms, occurred_at, ingested_at";
const TYPES: [Type; 13] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::UUID,
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
];

/// A share of events that arrive between one and 48 hours late.
const LATE_MIN_MICROS: i64 = 3_600_000_000;
const LATE_MAX_MICROS: i64 = 48 * 3_600_000_000;

/// One chunk of events: a run of ids inside one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// The chunk's number, which picks its random stream.
    pub number: u64,
    /// The UTC day, whose partition receives the chunk.
    pub day: Date,
    /// The day's slice of the window, in PostgreSQL microseconds.
    pub slice_start: i64,
    /// The end of the day's slice (exclusive).
    pub slice_end: i64,
    /// How many events the day's slice holds in all.
    pub slice_events: u64,
    /// The position of the chunk's first event within the day's slice.
    pub first_in_slice: u64,
    /// How many events the chunk holds.
    pub events: u64,
    /// The id of the chunk's first event.
    pub first_id: i64,
}

/// Cuts `events` events spread evenly over `[until - days, until)` into
/// chunks, with ids from `first_id` on, in time order.
pub(crate) fn plan(events: u64, days: u32, until: OffsetDateTime, first_id: i64) -> Vec<Chunk> {
    let end = pg_micros(until);
    let start = end - i64::from(days) * MICROS_PER_DAY;
    let window = (end - start) as u128;
    let mut chunks = Vec::new();
    let mut slice_start = start;
    let mut assigned: u64 = 0;
    let mut next_id = first_id;
    while slice_start < end {
        let day_start = slice_start - slice_start.rem_euclid(MICROS_PER_DAY);
        let slice_end = (day_start + MICROS_PER_DAY).min(end);
        // Events up to the slice's end, rounded down, so the last slice takes the remainder.
        let through = (u128::from(events) * (slice_end - start) as u128 / window) as u64;
        let slice_events = through - assigned;
        let day = date_of(slice_start);
        let mut first_in_slice = 0;
        while first_in_slice < slice_events {
            let count = CHUNK_ROWS.min(slice_events - first_in_slice);
            chunks.push(Chunk {
                number: chunks.len() as u64,
                day,
                slice_start,
                slice_end,
                slice_events,
                first_in_slice,
                events: count,
                first_id: next_id,
            });
            first_in_slice += count;
            next_id += count as i64;
        }
        assigned = through;
        slice_start = slice_end;
    }
    chunks
}

/// Microseconds since PostgreSQL's epoch.
pub(crate) fn pg_micros(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000) as i64 - PG_EPOCH_UNIX_MICROS
}

fn date_of(pg_micros: i64) -> Date {
    let unix_seconds = (pg_micros + PG_EPOCH_UNIX_MICROS).div_euclid(1_000_000);
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .expect("seeded instants are within the calendar")
        .date()
}

/// What every chunk needs to know, shared by the loader tasks.
#[derive(Debug)]
pub(crate) struct Generator {
    pub seed: u64,
    pub organizations: Vec<SeededOrganization>,
    pub models: Vec<SeededModel>,
    pub late_share: f64,
    /// The end of the window, in PostgreSQL microseconds: no event is ingested later.
    pub until: i64,
}

/// One event, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub id: i64,
    pub organization_id: i64,
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub model_id: i64,
    pub request_id: PgUuid,
    pub status: &'static str,
    pub input_tokens: i32,
    pub output_tokens: i32,
    pub cost_micros: i64,
    pub latency_ms: i32,
    pub occurred_at: PgTimestamp,
    pub ingested_at: PgTimestamp,
}

impl Generator {
    /// The random stream of a chunk.
    pub fn rng(&self, chunk: &Chunk) -> ChaCha8Rng {
        stream(self.seed, EVENT_STREAM_BASE + chunk.number)
    }

    /// Event `i` (0-based) of `chunk`; call with `i` increasing and the chunk's rng.
    pub fn event(&self, chunk: &Chunk, i: u64, rng: &mut ChaCha8Rng) -> Event {
        let position = chunk.first_in_slice + i;
        let span = (chunk.slice_end - chunk.slice_start) as u128;
        let step = (span / u128::from(chunk.slice_events)).max(1) as i64;
        let occurred = chunk.slice_start
            + (span * u128::from(position) / u128::from(chunk.slice_events)) as i64;
        let occurred = (occurred + rng.random_range(0..step)).min(chunk.slice_end - 1);

        let organization = &self.organizations[rng.random_range(0..self.organizations.len())];
        // One request in twenty comes from the console, signed in, without a key.
        let (api_key_id, user_id) = if rng.random_range(0..20) == 0 {
            (
                None,
                Some(organization.users[rng.random_range(0..organization.users.len())]),
            )
        } else {
            let (key, owner) = organization.keys[rng.random_range(0..organization.keys.len())];
            (Some(key), owner)
        };
        // Popularity falls with the model's place in the registry.
        let u: f64 = rng.random();
        let model = &self.models[((u * u) * self.models.len() as f64) as usize];
        let status = match rng.random_range(0..1000) {
            0..950 => "ok",
            950..970 => "client_error",
            970..985 => "rate_limited",
            985..995 => "server_error",
            _ => "timeout",
        };
        let input_tokens: i32 = if status == "rate_limited" {
            0
        } else {
            rng.random_range(20..4_000)
        };
        let output_tokens: i32 = if status == "ok" {
            rng.random_range(1..1_500)
        } else {
            0
        };
        let cost_micros = (i64::from(input_tokens) * model.input_price_micros
            + i64::from(output_tokens) * model.output_price_micros)
            / 1_000_000;
        let latency_ms: i32 = match status {
            "ok" => 150 + output_tokens * 12 + rng.random_range(0..400),
            "timeout" => 30_000,
            _ => rng.random_range(5..300),
        };
        let delay = if rng.random_bool(self.late_share) {
            rng.random_range(LATE_MIN_MICROS..LATE_MAX_MICROS)
        } else {
            rng.random_range(20_000..2_000_000)
        };
        let ingested = (occurred + delay).min(self.until).max(occurred);
        let mut request_id = [0u8; 16];
        rng.fill_bytes(&mut request_id);
        request_id[6] = (request_id[6] & 0x0f) | 0x40; // version 4
        request_id[8] = (request_id[8] & 0x3f) | 0x80; // RFC 4122 variant

        Event {
            id: chunk.first_id + i as i64,
            organization_id: organization.id,
            user_id,
            api_key_id,
            model_id: model.id,
            request_id: PgUuid(request_id),
            status,
            input_tokens,
            output_tokens,
            cost_micros,
            latency_ms,
            occurred_at: PgTimestamp(occurred),
            ingested_at: PgTimestamp(ingested),
        }
    }
}

/// A `timestamptz` as PostgreSQL stores it: microseconds since 2000-01-01 UTC.
/// Encoding it is one big-endian write, which matters at millions of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgTimestamp(pub i64);

impl ToSql for PgTimestamp {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(&self.0.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

/// A `uuid` as its 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgUuid(pub [u8; 16]);

impl ToSql for PgUuid {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }

    to_sql_checked!();
}

/// Counts shared by the loader tasks.
#[derive(Debug, Default)]
pub(crate) struct LoadCounts {
    pub loaded: AtomicU64,
    pub already_present: AtomicU64,
}

/// Loads `chunks` over `streams` connections; each connection takes the next
/// chunk not yet taken. Chunks already loaded are skipped.
pub(crate) async fn load(
    db: &pgconn::ConnConfig,
    generator: Arc<Generator>,
    chunks: Arc<Vec<Chunk>>,
    streams: usize,
    progress: indicatif::ProgressBar,
) -> Result<(u64, u64), Error> {
    let next = Arc::new(AtomicUsize::new(0));
    let counts = Arc::new(LoadCounts::default());
    let mut tasks = tokio::task::JoinSet::<Result<(), Error>>::new();
    for _ in 0..streams.min(chunks.len()).max(1) {
        let (client, _connection) = pgconn::connect(db, "dbops seed loader").await?;
        let (generator, chunks, next, counts, progress) = (
            generator.clone(),
            chunks.clone(),
            next.clone(),
            counts.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            loop {
                let Some(chunk) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return Ok(());
                };
                if chunk_present(&client, chunk).await? {
                    counts
                        .already_present
                        .fetch_add(chunk.events, Ordering::Relaxed);
                    progress.inc(chunk.events);
                } else {
                    copy_chunk(&client, &generator, chunk, &progress).await?;
                    counts.loaded.fetch_add(chunk.events, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => result?,
            Err(join_error) => return Err(Error::Task(join_error.to_string())),
        }
    }
    Ok((
        counts.loaded.load(Ordering::Relaxed),
        counts.already_present.load(Ordering::Relaxed),
    ))
}

fn partition(chunk: &Chunk) -> String {
    partitions::partition_name("usage_events", chunk.day)
}

/// Whether the chunk is loaded completely. A partly present chunk (rows
/// deleted by hand) has its remaining rows deleted, to be loaded again whole.
async fn chunk_present(client: &Client, chunk: &Chunk) -> Result<bool, Error> {
    let partition = partition(chunk);
    let context = || {
        format!(
            "checking whether chunk {} is loaded in {partition}",
            chunk.number
        )
    };
    let last_id = chunk.first_id + chunk.events as i64 - 1;
    let present: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {partition} WHERE id BETWEEN $1 AND $2"),
            &[&chunk.first_id, &last_id],
        )
        .await
        .map_err(Error::db(context()))?
        .get(0);
    if present as u64 == chunk.events {
        return Ok(true);
    }
    if present > 0 {
        tracing::info!(
            chunk = chunk.number,
            present,
            expected = chunk.events,
            "reloading a partly present chunk"
        );
        client
            .execute(
                &format!("DELETE FROM {partition} WHERE id BETWEEN $1 AND $2"),
                &[&chunk.first_id, &last_id],
            )
            .await
            .map_err(Error::db(context()))?;
    }
    Ok(false)
}

async fn copy_chunk(
    client: &Client,
    generator: &Generator,
    chunk: &Chunk,
    progress: &indicatif::ProgressBar,
) -> Result<(), Error> {
    let partition = partition(chunk);
    let context = || {
        format!(
            "copying chunk {} ({} events) into {partition}",
            chunk.number, chunk.events
        )
    };
    let sink = client
        .copy_in(&format!(
            "COPY {partition} ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(Error::db(context()))?;
    let writer = BinaryCopyInWriter::new(sink, &TYPES);
    pin_mut!(writer);
    let mut rng = generator.rng(chunk);
    for i in 0..chunk.events {
        let e = generator.event(chunk, i, &mut rng);
        writer
            .as_mut()
            .write(&[
                &e.id,
                &e.organization_id,
                &e.user_id,
                &e.api_key_id,
                &e.model_id,
                &e.request_id,
                &e.status,
                &e.input_tokens,
                &e.output_tokens,
                &e.cost_micros,
                &e.latency_ms,
                &e.occurred_at,
                &e.ingested_at,
            ])
            .await
            .map_err(Error::db(context()))?;
        if i % 8_192 == 8_191 {
            progress.inc(8_192);
        }
    }
    writer.finish().await.map_err(Error::db(context()))?;
    progress.inc(chunk.events % 8_192);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_plan_covers_every_event_once_in_time_order() {
        let until = datetime!(2025-11-15 13:00 UTC);
        let chunks = plan(1_000_003, 3, until, 10);
        assert_eq!(chunks.iter().map(|c| c.events).sum::<u64>(), 1_000_003);
        assert_eq!(chunks.first().unwrap().first_id, 10);
        for pair in chunks.windows(2) {
            assert_eq!(pair[1].first_id, pair[0].first_id + pair[0].events as i64);
            assert!(pair[1].slice_start >= pair[0].slice_start);
            assert_eq!(pair[1].number, pair[0].number + 1);
        }
        // Three 24-hour days starting at 13:00 touch four UTC days.
        let days: std::collections::BTreeSet<_> = chunks.iter().map(|c| c.day).collect();
        assert_eq!(days.len(), 4);
        assert!(chunks.iter().all(|c| c.events <= CHUNK_ROWS));
    }

    #[test]
    fn timestamps_use_the_postgres_epoch() {
        assert_eq!(pg_micros(datetime!(2000-01-01 00:00 UTC)), 0);
        assert_eq!(
            pg_micros(datetime!(2000-01-02 00:00:00.000001 UTC)),
            MICROS_PER_DAY + 1
        );
        assert_eq!(
            date_of(MICROS_PER_DAY + 1),
            time::macros::date!(2000 - 01 - 02)
        );
    }
}
