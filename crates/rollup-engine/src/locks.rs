//! Transaction-level advisory locks that keep two runs off the same hour or day.
//!
//! Keys are two `int4`s: a class naming the kind of bucket, and the bucket as
//! hours or days since the Unix epoch. Locks are taken in one order (the
//! global lock, then days ascending, then hours ascending), so runs wait for
//! each other but never deadlock. They live on the rollups database, which is
//! what two runs of the same target share.

use tokio_postgres::Transaction;

use crate::Error;

/// Class of the global lock: shared by every incremental batch, exclusive
/// for a full rebuild. "dbrg" in ASCII.
const GLOBAL: i32 = 0x6462_7267;
/// Class of day locks: "dbrd".
const DAY: i32 = 0x6462_7264;
/// Class of hour locks: "dbrh".
const HOUR: i32 = 0x6462_7268;

/// Waits for the exclusive global lock: no incremental batch runs meanwhile.
pub(crate) async fn lock_everything(tx: &Transaction<'_>) -> Result<(), Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&GLOBAL])
        .await
        .map_err(Error::db("waiting for the rollup lock"))?;
    Ok(())
}

/// Waits for the shared global lock, then for the locks of `days` and
/// `hours` (each sorted ascending, as epoch days and epoch hours).
pub(crate) async fn lock_buckets(
    tx: &Transaction<'_>,
    days: &[i64],
    hours: &[i64],
) -> Result<(), Error> {
    tx.execute("SELECT pg_advisory_xact_lock_shared($1, 0)", &[&GLOBAL])
        .await
        .map_err(Error::db("waiting for the rollup lock"))?;
    for (class, keys, what) in [(DAY, days, "days"), (HOUR, hours, "hours")] {
        debug_assert!(keys.is_sorted());
        let keys: Vec<i32> = keys
            .iter()
            .map(|&k| i32::try_from(k).expect("epoch hours fit in i32 until the year 245,000"))
            .collect();
        // unnest keeps the array's order, so the locks are taken ascending.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) AS k",
            &[&class, &keys],
        )
        .await
        .map_err(Error::db(format!(
            "waiting for the locks of the {what} to recompute"
        )))?;
    }
    Ok(())
}
