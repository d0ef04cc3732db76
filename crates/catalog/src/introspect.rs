//! Reading the model from the PostgreSQL system catalogs: five queries, each returning one kind of object for every table.
//!
//! The queries are sent together and pipelined on the one connection, so the
//! cost is one round trip plus the server's work, whatever the number of
//! tables. Tables, columns, constraints and indexes come from `pg_class`,
//! `pg_attribute`, `pg_constraint` and `pg_index`; definitions are printed by
//! PostgreSQL itself (`pg_get_constraintdef`, `pg_get_indexdef`,
//! `pg_get_expr`), so they read exactly as `\d` shows them. Relations that
//! belong to an extension (`pg_depend.deptype = 'e'`) are left out.

use std::collections::HashMap;

use tokio_postgres::{Client, Row};
use tracing::{debug, instrument};

use crate::Error;
use crate::model::{
    Column, Constraint, ConstraintKind, ForeignKey, ForeignKeyAction, Identity, Index, Partition,
    Partitioning, Schema, Table, display_name,
};

/// Which schemas to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectOptions {
    /// Schemas to read, `public` by default. PostgreSQL's own schemas
    /// (`pg_*`, `information_schema`) and dbops's bookkeeping schema `dbops`
    /// are refused.
    pub schemas: Vec<String>,
}

impl Default for IntrospectOptions {
    fn default() -> IntrospectOptions {
        IntrospectOptions {
            schemas: vec![crate::model::DEFAULT_SCHEMA.to_owned()],
        }
    }
}

/// Schemas that are never documented or linted.
pub const RESERVED_SCHEMAS: [&str; 3] = ["dbops", "pg_catalog", "information_schema"];

/// Reads every table of `options.schemas` into one [`Schema`].
///
/// Each query sees its own snapshot of the catalogs: run it while no DDL is
/// in flight (as docs generation and lint do) for a consistent picture.
#[instrument(skip_all, fields(schemas = ?options.schemas))]
pub async fn introspect(client: &Client, options: &IntrospectOptions) -> Result<Schema, Error> {
    for schema in &options.schemas {
        if RESERVED_SCHEMAS.contains(&schema.as_str()) || schema.starts_with("pg_") {
            return Err(Error::ReservedSchema {
                schema: schema.clone(),
            });
        }
    }
    let schemas = &options.schemas;
    let (tables, partitions, columns, constraints, indexes) = futures_util::try_join!(
        query(client, "tables", TABLES, schemas),
        query(client, "partitions", PARTITIONS, schemas),
        query(client, "columns", COLUMNS, schemas),
        query(client, "constraints", CONSTRAINTS, schemas),
        query(client, "indexes", INDEXES, schemas),
    )?;
    debug!(
        tables = tables.len(),
        partitions = partitions.len(),
        columns = columns.len(),
        constraints = constraints.len(),
        indexes = indexes.len(),
        "read the catalogs"
    );

    let mut by_oid: HashMap<u32, Table> = HashMap::with_capacity(tables.len());
    for row in &tables {
        let partition_key: Option<String> = row.get("partition_key");
        by_oid.insert(
            row.get("oid"),
            Table {
                schema: row.get("schema"),
                name: row.get("name"),
                comment: row.get("comment"),
                columns: Vec::new(),
                constraints: Vec::new(),
                indexes: Vec::new(),
                partitioning: partition_key.map(|key| Partitioning {
                    key,
                    partitions: Vec::new(),
                }),
            },
        );
    }
    for row in &partitions {
        let root: u32 = row.get("root");
        let Some(partitioning) = by_oid.get_mut(&root).and_then(|t| t.partitioning.as_mut()) else {
            continue;
        };
        let parent_is_root = row.get::<_, u32>("parent") == root;
        partitioning.partitions.push(Partition {
            schema: row.get("schema"),
            name: row.get("name"),
            bound: row.get("bound"),
            parent: (!parent_is_root)
                .then(|| display_name(row.get("parent_schema"), row.get("parent_name"))),
            subpartition_key: row.get("partition_key"),
        });
    }
    for row in &columns {
        let Some(table) = by_oid.get_mut(&row.get("table_oid")) else {
            continue;
        };
        let identity = match row.get::<_, &str>("identity") {
            "" => None,
            "a" => Some(Identity::Always),
            "d" => Some(Identity::ByDefault),
            other => {
                return Err(Error::UnexpectedCatalog {
                    object: format!(
                        "column `{}.{}`",
                        table.display_name(),
                        row.get::<_, &str>("name")
                    ),
                    problem: format!("attidentity `{other}`"),
                });
            }
        };
        table.columns.push(Column {
            name: row.get("name"),
            data_type: row.get("data_type"),
            nullable: row.get("nullable"),
            default: row.get("default"),
            identity,
            generated: row.get("generated"),
            comment: row.get("comment"),
            classification: None,
        });
    }
    for row in &constraints {
        let Some(table) = by_oid.get_mut(&row.get("table_oid")) else {
            continue;
        };
        let name: String = row.get("name");
        let kind = constraint_kind(row).map_err(|problem| Error::UnexpectedCatalog {
            object: format!("constraint `{name}` of `{}`", table.display_name()),
            problem,
        })?;
        table.constraints.push(Constraint {
            name,
            kind,
            columns: row.get("columns"),
            definition: definition_without_not_valid(row.get("definition")),
            validated: row.get("validated"),
            comment: row.get("comment"),
        });
    }
    for row in &indexes {
        let Some(table) = by_oid.get_mut(&row.get("table_oid")) else {
            continue;
        };
        table.indexes.push(Index {
            name: row.get("name"),
            definition: row.get("definition"),
            columns: row.get("columns"),
            method: row.get("method"),
            unique: row.get("is_unique"),
            primary: row.get("is_primary"),
            valid: row.get("is_valid"),
            predicate: row.get("predicate"),
            constraint: row.get("constraint_name"),
        });
    }

    let mut schema = Schema {
        tables: by_oid.into_values().collect(),
    };
    // Catalog queries sort by the database's collation; the model promises
    // byte order, whatever the server's locale.
    schema.sort();
    Ok(schema)
}

/// `pg_get_constraintdef` appends ` NOT VALID` to an unvalidated constraint;
/// the model keeps that state in [`Constraint::validated`] alone, so that a
/// definition names what is enforced, not whether it was checked.
fn definition_without_not_valid(definition: String) -> String {
    match definition.strip_suffix(" NOT VALID") {
        Some(stripped) => stripped.to_owned(),
        None => definition,
    }
}

/// Decodes a constraint row's kind; the error is the odd catalog value.
fn constraint_kind(row: &Row) -> Result<ConstraintKind, String> {
    let action = |column: &str| {
        let code: &str = row.get(column);
        code.bytes()
            .next()
            .and_then(ForeignKeyAction::from_catalog)
            .ok_or_else(|| format!("{column} `{code}`"))
    };
    Ok(match row.get::<_, &str>("kind") {
        "p" => ConstraintKind::PrimaryKey,
        "u" => ConstraintKind::Unique,
        "c" => ConstraintKind::Check,
        "x" => ConstraintKind::Exclusion,
        "f" => ConstraintKind::ForeignKey(ForeignKey {
            referenced_schema: row.get("referenced_schema"),
            referenced_table: row.get("referenced_table"),
            referenced_columns: row.get("referenced_columns"),
            on_delete: action("on_delete")?,
            on_update: action("on_update")?,
            match_full: row.get::<_, &str>("match_type") == "f",
            triggers_enabled: row
                .get::<_, Option<bool>>("triggers_enabled")
                .unwrap_or(false),
        }),
        other => return Err(format!("contype `{other}`")),
    })
}

async fn query(
    client: &Client,
    what: &'static str,
    sql: &str,
    schemas: &Vec<String>,
) -> Result<Vec<Row>, Error> {
    client
        .query(sql, &[schemas])
        .await
        .map_err(|source| Error::Query { what, source })
}

/// The tables introspected: ordinary and partitioned tables (not partitions)
/// of the requested schemas that no extension owns. Every query starts with it.
macro_rules! selected_tables {
    () => {
        "WITH selected AS (
            SELECT c.oid
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p')
              AND NOT c.relispartition
              AND n.nspname = ANY($1::text[])
              AND NOT EXISTS (
                  SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
              )
        )"
    };
}

const TABLES: &str = concat!(
    selected_tables!(),
    "
    SELECT c.oid, n.nspname AS schema, c.relname AS name, d.description AS comment,
           CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key
    FROM selected s
    JOIN pg_class c ON c.oid = s.oid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_description d
           ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0"
);

const PARTITIONS: &str = concat!(
    selected_tables!(),
    "
    SELECT pg_partition_root(c.oid)::oid AS root, n.nspname AS schema, c.relname AS name,
           pg_get_expr(c.relpartbound, c.oid) AS bound,
           i.inhparent AS parent, pn.nspname AS parent_schema, p.relname AS parent_name,
           CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_inherits i ON i.inhrelid = c.oid
    JOIN pg_class p ON p.oid = i.inhparent
    JOIN pg_namespace pn ON pn.oid = p.relnamespace
    WHERE c.relispartition
      AND c.relkind IN ('r', 'p', 'f')
      AND pg_partition_root(c.oid)::oid IN (SELECT oid FROM selected)"
);

const COLUMNS: &str = concat!(
    selected_tables!(),
    "
    SELECT a.attrelid AS table_oid, a.attname AS name,
           format_type(a.atttypid, a.atttypmod) AS data_type,
           NOT a.attnotnull AS nullable,
           CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END AS default,
           CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END AS generated,
           a.attidentity::text AS identity,
           d.description AS comment
    FROM pg_attribute a
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    LEFT JOIN pg_description d
           ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
    WHERE a.attrelid IN (SELECT oid FROM selected)
      AND a.attnum > 0
      AND NOT a.attisdropped
    ORDER BY a.attrelid, a.attnum"
);

/// Constraints declared on the tables themselves (`conparentid = 0` leaves
/// out the copies PostgreSQL makes for partitions), with, for a foreign key,
/// whether every trigger enforcing it, on this constraint or on any copy made
/// for a partition, fires in normal sessions (`O`rigin or `A`lways).
const CONSTRAINTS: &str = concat!(
    selected_tables!(),
    ",
    family AS (
        WITH RECURSIVE tree(root, oid) AS (
            SELECT c.oid, c.oid FROM pg_constraint c
            WHERE c.contype = 'f' AND c.conparentid = 0 AND c.conrelid IN (SELECT oid FROM selected)
            UNION ALL
            SELECT tree.root, c.oid FROM pg_constraint c JOIN tree ON c.conparentid = tree.oid
        )
        SELECT tree.root, bool_and(t.tgenabled IN ('O', 'A')) AS triggers_enabled
        FROM tree JOIN pg_trigger t ON t.tgconstraint = tree.oid
        GROUP BY tree.root
    )
    SELECT c.conrelid AS table_oid, c.conname AS name, c.contype::text AS kind,
           pg_get_constraintdef(c.oid, true) AS definition,
           c.convalidated AS validated,
           ARRAY(SELECT a.attname::text
                 FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, position)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                 ORDER BY k.position) AS columns,
           rn.nspname AS referenced_schema, r.relname AS referenced_table,
           ARRAY(SELECT a.attname::text
                 FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, position)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
                 ORDER BY k.position) AS referenced_columns,
           c.confdeltype::text AS on_delete, c.confupdtype::text AS on_update,
           c.confmatchtype::text AS match_type,
           family.triggers_enabled,
           d.description AS comment
    FROM pg_constraint c
    LEFT JOIN pg_class r ON r.oid = c.confrelid
    LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
    LEFT JOIN family ON family.root = c.oid
    LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_constraint'::regclass
    WHERE c.conrelid IN (SELECT oid FROM selected)
      AND c.conparentid = 0
      AND c.contype IN ('p', 'u', 'c', 'f', 'x')"
);

const INDEXES: &str = concat!(
    selected_tables!(),
    "
    SELECT i.indrelid AS table_oid, ic.relname AS name,
           pg_get_indexdef(i.indexrelid) AS definition,
           ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
                 FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k) AS columns,
           am.amname::text AS method,
           i.indisunique AS is_unique, i.indisprimary AS is_primary, i.indisvalid AS is_valid,
           pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
           con.conname::text AS constraint_name
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    LEFT JOIN pg_constraint con
           ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
    WHERE i.indrelid IN (SELECT oid FROM selected)"
);
