//! The two catalog reads of a migration: [`before`] and [`after`], each one
//! prepared statement (prepared once per connection with
//! [`HookContext::prepare`]) that answers for every touched table and every
//! enabled check at once, as one JSON object.
//!
//! Both start from the same relations: the touched tables, named (`$1`, each
//! name quoted for `to_regclass`) or by oid (`$2`, the tables counted before,
//! which the migration may have renamed), and every relation of their
//! partition trees. The trees are walked through `pg_inherits` rather than
//! with `pg_partition_tree()`, which locks the partitions: a check must not
//! queue behind the session it is looking for.

use std::time::Duration;

use migrate_core::hooks::HookContext;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{Json, ToSql};

use crate::error::Error;

/// What [`BEFORE`] and [`AFTER`] share: the touched tables and the relations
/// of their partition trees (`members`), with the statistics' row estimate of
/// each and of each tree (`estimates`); the locks other sessions hold or wait
/// for on them (`locks`); their invalid indexes and NOT VALID constraints.
macro_rules! touched_relations {
    () => {
        "WITH RECURSIVE tree AS (
    -- An array, so that the generic plan looks the tables up by index
    -- rather than scanning pg_class, however many relations it holds.
    SELECT c.oid AS root, c.oid, 0 AS level, c.relkind, c.relfilenode, c.reltuples
    FROM pg_class c
    WHERE c.oid = ANY (ARRAY(SELECT to_regclass(name)::oid FROM unnest($1::text[]) AS name)
                       || $2::oid[])
      AND c.relkind IN ('r', 'p', 'm', 'f')
    UNION ALL
    SELECT tree.root, c.oid, tree.level + 1, c.relkind, c.relfilenode, c.reltuples
    FROM tree
    JOIN pg_inherits i ON i.inhparent = tree.oid
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE tree.relkind = 'p'
),
members AS (
    -- The estimate is the statistics' live rows plus the writes of this
    -- session not yet flushed to them (those of its open transaction and of
    -- the ones it committed lately), as the functions behind
    -- pg_stat_all_tables and pg_stat_xact_all_tables give them, for these
    -- relations only; pg_class.reltuples for a table the statistics have
    -- not seen written.
    SELECT root, root::regclass::text AS table, oid, oid::regclass::text AS name, level,
           relkind <> 'p' AS leaf, relfilenode,
           CASE WHEN pg_stat_get_tuples_inserted(oid) + pg_stat_get_tuples_deleted(oid)
                     + pg_stat_get_live_tuples(oid) + pg_stat_get_xact_tuples_inserted(oid)
                     + pg_stat_get_xact_tuples_deleted(oid) > 0
                THEN pg_stat_get_live_tuples(oid) + pg_stat_get_xact_tuples_inserted(oid)
                     - pg_stat_get_xact_tuples_deleted(oid)
                ELSE greatest(reltuples, 0)::bigint END AS estimated_rows
    FROM tree
),
estimates AS (
    SELECT root, coalesce(sum(estimated_rows) FILTER (WHERE leaf), 0)::bigint AS rows
    FROM members GROUP BY root
),
locks AS (
    SELECT l.* FROM pg_locks l
    WHERE l.locktype = 'relation'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.relation IN (SELECT oid FROM members)
      AND l.pid IS DISTINCT FROM pg_backend_pid()
),
invalid_indexes AS (
    SELECT i.indexrelid::bigint AS oid, i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS table
    FROM pg_index i
    WHERE $3 AND NOT i.indisvalid AND i.indrelid = ANY (ARRAY(SELECT oid FROM members))
),
not_valid_constraints AS (
    SELECT c.oid::bigint, c.conname::text AS constraint, c.conrelid::regclass::text AS table,
           CASE c.contype WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check'
                          WHEN 'n' THEN 'not null' ELSE c.contype::text END AS kind
    FROM pg_constraint c
    WHERE $4 AND NOT c.convalidated AND c.conrelid = ANY (ARRAY(SELECT oid FROM members))
)"
    };
}

/// `count(*)` of the table with oid `$oid` and its partitions, in the same
/// statement: `query_to_xml` runs the query it is given.
macro_rules! exact_count {
    ($oid:literal) => {
        concat!(
            "substring(query_to_xml(format('SELECT count(*) AS n FROM %s', ",
            $oid,
            "::regclass), false, true, '')::text FROM '<n>(\\d+)</n>')::bigint"
        )
    };
}

/// `$1` text[] touched tables by name, `$2` oid[] (empty), `$3`/`$4` bool
/// look for invalid indexes / NOT VALID constraints, `$5` bigint count the
/// rows of tables estimated at no more than this (-1: no row counts), `$6`
/// bool look for blocking sessions, `$7` float8 seconds a transaction must
/// have been open to count as long.
const BEFORE: &str = concat!(
    touched_relations!(),
    ",
counted AS (
    -- A table that another session holds or waits for an ACCESS EXCLUSIVE
    -- lock on is estimated: counting it would queue behind that session. So
    -- is one the role may not read (it may only reference it, say).
    SELECT e.root AS oid, e.root::regclass::text AS table, e.rows AS estimate,
           e.rows <= $5 AND has_table_privilege(e.root, 'SELECT')
           AND NOT EXISTS (SELECT FROM locks l JOIN members m ON m.oid = l.relation
                           WHERE m.root = e.root AND l.mode = 'AccessExclusiveLock') AS exact
    FROM estimates e
    WHERE $5 >= 0
),
sessions AS (
    SELECT coalesce(l.pid, 0) AS pid, l.virtualtransaction AS transaction,
           coalesce(a.usename::text, '') AS user, coalesce(a.application_name, '') AS application,
           CASE WHEN l.pid IS NULL THEN 'prepared transaction'
                ELSE coalesce(a.state, a.backend_type, '') END AS state,
           extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS transaction_seconds,
           coalesce(pg_blocking_pids(l.pid), '{}') AS blocked_by,
           l.relation::regclass::text AS table, l.mode, l.granted
    FROM locks l
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE $6
    UNION ALL
    SELECT a.pid, NULL, coalesce(a.usename::text, ''), coalesce(a.application_name, ''),
           coalesce(a.state, ''), extract(epoch FROM clock_timestamp() - a.xact_start)::float8,
           pg_blocking_pids(a.pid), NULL, NULL, NULL
    FROM pg_stat_activity a
    WHERE $6 AND a.datname = current_database() AND a.backend_type = 'client backend'
      AND a.pid <> pg_backend_pid()
      AND a.xact_start < clock_timestamp() - make_interval(secs => $7)
)
SELECT json_build_object(
    'role', quote_ident(current_user),
    'sees_all_sessions', pg_has_role('pg_read_all_stats', 'USAGE'),
    'relations', (SELECT coalesce(json_agg(json_build_object(
                      'table', m.table, 'oid', m.oid::bigint, 'name', m.name,
                      'relfilenode', m.relfilenode::bigint)
                  ORDER BY m.table, m.level, m.name), '[]') FROM members m),
    'rows', (SELECT coalesce(json_agg(json_build_object(
                 'oid', c.oid::bigint, 'table', c.table, 'exact', c.exact,
                 'rows', CASE WHEN c.exact THEN ",
    exact_count!("c.oid"),
    " ELSE c.estimate END)
             ORDER BY c.table), '[]') FROM counted c),
    'sessions', (SELECT coalesce(json_agg(s ORDER BY s.pid, s.table), '[]') FROM sessions s),
    'invalid_indexes', (SELECT coalesce(json_agg(i ORDER BY i.table, i.index), '[]') FROM invalid_indexes i),
    'not_valid_constraints', (SELECT coalesce(json_agg(c ORDER BY c.table, c.constraint), '[]')
                              FROM not_valid_constraints c))"
);

/// `$1` text[] touched tables by name, `$2` oid[] tables counted before,
/// `$3`/`$4` bool look for invalid indexes / NOT VALID constraints, `$5`
/// oid[] those of `$2` counted exactly, `$6` oid[] relations whose storage
/// to compare with `$7` oid[] their `relfilenode` before.
const AFTER: &str = concat!(
    touched_relations!(),
    "
SELECT json_build_object(
    'rows', (SELECT coalesce(json_agg(json_build_object(
                 'oid', t.oid::bigint, 'table', c.oid::regclass::text,
                 'rows', CASE WHEN c.oid IS NULL THEN NULL
                              WHEN t.oid = ANY($5) THEN ",
    exact_count!("c.oid"),
    "
                              ELSE (SELECT e.rows FROM estimates e WHERE e.root = c.oid) END)),
             '[]')
             FROM unnest($2::oid[]) AS t(oid) LEFT JOIN pg_class c ON c.oid = t.oid),
    'rewritten', (SELECT coalesce(json_agg(json_build_object(
                      'oid', c.oid::bigint, 'relfilenode', c.relfilenode::bigint, 'size', pg_relation_size(c.oid))), '[]')
                  FROM unnest($6::oid[], $7::oid[]) AS t(oid, relfilenode)
                  JOIN pg_class c ON c.oid = t.oid AND c.relfilenode <> t.relfilenode),
    'invalid_indexes', (SELECT coalesce(json_agg(i ORDER BY i.table, i.index), '[]') FROM invalid_indexes i),
    'not_valid_constraints', (SELECT coalesce(json_agg(c ORDER BY c.table, c.constraint), '[]')
                              FROM not_valid_constraints c))"
);

/// One relation of a touched table's partition tree (for a table that is not
/// partitioned, the table itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Relation {
    /// The touched table, as `regclass` prints it (schema-qualified only when
    /// not on the search path).
    pub table: String,
    /// This relation's oid.
    pub oid: u32,
    /// This relation, as `regclass` prints it.
    pub name: String,
    /// `pg_class.relfilenode`: 0 for relations without storage.
    pub relfilenode: u32,
}

/// A touched table's rows before the migration, and how they were had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Counted {
    pub oid: u32,
    pub table: String,
    /// Counted with `count(*)`, rather than estimated from the statistics.
    pub exact: bool,
    pub rows: i64,
}

/// A touched table's rows after the migration, counted the way they were before.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Recounted {
    pub oid: u32,
    /// Its name now; `None` when the migration dropped it.
    pub table: Option<String>,
    pub rows: Option<i64>,
}

/// A relation whose storage was replaced.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Rewritten {
    pub oid: u32,
    pub relfilenode: u32,
    pub size: i64,
}

/// A session holding or waiting for a lock on a touched relation, or with a
/// transaction open longer than `long_transaction` (then `table` is `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// 0 for a prepared transaction.
    pub pid: i32,
    /// `pg_locks.virtualtransaction`: which transaction holds the lock.
    pub transaction: Option<String>,
    pub user: String,
    pub application: String,
    pub state: String,
    /// `None` when the role may not see it (another role's session, without
    /// `pg_read_all_stats`).
    pub transaction_seconds: Option<f64>,
    /// `pg_blocking_pids()`: the sessions this one waits for.
    pub blocked_by: Vec<i32>,
    pub table: Option<String>,
    pub mode: Option<String>,
    pub granted: Option<bool>,
}

/// An invalid index on a touched relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InvalidIndex {
    pub oid: u32,
    pub index: String,
    pub table: String,
}

/// A constraint on a touched relation that is not validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NotValidConstraint {
    pub oid: u32,
    pub constraint: String,
    pub table: String,
    pub kind: String,
}

/// What the catalog said before the migration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Before {
    /// The migration's role, quoted for SQL.
    pub role: String,
    /// Whether the role sees every session's transaction start (`pg_read_all_stats`).
    pub sees_all_sessions: bool,
    pub relations: Vec<Relation>,
    pub rows: Vec<Counted>,
    pub sessions: Vec<Session>,
    pub invalid_indexes: Vec<InvalidIndex>,
    pub not_valid_constraints: Vec<NotValidConstraint>,
}

/// What the catalog said after the migration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct After {
    pub rows: Vec<Recounted>,
    pub rewritten: Vec<Rewritten>,
    pub invalid_indexes: Vec<InvalidIndex>,
    pub not_valid_constraints: Vec<NotValidConstraint>,
}

impl After {
    /// What [`after`] answers when every touched table was dropped: each
    /// counted table gone, nothing else.
    pub(crate) fn all_dropped(counted: &[Counted]) -> After {
        After {
            rows: counted
                .iter()
                .map(|c| Recounted {
                    oid: c.oid,
                    table: None,
                    rows: None,
                })
                .collect(),
            ..After::default()
        }
    }
}

/// What to ask [`before`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BeforeQuestions {
    /// The touched tables that may exist, quoted.
    pub tables: Vec<String>,
    pub invalid_indexes: bool,
    pub not_valid_constraints: bool,
    /// Count tables estimated at no more rows than this; `None`: no row counts.
    pub count_rows_up_to: Option<u64>,
    /// Look for blocking sessions, and count transactions open longer than
    /// this as blocking.
    pub sessions: Option<Duration>,
}

/// What to ask [`after`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AfterQuestions {
    /// The touched tables, created ones included, quoted: where to look for
    /// invalid indexes and NOT VALID constraints.
    pub tables: Vec<String>,
    pub invalid_indexes: bool,
    pub not_valid_constraints: bool,
    /// The tables counted before.
    pub counted: Vec<Counted>,
    /// The relations whose storage to compare.
    pub relations: Vec<Relation>,
}

impl AfterQuestions {
    /// Whether there is nothing to ask, so no query to send.
    pub fn is_empty(&self) -> bool {
        self.counted.is_empty()
            && self.relations.is_empty()
            && (self.tables.is_empty() || !(self.invalid_indexes || self.not_valid_constraints))
    }
}

/// Reads the catalog before the migration: one query.
pub(crate) async fn before(
    ctx: &HookContext<'_>,
    questions: &BeforeQuestions,
) -> Result<Before, Error> {
    let count_up_to = questions
        .count_rows_up_to
        .map_or(-1, |rows| i64::try_from(rows).unwrap_or(i64::MAX));
    let long_transaction = questions.sessions.unwrap_or_default().as_secs_f64();
    let no_oids: &[u32] = &[];
    read(
        ctx,
        BEFORE,
        &[
            &questions.tables,
            &no_oids,
            &questions.invalid_indexes,
            &questions.not_valid_constraints,
            &count_up_to,
            &questions.sessions.is_some(),
            &long_transaction,
        ],
        "reading the catalog before the migration",
    )
    .await
}

/// Reads the catalog after the migration: one query.
pub(crate) async fn after(
    ctx: &HookContext<'_>,
    questions: &AfterQuestions,
) -> Result<After, Error> {
    let counted: Vec<u32> = questions.counted.iter().map(|c| c.oid).collect();
    let exact: Vec<u32> = questions
        .counted
        .iter()
        .filter(|c| c.exact)
        .map(|c| c.oid)
        .collect();
    let (relations, relfilenodes): (Vec<u32>, Vec<u32>) = questions
        .relations
        .iter()
        .map(|r| (r.oid, r.relfilenode))
        .unzip();
    read(
        ctx,
        AFTER,
        &[
            &questions.tables,
            &counted,
            &questions.invalid_indexes,
            &questions.not_valid_constraints,
            &exact,
            &relations,
            &relfilenodes,
        ],
        "reading the catalog after the migration",
    )
    .await
}

/// Runs `sql`, prepared once per connection, and reads its one JSON value.
async fn read<T: DeserializeOwned>(
    ctx: &HookContext<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    doing: &'static str,
) -> Result<T, Error> {
    let statement = ctx.prepare(sql).await.map_err(Error::db(doing))?;
    let row = ctx
        .client
        .query_one(&statement, params)
        .await
        .map_err(Error::db(doing))?;
    let Json(value) = row.try_get(0).map_err(Error::db(doing))?;
    Ok(value)
}

/// Makes this session's statistics not yet flushed reach the shared ones.
///
/// The estimates read both, which is right while the session's writes
/// stand; but rows a failed migration inserted and rolled back are still
/// counted as inserted until the flush. PostgreSQL 15 and later flush when
/// the session goes idle after `pg_stat_force_next_flush()`, as it does once
/// this statement ends, outside a transaction; older servers within half a
/// second anyway.
pub(crate) async fn flush_statistics(ctx: &HookContext<'_>) -> Result<(), Error> {
    ctx.client
        .batch_execute(
            "DO $$ BEGIN
                 IF current_setting('server_version_num')::int >= 150000 THEN
                     PERFORM pg_stat_force_next_flush();
                 END IF;
             END $$",
        )
        .await
        .map_err(Error::db(
            "flushing the statistics of the failed migration's writes",
        ))
}
