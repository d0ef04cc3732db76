//! Removing the rows a full or range rewrite did not write again.
//!
//! An incremental run only ever adds events to its buckets, so the newer
//! version of every row it rewrites replaces the older one. A full rebuild or
//! a recompute of a range rewrites every bucket that still has events; a row
//! it did not write again (its events were deleted, say by a retention job,
//! or it held a poisoned event) would stay visible, so after writing, the run
//! deletes the rows of the range with any version but its own: older ones,
//! and any row written with a higher version than a run has (by hand, or by
//! a restored backup), which would otherwise hide the run's rows for good.
//! No other run writes meanwhile: the run holds the target's lock. That
//! is a mutation (`ALTER TABLE ... DELETE`, ClickHouse 18.16 and later) on
//! each server's local table; the run waits until every server has finished
//! it, so what the run reports is what readers see.

use std::time::Duration;

use crate::{ClickHouse, Error};

/// How often a run asks whether a mutation is finished.
const POLL: Duration = Duration::from_millis(50);

/// How long a run waits for a server to finish a mutation.
const DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Deletes the rows of `table` (a `*_local` table) matching `condition`
/// whose version is not `version`, on every server, and waits until the
/// servers have.
pub(crate) async fn delete_older(
    ch: &ClickHouse,
    table: &str,
    condition: &str,
    version: u64,
) -> Result<(), Error> {
    let context = format!("deleting the rows of {table} not written by run {version}");
    let stale = format!("version != {version} AND ({condition})");
    for node in 0..ch.nodes() {
        // A mutation rewrites parts whether or not a row matches: skip it
        // where none does (a first run on empty tables, say).
        let matching = ch
            .query(
                node,
                &format!("SELECT count() FROM {table} WHERE {stale} FORMAT TabSeparated"),
                &context,
            )
            .await?;
        if matching.trim() != "0" {
            ch.query(
                node,
                &format!("ALTER TABLE {table} DELETE WHERE {stale}"),
                &context,
            )
            .await?;
        }
    }
    let pending = format!(
        "SELECT count() FROM system.mutations WHERE database = currentDatabase() \
         AND table = '{table}' AND is_done = 0 FORMAT TabSeparated"
    );
    let started = std::time::Instant::now();
    for node in 0..ch.nodes() {
        while ch.query(node, &pending, &context).await?.trim() != "0" {
            if started.elapsed() > DEADLINE {
                return Err(Error::Server {
                    node: ch.node_name(node),
                    context,
                    message: format!(
                        "the mutation did not finish within {} minutes (see system.mutations)",
                        DEADLINE.as_secs() / 60
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}
