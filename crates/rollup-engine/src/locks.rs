//! Transaction-level advisory locks that keep two runs off the same (organization, day).
//!
//! A batch locks every (organization, day) whose hours it rewrites, which
//! covers those hours too, so no two runs rewrite the same bucket or derive
//! the same day at once. Keys are two `int4`s: the organization id (wrapped
//! into 32 bits: two organizations sharing a key only wait for each other)
//! and `-1 - day`, the day counted since the Unix epoch, negative so that
//! it never equals the small positive keys of other dbops locks. Locks are
//! taken in one order (the global lock, then by day and organization
//! ascending), so runs wait for each other but never deadlock. They live on
//! the rollups database, which is what two runs of the same target share.

use tokio_postgres::Transaction;

use crate::Error;

/// The global lock: shared by every incremental batch, exclusive for a full
/// rebuild. "dbrg" in ASCII, and 0.
const GLOBAL: (i32, i32) = (0x6462_7267, 0);

/// Waits for the exclusive global lock: no incremental batch runs meanwhile.
pub(crate) async fn lock_everything(tx: &Transaction<'_>) -> Result<(), Error> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&GLOBAL.0, &GLOBAL.1],
    )
    .await
    .map_err(Error::db("waiting for the rollup lock"))?;
    Ok(())
}

/// Waits for the shared global lock, then for the lock of every
/// `(epoch day, organization)` of `day_buckets`, which must be sorted.
pub(crate) async fn lock_days(
    tx: &Transaction<'_>,
    day_buckets: &[(i64, i64)],
) -> Result<(), Error> {
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1, $2)",
        &[&GLOBAL.0, &GLOBAL.1],
    )
    .await
    .map_err(Error::db("waiting for the rollup lock"))?;
    debug_assert!(day_buckets.is_sorted());
    // Wrapping is intended: see the module documentation.
    let organizations: Vec<i32> = day_buckets.iter().map(|&(_, org)| org as i32).collect();
    let days: Vec<i32> = day_buckets
        .iter()
        .map(|&(day, _)| -1 - i32::try_from(day).expect("epoch days fit in i32"))
        .collect();
    // unnest keeps the arrays' order, so the locks are taken in sorted order.
    tx.execute(
        "SELECT pg_advisory_xact_lock(o, d) FROM unnest($1::int4[], $2::int4[]) AS b(o, d)",
        &[&organizations, &days],
    )
    .await
    .map_err(Error::db(
        "waiting for the locks of the buckets to recompute",
    ))?;
    Ok(())
}
