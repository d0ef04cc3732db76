//! Finding the touched tables in the catalog: one query gives every
//! relation of their partition trees, with what the checks compare.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::tables::TableName;

/// One relation of a touched table's partition tree (for a table that is not
/// partitioned, the table itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Member {
    /// The touched table, as `regclass` prints it (schema-qualified only when
    /// not on the search path).
    pub table: String,
    /// This relation's oid.
    pub oid: u32,
    /// This relation, as `regclass` prints it.
    pub name: String,
    /// Whether it holds rows itself (a plain table or a leaf partition).
    pub leaf: bool,
    /// `pg_class.relfilenode`: 0 for relations without storage.
    pub relfilenode: u32,
    /// The row estimate: `pg_stat_all_tables.n_live_tup` when the statistics
    /// have seen the table, else `pg_class.reltuples` (0 when never analyzed).
    pub estimated_rows: i64,
}

// The statistics are read with the functions behind `pg_stat_all_tables`,
// for these relations only: the view computes every table's row of the
// database before the join, which costs milliseconds on a large schema.
const MEMBERS: &str = "
SELECT root::text, c.oid, c.oid::regclass::text, m.isleaf, c.relfilenode,
       CASE WHEN pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_deleted(c.oid)
                 + pg_stat_get_live_tuples(c.oid) > 0 THEN pg_stat_get_live_tuples(c.oid)
            ELSE greatest(c.reltuples, 0)::bigint END
FROM unnest($1::text[], $2::text[]) AS t(schema_name, table_name)
CROSS JOIN LATERAL to_regclass(CASE WHEN t.schema_name IS NULL THEN format('%I', t.table_name)
                                    ELSE format('%I.%I', t.schema_name, t.table_name) END) AS root
CROSS JOIN LATERAL (
    -- A table that is neither partitioned nor a partition has no partition tree.
    SELECT p.relid, p.isleaf, p.level FROM pg_partition_tree(root) AS p
    UNION ALL
    SELECT root, true, 0 WHERE NOT EXISTS (SELECT FROM pg_partition_tree(root))
) AS m
JOIN pg_class c ON c.oid = m.relid
WHERE root IS NOT NULL AND c.relkind IN ('r', 'p', 'm', 'f')
ORDER BY 1, m.level, 3";

/// The relations of the partition trees of `tables`, for those that exist.
/// A name that resolves to no table (not created yet, dropped, a view) is skipped.
pub(crate) async fn members<'t>(
    client: &tokio_postgres::Client,
    tables: impl IntoIterator<Item = &'t TableName>,
) -> Result<Vec<Member>, Error> {
    let (schemas, names): (Vec<Option<&str>>, Vec<&str>) = tables
        .into_iter()
        .map(|table| (table.schema.as_deref(), table.name.as_str()))
        .unzip();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(MEMBERS, &[&schemas, &names])
        .await
        .map_err(Error::db("looking up the touched tables"))?;
    let mut members: Vec<Member> = rows
        .iter()
        .map(|row| Member {
            table: row.get(0),
            oid: row.get(1),
            name: row.get(2),
            leaf: row.get(3),
            relfilenode: row.get(4),
            estimated_rows: row.get(5),
        })
        .collect();
    // Two spellings of one table (`users`, `public.users`) give one tree.
    let mut seen = std::collections::HashSet::new();
    members.retain(|member| seen.insert(member.oid));
    Ok(members)
}

/// The oids of `members`.
pub(crate) fn oids(members: &[Member]) -> Vec<u32> {
    members.iter().map(|member| member.oid).collect()
}
