//! Removing the rows a full or range rewrite did not write again.
//!
//! An incremental run only ever adds events to its buckets, so the newer
//! version of every row it rewrites replaces the older one. A full rebuild or
//! a recompute of a range rewrites every bucket that still has events; a row
//! it did not write again (its events were deleted, say by a retention job,
//! or it held a poisoned event) would stay visible. So such a run deletes,
//! in what it covers,
//!
//! 1. before writing, the rows with a version at least its own: no run has
//!    written them (run ids only grow and the run holds the target's lock),
//!    they were written by hand or restored from elsewhere, and they would
//!    hide the run's rows; deleting them first matters, since a merge keeps
//!    the highest version and could drop the run's row before a later delete
//!    removed the foreign one;
//! 2. after writing, the rows with an older version.
//!
//! Each delete is a mutation (`ALTER TABLE ... DELETE`, ClickHouse 18.16 and
//! later) on each server's local table; the run waits until every server has
//! finished it, so what the run reports is what readers see.

use std::time::Duration;

use crate::{ClickHouse, Error};

/// How often a run asks whether a mutation is finished.
const POLL: Duration = Duration::from_millis(50);

/// How long a run waits for a server to finish a mutation.
const DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Which rows [`delete`] removes, besides its condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versions {
    /// Versions at least the run's own, before it writes.
    NotOlder,
    /// Versions older than the run's own, after it wrote.
    Older,
}

/// Deletes the rows of `table` (a `*_local` table) matching `condition`
/// whose version is `versions` than `version`, on every server, and waits
/// until the servers have.
pub(crate) async fn delete(
    ch: &ClickHouse,
    table: &str,
    condition: &str,
    versions: Versions,
    version: u64,
) -> Result<(), Error> {
    let (operator, what) = match versions {
        Versions::NotOlder => (">=", "at least"),
        Versions::Older => ("<", "older than"),
    };
    let context = format!("deleting the rows of {table} with versions {what} run {version}");
    let stale = format!("version {operator} {version} AND ({condition})");
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
