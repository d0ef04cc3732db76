//! The normalized schema model: what introspection produces and docs, lint and validation consume.
//!
//! Every collection is sorted (tables by schema and name, constraints and
//! indexes by name, partitions by name; columns keep their position in the
//! table), so two introspections of the same schema compare equal and
//! serialize to the same bytes.

use serde::{Deserialize, Serialize};

use crate::classification::ColumnClassification;

/// The schema used when a table's name is written without one.
pub const DEFAULT_SCHEMA: &str = "public";

/// Every table of the introspected schemas, partitions folded under their parent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Ordinary and partitioned tables, sorted by schema then name. Partitions
    /// are not listed here but under [`Table::partitioning`].
    pub tables: Vec<Table>,
}

impl Schema {
    /// The table with this display name (`users`, or `analytics.daily_usage`
    /// outside `public`): see [`Table::display_name`].
    pub fn table(&self, display_name: &str) -> Option<&Table> {
        let (schema, name) = split_display_name(display_name);
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }

    /// Mutable access to the table with this display name.
    pub fn table_mut(&mut self, display_name: &str) -> Option<&mut Table> {
        let (schema, name) = split_display_name(display_name);
        self.tables
            .iter_mut()
            .find(|t| t.schema == schema && t.name == name)
    }

    /// Every foreign key of every table, with the table that holds it.
    pub fn foreign_keys(&self) -> impl Iterator<Item = (&Table, &Constraint, &ForeignKey)> {
        self.tables.iter().flat_map(|table| {
            table
                .constraints
                .iter()
                .filter_map(move |constraint| match &constraint.kind {
                    ConstraintKind::ForeignKey(fk) => Some((table, constraint, fk)),
                    _ => None,
                })
        })
    }

    /// Foreign keys of other tables (or of the table itself) that reference
    /// this table: the "referenced by" side of its relationships.
    pub fn references_to<'a>(
        &'a self,
        table: &'a Table,
    ) -> impl Iterator<Item = (&'a Table, &'a Constraint, &'a ForeignKey)> {
        self.foreign_keys().filter(move |(_, _, fk)| {
            fk.referenced_schema == table.schema && fk.referenced_table == table.name
        })
    }

    /// Puts every collection in its canonical order. Introspection already
    /// returns sorted data; call this after building or editing a model by hand.
    pub fn sort(&mut self) {
        self.tables
            .sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        for table in &mut self.tables {
            table.constraints.sort_by(|a, b| a.name.cmp(&b.name));
            table.indexes.sort_by(|a, b| a.name.cmp(&b.name));
            if let Some(partitioning) = &mut table.partitioning {
                partitioning
                    .partitions
                    .sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
            }
        }
    }
}

/// Splits `schema.table` into its parts; a bare name is in [`DEFAULT_SCHEMA`].
fn split_display_name(display_name: &str) -> (&str, &str) {
    display_name
        .split_once('.')
        .unwrap_or((DEFAULT_SCHEMA, display_name))
}

/// The name a table is shown and keyed by: bare in [`DEFAULT_SCHEMA`],
/// `schema.name` elsewhere. The classification map uses the same keys.
pub fn display_name(schema: &str, name: &str) -> String {
    if schema == DEFAULT_SCHEMA {
        name.to_owned()
    } else {
        format!("{schema}.{name}")
    }
}

/// An ordinary or partitioned table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// The schema the table lives in.
    pub schema: String,
    /// The table's name.
    pub name: String,
    /// `COMMENT ON TABLE`: the table's purpose.
    pub comment: Option<String>,
    /// Columns in their position order.
    pub columns: Vec<Column>,
    /// Primary key, unique, check, foreign key and exclusion constraints, by name.
    pub constraints: Vec<Constraint>,
    /// Indexes by name, including those backing constraints.
    pub indexes: Vec<Index>,
    /// The partitioning key and partitions, for a partitioned table.
    pub partitioning: Option<Partitioning>,
}

impl Table {
    /// See [`display_name`].
    pub fn display_name(&self) -> String {
        display_name(&self.schema, &self.name)
    }

    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The constraint with this name.
    pub fn constraint(&self, name: &str) -> Option<&Constraint> {
        self.constraints.iter().find(|c| c.name == name)
    }

    /// The index with this name.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The primary key constraint, if the table has one.
    pub fn primary_key(&self) -> Option<&Constraint> {
        self.constraints
            .iter()
            .find(|c| c.kind == ConstraintKind::PrimaryKey)
    }

    /// Whether the column is part of the primary key.
    pub fn is_primary_key_column(&self, column: &str) -> bool {
        self.primary_key()
            .is_some_and(|pk| pk.columns.iter().any(|c| c == column))
    }

    /// Whether the column is one of the referencing columns of a foreign key.
    pub fn is_foreign_key_column(&self, column: &str) -> bool {
        self.constraints.iter().any(|c| {
            matches!(&c.kind, ConstraintKind::ForeignKey(_))
                && c.columns.iter().any(|col| col == column)
        })
    }
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// The type as PostgreSQL prints it (`format_type`): `bigint`,
    /// `timestamp with time zone`, `character varying(64)`, `text[]`.
    pub data_type: String,
    /// Whether NULL is allowed (no `NOT NULL`).
    pub nullable: bool,
    /// The default expression as PostgreSQL prints it, e.g. `now()`.
    pub default: Option<String>,
    /// `GENERATED ... AS IDENTITY`.
    pub identity: Option<Identity>,
    /// The expression of a `GENERATED ALWAYS AS (...) STORED` column.
    pub generated: Option<String>,
    /// `COMMENT ON COLUMN`.
    pub comment: Option<String>,
    /// The column's entry in the data-classification map, once joined with
    /// [`crate::classification::ClassificationMap::apply`]; introspection leaves it empty.
    pub classification: Option<ColumnClassification>,
}

/// How an identity column generates its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// `GENERATED ALWAYS AS IDENTITY`: explicit values need `OVERRIDING SYSTEM VALUE`.
    Always,
    /// `GENERATED BY DEFAULT AS IDENTITY`.
    ByDefault,
}

impl Identity {
    /// The SQL clause, e.g. `GENERATED ALWAYS AS IDENTITY`.
    pub fn sql(self) -> &'static str {
        match self {
            Identity::Always => "GENERATED ALWAYS AS IDENTITY",
            Identity::ByDefault => "GENERATED BY DEFAULT AS IDENTITY",
        }
    }
}

/// A table constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// The constraint's name.
    pub name: String,
    /// What kind of constraint, with the details of a foreign key.
    pub kind: ConstraintKind,
    /// The constrained columns in key order (empty for a check constraint on
    /// an expression that names no column).
    pub columns: Vec<String>,
    /// The definition as PostgreSQL prints it (`pg_get_constraintdef`), e.g.
    /// `CHECK ((status = ANY (ARRAY['active'::text, 'suspended'::text])))`,
    /// without the ` NOT VALID` suffix (that is [`Constraint::validated`]).
    pub definition: String,
    /// False for a constraint added `NOT VALID` and never validated: existing
    /// rows have not been checked against it.
    pub validated: bool,
    /// `COMMENT ON CONSTRAINT`.
    pub comment: Option<String>,
}

/// The kind of a [`Constraint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// `PRIMARY KEY`.
    PrimaryKey,
    /// `UNIQUE`.
    Unique,
    /// `CHECK`.
    Check,
    /// `FOREIGN KEY ... REFERENCES`.
    ForeignKey(ForeignKey),
    /// `EXCLUDE`.
    Exclusion,
}

impl ConstraintKind {
    /// A lowercase name for messages: `primary key`, `foreign key`.
    pub fn describe(&self) -> &'static str {
        match self {
            ConstraintKind::PrimaryKey => "primary key",
            ConstraintKind::Unique => "unique",
            ConstraintKind::Check => "check",
            ConstraintKind::ForeignKey(_) => "foreign key",
            ConstraintKind::Exclusion => "exclusion",
        }
    }
}

/// The referencing details of a foreign key; the referencing columns are
/// [`Constraint::columns`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The referenced table's schema.
    pub referenced_schema: String,
    /// The referenced table.
    pub referenced_table: String,
    /// The referenced columns, paired in order with the referencing columns.
    pub referenced_columns: Vec<String>,
    /// `ON DELETE` action.
    pub on_delete: ForeignKeyAction,
    /// `ON UPDATE` action.
    pub on_update: ForeignKeyAction,
    /// `MATCH FULL` rather than the default `MATCH SIMPLE`.
    pub match_full: bool,
    /// Whether every trigger that enforces the key is enabled. `ALTER TABLE
    /// ... DISABLE TRIGGER ALL` silently stops enforcing foreign keys.
    pub triggers_enabled: bool,
}

impl ForeignKey {
    /// The referenced table's display name (see [`display_name`]).
    pub fn referenced_display_name(&self) -> String {
        display_name(&self.referenced_schema, &self.referenced_table)
    }
}

/// What a foreign key does when the referenced row is deleted or updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForeignKeyAction {
    /// `NO ACTION` (the default): fail at the end of the statement.
    NoAction,
    /// `RESTRICT`: fail immediately.
    Restrict,
    /// `CASCADE`.
    Cascade,
    /// `SET NULL`.
    SetNull,
    /// `SET DEFAULT`.
    SetDefault,
}

impl ForeignKeyAction {
    /// The SQL spelling, e.g. `SET NULL`.
    pub fn sql(self) -> &'static str {
        match self {
            ForeignKeyAction::NoAction => "NO ACTION",
            ForeignKeyAction::Restrict => "RESTRICT",
            ForeignKeyAction::Cascade => "CASCADE",
            ForeignKeyAction::SetNull => "SET NULL",
            ForeignKeyAction::SetDefault => "SET DEFAULT",
        }
    }

    /// Decodes `pg_constraint.confdeltype` / `confupdtype`.
    pub(crate) fn from_catalog(code: u8) -> Option<ForeignKeyAction> {
        Some(match code {
            b'a' => ForeignKeyAction::NoAction,
            b'r' => ForeignKeyAction::Restrict,
            b'c' => ForeignKeyAction::Cascade,
            b'n' => ForeignKeyAction::SetNull,
            b'd' => ForeignKeyAction::SetDefault,
            _ => return None,
        })
    }
}

/// An index of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The index's name.
    pub name: String,
    /// The full `CREATE INDEX` statement as PostgreSQL prints it.
    pub definition: String,
    /// Key columns in order; an expression key is given as its text, e.g. `lower(email)`.
    pub columns: Vec<String>,
    /// The access method: `btree`, `gin`, `brin`...
    pub method: String,
    /// `UNIQUE`.
    pub unique: bool,
    /// Whether the index backs the primary key.
    pub primary: bool,
    /// False for an index left invalid by a failed `CREATE INDEX
    /// CONCURRENTLY`, or a partitioned index not yet attached on every partition.
    pub valid: bool,
    /// The `WHERE` predicate of a partial index.
    pub predicate: Option<String>,
    /// The constraint this index backs (primary key, unique, exclusion).
    pub constraint: Option<String>,
}

/// How a partitioned table is partitioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partitioning {
    /// The key as PostgreSQL prints it (`pg_get_partkeydef`), e.g. `RANGE (occurred_at)`.
    pub key: String,
    /// Every partition, including partitions of partitions, sorted by schema and name.
    pub partitions: Vec<Partition>,
}

impl Partitioning {
    /// The default partition, if there is one directly under the table.
    pub fn default_partition(&self) -> Option<&Partition> {
        self.partitions
            .iter()
            .find(|p| p.bound == "DEFAULT" && p.parent.is_none())
    }
}

/// One partition of a partitioned table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// The partition's schema.
    pub schema: String,
    /// The partition's name.
    pub name: String,
    /// The bound as PostgreSQL prints it, e.g.
    /// `FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00')`, or `DEFAULT`.
    pub bound: String,
    /// The intermediate partition this one belongs to, for a partition of a
    /// partition (display name); `None` when directly under the table.
    pub parent: Option<String>,
    /// The partition's own key, when it is partitioned further.
    pub subpartition_key: Option<String>,
}
