//! The audit trail of schema changes: hash-chained entries in the platform's
//! `audit_log` table, or in dbops's own `dbops.audit_log` where that table does not exist.
//!
//! Each chained entry stores the SHA-256 of the previous chained entry
//! (`prev_hash`) and its own hash over that and its content (`entry_hash`).
//! The hash is computed by PostgreSQL from the stored values, so what is
//! verified is exactly what is in the table. A head row in
//! `dbops.audit_head` remembers the newest entry of each chain, so deleting
//! the newest entries is detected as well as editing or deleting older ones.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::Error;

/// The platform's audit table.
pub const PLATFORM_TABLE: &str = "public.audit_log";
/// dbops's own audit table, used where the platform's does not exist.
pub const FALLBACK_TABLE: &str = "dbops.audit_log";

/// The lock that serializes the writers of the chains, and the creation of
/// dbops's own audit tables: see [`PREPARE`].
pub(crate) const CHAIN_LOCK: i64 = 0x6462_6f70_735f_6175;

/// dbops's own audit tables, created when missing.
pub(crate) const FALLBACK_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS dbops;
CREATE TABLE IF NOT EXISTS dbops.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text,
    organization_id bigint,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash bytea,
    entry_hash bytea
);
CREATE TABLE IF NOT EXISTS dbops.audit_head (
    chain text PRIMARY KEY,
    last_id bigint NOT NULL,
    last_hash bytea NOT NULL
);
";

/// The text an entry's hash covers, as a SQL expression over the row's columns.
const HASHED_TEXT: &str = "convert_to(concat_ws(E'\\n', id::text, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, action, target_type, coalesce(target_id, ''), coalesce(organization_id::text, ''), metadata::text), 'UTF8')";

/// One entry to record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Who acted.
    pub actor: String,
    /// What was done, such as `migration.apply`.
    pub action: String,
    /// The kind of object, such as `migration`.
    pub target_type: String,
    /// Which object, such as a version.
    pub target_id: Option<String>,
    /// Details: target, version, checksum, duration, row counts, outcome.
    pub metadata: serde_json::Value,
}

/// Where an entry went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// The table.
    pub table: &'static str,
    /// The entry's id there.
    pub id: i64,
}

/// Records an entry at the end of its table's chain.
///
/// Uses the platform's `audit_log` when it exists (with its hash columns),
/// otherwise dbops's own table, so that no entry is lost on a database that
/// does not have the platform schema (yet).
pub async fn record(client: &Client, entry: &AuditEntry) -> Result<Recorded, Error> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(Error::db("starting an audit transaction"))?;
    match record_in_transaction(client, entry).await {
        Ok(recorded) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(Error::db("committing an audit entry"))?;
            Ok(recorded)
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// The statement that readies a transaction for an entry: it takes the
/// chain's lock and tells where the chain lives. The migration engine appends
/// it to a migration's own query, so that it costs no round trip of its own;
/// [`chain_table`] reads its row.
///
/// The lock (0x6462_6f70_735f_6175, "dbops_au") serializes the writers of
/// the chain, so that two entries never share a predecessor. It is taken by
/// its own statement: a statement's snapshot is taken when it starts, so a
/// lock taken inside the INSERT would not let it see an entry committed
/// while it waited.
pub(crate) const PREPARE: &str = "SELECT pg_advisory_xact_lock(7233466480273088885)::text,
        EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('public.audit_log') AND attname = 'entry_hash' AND NOT attisdropped),
        to_regclass('dbops.audit_log') IS NOT NULL AND to_regclass('dbops.audit_head') IS NOT NULL";

/// The chain table named by the row of [`PREPARE`], the last row of
/// `messages`. (Its third column tells whether dbops's own audit tables
/// exist; a migration run creates them before its first step.)
pub(crate) fn chain_table(messages: &[tokio_postgres::SimpleQueryMessage]) -> &'static str {
    let platform = messages.iter().rev().find_map(|message| match message {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(1) == Some("t")),
        _ => None,
    });
    if platform == Some(true) {
        PLATFORM_TABLE
    } else {
        FALLBACK_TABLE
    }
}

/// Records an entry inside the caller's open transaction, so that the entry
/// commits (or not) together with the change it describes. dbops's own audit
/// tables are created when the platform's table does not exist.
pub async fn record_in_transaction(client: &Client, entry: &AuditEntry) -> Result<Recorded, Error> {
    let messages = client
        .simple_query(PREPARE)
        .await
        .map_err(Error::db("locking the audit chain"))?;
    let table = chain_table(&messages);
    let ready = messages.iter().rev().any(|message| {
        matches!(message, tokio_postgres::SimpleQueryMessage::Row(row) if row.get(2) == Some("t"))
    });
    if !ready {
        client
            .batch_execute(FALLBACK_DDL)
            .await
            .map_err(Error::db("creating dbops's audit tables"))?;
    }
    let id = insert(client, insert_sql(table).as_str(), table, entry)
        .await
        .map_err(|e| Error::Database {
            context: format!("writing an audit entry to {table}"),
            source: e,
        })?;
    Ok(Recorded { table, id })
}

/// Writes `entry` into `table` with `statement`, which is [`insert_sql`]
/// (as text, or prepared once per connection by the migration engine).
/// Returns the entry's id.
pub(crate) async fn insert<T>(
    client: &Client,
    statement: &T,
    table: &'static str,
    entry: &AuditEntry,
) -> Result<i64, tokio_postgres::Error>
where
    T: ?Sized + tokio_postgres::ToStatement,
{
    let row = client
        .query_one(
            statement,
            &[
                &entry.actor,
                &entry.action,
                &entry.target_type,
                &entry.target_id,
                &entry.metadata,
                &table,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// The INSERT of a complete, hashed entry into `table`, in one statement:
/// the tables are append-only. The id is drawn first so that the hash, which
/// covers it, can be computed in the same INSERT; OVERRIDING SYSTEM VALUE
/// stores that very id. Parameters: actor, action, target type, target id,
/// metadata, and the chain's name (`table`).
pub(crate) fn insert_sql(table: &'static str) -> String {
    format!(
        "WITH prev AS (SELECT (SELECT entry_hash FROM {table} WHERE entry_hash IS NOT NULL ORDER BY id DESC LIMIT 1) AS hash),
              new AS (SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS id, now() AS occurred_at,
                             $1::text AS actor, $2::text AS action, $3::text AS target_type, $4::text AS target_id,
                             NULL::bigint AS organization_id, $5::jsonb AS metadata, prev.hash AS prev_hash FROM prev),
              inserted AS (
                 INSERT INTO {table} (id, occurred_at, actor, action, target_type, target_id, organization_id, metadata, prev_hash, entry_hash)
                 OVERRIDING SYSTEM VALUE
                 SELECT id, occurred_at, actor, action, target_type, target_id, organization_id, metadata, prev_hash,
                        sha256(coalesce(prev_hash, ''::bytea) || {HASHED_TEXT})
                 FROM new RETURNING id, entry_hash)
         INSERT INTO dbops.audit_head (chain, last_id, last_hash) SELECT $6, id, entry_hash FROM inserted
         ON CONFLICT (chain) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash
         RETURNING last_id"
    )
}

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The table.
    pub table: String,
    /// The entry at fault (or the first entry after a gap).
    pub id: i64,
    /// What is wrong, in words.
    pub problem: String,
}

/// The result of checking every chain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Chained entries checked, across tables.
    pub entries: u64,
    /// Everything that does not add up; empty when the chains are intact.
    pub breaks: Vec<Break>,
}

/// Recomputes every chain and reports edited, deleted or reordered entries.
pub async fn verify(client: &Client) -> Result<Verification, Error> {
    let mut verification = Verification::default();
    for table in [PLATFORM_TABLE, FALLBACK_TABLE] {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(Error::db("looking for audit tables"))?
            .get(0);
        if !exists {
            continue;
        }
        let rows = client
            .query(
                &format!(
                    "SELECT id,
                            entry_hash = sha256(coalesce(prev_hash, ''::bytea) || {HASHED_TEXT}) AS hash_ok,
                            prev_hash IS NOT DISTINCT FROM lag(entry_hash) OVER (ORDER BY id) AS link_ok
                     FROM {table} WHERE entry_hash IS NOT NULL ORDER BY id"
                ),
                &[],
            )
            .await
            .map_err(Error::db(format!("reading {table}")))?;
        for row in &rows {
            let id: i64 = row.get(0);
            if !row.get::<_, bool>(1) {
                verification.breaks.push(Break {
                    table: table.into(),
                    id,
                    problem: "content does not match its hash: the entry was edited".into(),
                });
            }
            if !row.get::<_, bool>(2) {
                verification.breaks.push(Break {
                    table: table.into(),
                    id,
                    problem:
                        "previous-hash link is broken: an entry before it was deleted or edited"
                            .into(),
                });
            }
        }
        verification.entries += rows.len() as u64;
        let head = client
            .query_opt(
                "SELECT last_id, last_hash FROM dbops.audit_head WHERE chain = $1",
                &[&table],
            )
            .await
            .ok()
            .flatten();
        if let Some(head) = head {
            let last_id: i64 = head.get(0);
            let last = client
                .query_opt(&format!("SELECT id, entry_hash = $1 FROM {table} WHERE entry_hash IS NOT NULL ORDER BY id DESC LIMIT 1"), &[&head.get::<_, Vec<u8>>(1)])
                .await
                .map_err(Error::db(format!("reading {table}")))?;
            match last {
                Some(row) if row.get::<_, i64>(0) == last_id && row.get::<_, bool>(1) => {}
                Some(row) => verification.breaks.push(Break {
                    table: table.into(),
                    id: row.get(0),
                    problem: format!("the newest entry should be {last_id}: entries at the end of the chain were deleted or added outside it"),
                }),
                None => verification.breaks.push(Break {
                    table: table.into(),
                    id: last_id,
                    problem: "every chained entry is gone".into(),
                }),
            }
        }
    }
    Ok(verification)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preparing_an_entry_takes_the_chain_lock() {
        let lock = format!("pg_advisory_xact_lock({CHAIN_LOCK})");
        assert!(PREPARE.contains(&lock), "{PREPARE}");
    }
}
