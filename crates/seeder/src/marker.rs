//! The record of what was seeded, kept in dbops's bookkeeping schema, which makes reruns idempotent.
//!
//! `dbops.seed_runs` holds one row per kind of seed data (`operational`,
//! `analytics`) with the parameters it was made with. All kinds in one
//! database share one seed: two seeds would mix two unrelated data sets.

use serde_json::Value;
use tokio_postgres::Transaction;

use crate::Error;

/// A recorded seeding run.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub parameters: Value,
    pub first_event_id: Option<i64>,
}

/// Creates the bookkeeping table if needed and locks it until the end of the
/// transaction, so that concurrent seeders run one after the other; then
/// checks that no other seed was used. Returns the record of `kind`, if any.
pub(crate) async fn lock_and_read(
    tx: &Transaction<'_>,
    kind: &'static str,
    seed: u64,
) -> Result<Option<Recorded>, Error> {
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS dbops;
         CREATE TABLE IF NOT EXISTS dbops.seed_runs (
             kind text PRIMARY KEY,
             seed numeric(20) NOT NULL,
             parameters jsonb NOT NULL,
             first_event_id bigint,
             recorded_at timestamptz NOT NULL DEFAULT now()
         );
         LOCK TABLE dbops.seed_runs IN EXCLUSIVE MODE;",
    )
    .await
    .map_err(Error::db("preparing dbops.seed_runs"))?;
    let rows = tx
        .query("SELECT kind, seed::text, parameters, first_event_id FROM dbops.seed_runs ORDER BY kind", &[])
        .await
        .map_err(Error::db("reading dbops.seed_runs"))?;
    let mut own = None;
    for row in rows {
        let recorded_kind: String = row.get(0);
        let recorded_seed: String = row.get(1);
        let parameters: Value = row.get(2);
        if recorded_seed != seed.to_string() {
            return Err(Error::SeededDifferently {
                kind,
                recorded: format!("seed {recorded_seed} (for {recorded_kind})"),
                requested: format!("seed {seed}"),
            });
        }
        if recorded_kind == kind {
            own = Some(Recorded {
                parameters,
                first_event_id: row.get(3),
            });
        }
    }
    Ok(own)
}

/// Records a run of `kind`.
pub(crate) async fn record(
    tx: &Transaction<'_>,
    kind: &'static str,
    seed: u64,
    parameters: &Value,
    first_event_id: Option<i64>,
) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO dbops.seed_runs (kind, seed, parameters, first_event_id) VALUES ($1, $2::text::numeric, $3, $4) \
         ON CONFLICT (kind) DO NOTHING",
        &[&kind, &seed.to_string(), parameters, &first_event_id],
    )
    .await
    .map_err(Error::db("recording the run in dbops.seed_runs"))?;
    Ok(())
}
