//! Schema migrations of the ClickHouse target (`migrations/clickhouse/`).
//!
//! The files are named and paired as every dbops migration is
//! (`YYYYMMDDHHMM_slug.up.sql` and `.down.sql`, read with
//! [`migrate_core::Source`]), but ClickHouse has no transactions and no
//! advisory locks, so a run differs from a PostgreSQL one:
//!
//! - **Statement by statement, on every server.** Each file is split into
//!   statements as a no-transaction migration is
//!   ([`migrate_core::split::split_statements`]) and run on each server of
//!   the cluster in turn, `{cluster}` replaced by the cluster's name. A
//!   failed statement leaves the ones before it applied on that server, so
//!   the files are written to run again from the top (`IF NOT EXISTS`,
//!   `IF EXISTS`).
//! - **History in ClickHouse.** Each server has a `dbops_schema_history`
//!   table in the target's database: an append-only log of (version, name,
//!   checksum, direction, time, sequence). A migration is applied on a
//!   server when its latest entry there says `up`; a row is appended after
//!   the last statement of a file succeeded on that server, so a file that
//!   failed half-way is not recorded and runs again next time. Applied
//!   migrations whose file changed are refused.
//! - **The lock in PostgreSQL.** One run at a time holds the session
//!   advisory lock [`LOCK`] on the PostgreSQL connection the caller passes
//!   (the database the analytics target already uses), taken with
//!   `pg_try_advisory_lock` and released at the end; a crashed run's lock
//!   goes with its session.

use std::fmt::Write as _;

use migrate_core::source::{Migration, Script};
use migrate_core::split::{line_column, split_statements};
use migrate_core::{Direction, Source};
use tokio_postgres::Client;

use crate::client::Scope;
use crate::transforms::postgres;
use crate::{ClickHouse, Error};

/// The session advisory lock (two `int4` keys) a migration run holds in
/// PostgreSQL: "dbch" in ASCII, and 1.
pub const LOCK: (i32, i32) = (0x6462_6368, 1);

const HISTORY_TABLE: &str = "CREATE TABLE IF NOT EXISTS dbops_schema_history (\
     version Int64, name String, checksum UInt64, direction String, \
     applied_at DateTime, seq UInt64) \
     ENGINE = MergeTree ORDER BY (version, seq)";

/// One migration applied or reverted on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The server's URL.
    pub node: String,
    /// `VERSION_slug`.
    pub label: String,
    /// Up or down.
    pub direction: Direction,
}

/// Applies every migration of `source` not yet applied, on every server,
/// oldest first, holding the run's lock on `lock_db`. Returns what it did.
pub async fn up(ch: &ClickHouse, lock_db: &Client, source: &Source) -> Result<Vec<Step>, Error> {
    with_session_lock(lock_db, LOCK, Error::Locked, async {
        let mut steps = Vec::new();
        for node in 0..ch.nodes() {
            let applied = prepare(ch, node, source).await?;
            for migration in source.migrations() {
                if !applied.contains(&migration.version) {
                    steps.push(apply(ch, node, migration, Direction::Up).await?);
                }
            }
        }
        Ok(steps)
    })
    .await
}

/// Reverts, newest first, every applied migration of `source` newer than
/// `to` (0 for all), on every server, holding the run's lock on `lock_db`.
pub async fn down(
    ch: &ClickHouse,
    lock_db: &Client,
    source: &Source,
    to: i64,
) -> Result<Vec<Step>, Error> {
    with_session_lock(lock_db, LOCK, Error::Locked, async {
        let mut steps = Vec::new();
        for node in 0..ch.nodes() {
            let applied = prepare(ch, node, source).await?;
            for migration in source.migrations().iter().rev() {
                if migration.version > to && applied.contains(&migration.version) {
                    steps.push(apply(ch, node, migration, Direction::Down).await?);
                }
            }
        }
        Ok(steps)
    })
    .await
}

/// The versions applied on each server, oldest first.
pub async fn applied(ch: &ClickHouse) -> Result<Vec<Vec<i64>>, Error> {
    let mut all = Vec::new();
    for node in 0..ch.nodes() {
        let exists = ch
            .query(
                node,
                "EXISTS TABLE dbops_schema_history",
                "looking for the history table",
            )
            .await;
        match exists {
            Ok(answer) if answer.trim() == "1" => {
                all.push(history(ch, node).await?.into_iter().map(|e| e.0).collect());
            }
            Ok(_) => all.push(Vec::new()),
            // No database yet: nothing applied.
            Err(Error::Server { message, .. }) if message.contains("Code: 81") => {
                all.push(Vec::new());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(all)
}

/// Runs `work` holding the session advisory lock `key` on `lock_db`,
/// releasing it whatever `work` returned; fails with `busy` at once when
/// another session holds it.
pub(crate) async fn with_session_lock<T>(
    lock_db: &Client,
    key: (i32, i32),
    busy: Error,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let got: bool = lock_db
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&key.0, &key.1])
        .await
        .map_err(postgres("taking the lock"))?
        .get(0);
    if !got {
        return Err(busy);
    }
    let result = work.await;
    let unlocked = lock_db
        .execute("SELECT pg_advisory_unlock($1, $2)", &[&key.0, &key.1])
        .await
        .map_err(postgres("releasing the lock"));
    let value = result?;
    unlocked?;
    Ok(value)
}

/// Creates the database and the history table on `node` when missing,
/// checks the applied migrations' checksums and returns their versions.
async fn prepare(ch: &ClickHouse, node: usize, source: &Source) -> Result<Vec<i64>, Error> {
    let database = &ch.settings().database;
    ch.send(
        node,
        Scope::Server,
        &format!("CREATE DATABASE IF NOT EXISTS {database}"),
        "creating the database",
    )
    .await?;
    ch.query(node, HISTORY_TABLE, "creating the history table")
        .await?;
    let mut applied = Vec::new();
    for (version, checksum) in history(ch, node).await? {
        if let Some(migration) = source.get(version)
            && migration.checksum != checksum
        {
            return Err(Error::ChecksumMismatch {
                label: migration.label(),
                node: ch.node_name(node),
                recorded: checksum,
                current: migration.checksum,
            });
        }
        applied.push(version);
    }
    Ok(applied)
}

/// The (version, checksum) of every migration whose latest history entry on
/// `node` is `up`, oldest first.
async fn history(ch: &ClickHouse, node: usize) -> Result<Vec<(i64, u64)>, Error> {
    // No positional GROUP BY: ClickHouse 18.16 does not accept it.
    let text = ch
        .query(
            node,
            "SELECT version, argMax(direction, seq), argMax(checksum, seq) \
             FROM dbops_schema_history GROUP BY version ORDER BY version FORMAT TabSeparated",
            "reading the history table",
        )
        .await?;
    parse_history(&text).map_err(|line| Error::Server {
        node: ch.node_name(node),
        context: "reading the history table".into(),
        message: format!("unexpected row {line:?}"),
    })
}

/// The (version, checksum) of the `up` lines of the history query's
/// answer, or the first line that is not `version, direction, checksum`.
fn parse_history(text: &str) -> Result<Vec<(i64, u64)>, &str> {
    let mut applied = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [version, direction, checksum] = fields.as_slice() else {
            return Err(line);
        };
        let (Ok(version), Ok(checksum)) = (version.parse::<i64>(), checksum.parse::<u64>()) else {
            return Err(line);
        };
        if *direction == "up" {
            applied.push((version, checksum));
        }
    }
    Ok(applied)
}

/// Runs one script of `migration` on `node`, statement by statement, then
/// records it in the history table.
async fn apply(
    ch: &ClickHouse,
    node: usize,
    migration: &Migration,
    direction: Direction,
) -> Result<Step, Error> {
    let script: &Script = match direction {
        Direction::Up => &migration.up,
        Direction::Down => &migration.down,
    };
    let cluster = &ch.settings().cluster;
    for statement in split_statements(&script.sql) {
        let sql = statement.text.replace("{cluster}", cluster);
        let context = format!("running {}", script.path.display());
        if let Err(e) = ch.query(node, &sql, &context).await {
            return Err(match e {
                Error::Server { node, message, .. } => Error::Statement {
                    path: script.path.clone(),
                    line: line_column(&script.sql, statement.offset).0,
                    node,
                    message,
                },
                other => other,
            });
        }
    }
    let label = migration.label();
    let mut record = String::from(
        "INSERT INTO dbops_schema_history (version, name, checksum, direction, applied_at, seq) ",
    );
    // The sequence orders the entries of a version; runs never overlap
    // (the lock), so the next one is one more than the largest so far.
    let _ = write!(
        record,
        "SELECT {}, '{}', {}, '{}', now(), (SELECT max(seq) FROM dbops_schema_history) + 1",
        migration.version,
        // Slugs are [a-z0-9_] (migrate-core checks file names).
        label,
        migration.checksum,
        direction.as_str(),
    );
    ch.query(
        node,
        &record,
        "recording the migration in the history table",
    )
    .await?;
    tracing::info!(node = %ch.node_name(node), migration = %label, direction = direction.as_str(), "applied a ClickHouse migration");
    Ok(Step {
        node: ch.node_name(node),
        label,
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_are_version_direction_checksum() {
        assert_eq!(
            parse_history("202601010000\tup\t42\n202601020000\tdown\t7\n"),
            Ok(vec![(202601010000, 42)])
        );
        assert_eq!(parse_history("202601010000\tup\n"), Err("202601010000\tup"));
        assert_eq!(parse_history("x\tup\t42"), Err("x\tup\t42"));
    }
}
