//! dbops's run log: one row per script run (its outcome, and for a
//! no-transaction script its progress, statement by statement), and one row
//! per run of a target (who ran it, and how it ended).

use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::error::Error;
use crate::history::Target;
use crate::source::{Direction, Migration};
use crate::status::{PartialMigration, RunLogEntry, Runner};

/// dbops's bookkeeping tables besides the history: created when missing, and
/// brought up to date (new columns) on databases an older dbops created.
pub(crate) const DDL: &str = "
CREATE SCHEMA IF NOT EXISTS dbops;
COMMENT ON SCHEMA dbops IS 'Bookkeeping of the dbops migration tool: history, run log, audit fallback.';
CREATE TABLE IF NOT EXISTS dbops.run_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target text NOT NULL,
    version bigint NOT NULL,
    name text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('up', 'down')),
    transactional boolean NOT NULL,
    checksum text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    outcome text NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'resolved')),
    error text,
    statements_done integer NOT NULL DEFAULT 0,
    statements_total integer NOT NULL DEFAULT 0,
    backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
    resolution text,
    resolved_at timestamptz
);
ALTER TABLE dbops.run_log ADD COLUMN IF NOT EXISTS application_name text DEFAULT current_setting('application_name');
CREATE INDEX IF NOT EXISTS run_log_target_version_idx ON dbops.run_log (target, version);
CREATE INDEX IF NOT EXISTS run_log_open_idx ON dbops.run_log (target) WHERE outcome IN ('running', 'failed') AND NOT transactional;
CREATE TABLE IF NOT EXISTS dbops.runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target text NOT NULL,
    direction text NOT NULL CHECK (direction IN ('up', 'down')),
    plan_hash text NOT NULL,
    backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
    application_name text DEFAULT current_setting('application_name'),
    client_addr inet DEFAULT inet_client_addr(),
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    steps integer
);
";

/// The `INSERT` of a script's run-log row, finished (`succeeded`) or not (`running`).
pub(crate) fn insert(
    target: &Target,
    migration: &Migration,
    direction: Direction,
    transactional: bool,
    statements_total: usize,
    outcome: &str,
) -> String {
    format!(
        "INSERT INTO dbops.run_log (target, version, name, direction, transactional, checksum, started_at, finished_at, outcome, statements_total)
         VALUES ('{}', {}, '{}', '{}', {transactional}, '{}', clock_timestamp(), {}, '{outcome}', {statements_total})",
        target.name,
        migration.version,
        migration.slug,
        direction.as_str(),
        migration.checksum,
        if outcome == "running" { "NULL" } else { "clock_timestamp()" },
    )
}

/// Records a failed script run, best effort: the failure itself is what the
/// caller reports. A transactional run gets a row of its own; a
/// no-transaction run's own row (still `running` when a lock wait gave up on
/// every attempt) is marked failed, which leaves the migration partial.
pub(crate) async fn record_failure(
    client: &Client,
    target: &Target,
    migration: &Migration,
    direction: Direction,
    transactional: bool,
    error: &Error,
) {
    let message = error.to_string();
    if !transactional {
        let _ = client
            .execute(
                "UPDATE dbops.run_log SET outcome = 'failed', finished_at = clock_timestamp(), error = $4
                 WHERE target = $1 AND version = $2 AND direction = $3 AND NOT transactional
                   AND outcome = 'running' AND backend_pid = pg_backend_pid()",
                &[&target.name, &migration.version, &direction.as_str(), &message],
            )
            .await;
        return;
    }
    let sql = format!(
        "{} RETURNING id",
        insert(target, migration, direction, true, 0, "failed")
    );
    if let Ok(row) = client.query_one(&sql, &[]).await {
        let id: i64 = row.get(0);
        let _ = client
            .execute(
                "UPDATE dbops.run_log SET error = $2 WHERE id = $1",
                &[&id, &message],
            )
            .await;
    }
}

/// Whether the run log exists (it does not on a database no dbops has written to).
async fn exists(client: &Client) -> Result<bool, Error> {
    Ok(client
        .query_one("SELECT to_regclass('dbops.run_log') IS NOT NULL", &[])
        .await
        .map_err(Error::db("looking for the run log"))?
        .get(0))
}

/// Unresolved no-transaction runs of `target`, leaving out those of the
/// backends `own_pids` (a run's own interrupted step, which it resumes). A `running` entry whose
/// backend is still alive is a run in progress, not a partial one: the
/// server runs a statement to its end even when the client that sent it
/// died, and only then lets the backend go.
pub(crate) async fn partial(
    client: &Client,
    target: &Target,
    own_pids: &[i32],
) -> Result<Vec<PartialMigration>, Error> {
    if !exists(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT r.version, r.name, r.direction, r.started_at, r.statements_done, r.statements_total, r.error
             FROM dbops.run_log r
             WHERE r.target = $1 AND NOT r.transactional AND r.outcome IN ('running', 'failed')
               AND NOT (r.outcome = 'running' AND r.backend_pid <> pg_backend_pid() AND EXISTS (
                    SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.backend_pid AND a.backend_start <= r.started_at))
               AND NOT r.backend_pid = ANY($2)
             ORDER BY r.version, r.id",
            &[&target.name, &own_pids],
        )
        .await
        .map_err(Error::db("reading the run log"))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let findings = leftovers(client).await?;
    Ok(rows
        .into_iter()
        .map(|row| PartialMigration {
            version: row.get(0),
            name: row.get(1),
            direction: direction(row.get(2)),
            started_at: row.get(3),
            statements_done: row.get(4),
            statements_total: row.get(5),
            error: row.get(6),
            findings: findings.clone(),
            in_flight: crate::in_flight::InFlight::Unknown,
        })
        .collect())
}

fn direction(text: &str) -> Direction {
    if text == "down" {
        Direction::Down
    } else {
        Direction::Up
    }
}

/// What an interrupted no-transaction migration typically leaves in the catalog.
async fn leftovers(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT format('invalid index %I.%I on %I.%I (indisvalid = false)', n.nspname, ic.relname, n.nspname, t.relname)
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = ic.relnamespace
             WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             UNION ALL
             SELECT format('constraint %I on %I.%I is NOT VALID', c.conname, n.nspname, t.relname)
             FROM pg_constraint c
             JOIN pg_class t ON t.oid = c.conrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE NOT c.convalidated AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(Error::db("inspecting the catalog for leftovers"))?;
    Ok(rows.into_iter().map(|row| row.get(0)).collect())
}

/// The last script run of `target`.
pub(crate) async fn last_outcome(
    client: &Client,
    target: &Target,
) -> Result<Option<RunLogEntry>, Error> {
    if !exists(client).await? {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT version, name, direction, outcome, started_at, finished_at, error
             FROM dbops.run_log WHERE target = $1 ORDER BY id DESC LIMIT 1",
            &[&target.name],
        )
        .await
        .map_err(Error::db("reading the run log"))?;
    Ok(row.map(|row| RunLogEntry {
        version: row.get(0),
        name: row.get(1),
        direction: direction(row.get(2)),
        outcome: row.get(3),
        started_at: row.get(4),
        finished_at: row.get(5),
        error: row.get(6),
    }))
}

/// Who last ran `version` of `target` in `direction` successfully, from the run log.
pub(crate) async fn runner_of(
    client: &Client,
    target: &Target,
    version: i64,
    direction: Direction,
) -> Result<Option<Runner>, Error> {
    let row = client
        .query_opt(
            "SELECT backend_pid, coalesce(application_name, ''), finished_at FROM dbops.run_log
             WHERE target = $1 AND version = $2 AND direction = $3 AND outcome = 'succeeded'
             ORDER BY id DESC LIMIT 1",
            &[&target.name, &version, &direction.as_str()],
        )
        .await
        .map_err(Error::db("reading the run log"))?;
    Ok(row.map(|row| Runner {
        pid: row.get(0),
        application: row.get(1),
        finished_at: row.get::<_, Option<OffsetDateTime>>(2),
    }))
}

/// The progress of an unfinished no-transaction run of `version`: its run-log
/// row and how many statements completed, to resume after the last one.
pub(crate) async fn unfinished(
    client: &Client,
    target: &Target,
    version: i64,
    direction: Direction,
) -> Result<Option<(i64, usize)>, Error> {
    let row = client
        .query_opt(
            "SELECT id, statements_done FROM dbops.run_log
             WHERE target = $1 AND version = $2 AND direction = $3 AND NOT transactional
               AND outcome IN ('running', 'failed')
             ORDER BY id DESC LIMIT 1",
            &[&target.name, &version, &direction.as_str()],
        )
        .await
        .map_err(Error::db("reading the run log"))?;
    Ok(row.map(|row| (row.get(0), row.get::<_, i32>(1).max(0) as usize)))
}

/// Marks the unresolved partial entries of `version` as resolved.
pub(crate) async fn resolve(
    client: &Client,
    target: &Target,
    version: i64,
    resolution: &str,
) -> Result<u64, Error> {
    client
        .execute(
            "UPDATE dbops.run_log SET outcome = 'resolved', resolution = $3, resolved_at = clock_timestamp()
             WHERE target = $1 AND version = $2 AND NOT transactional AND outcome IN ('running', 'failed')",
            &[&target.name, &version, &resolution],
        )
        .await
        .map_err(Error::db("resolving the partial run"))
}
