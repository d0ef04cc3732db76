//! The schema a set of migration files builds, replayed statement by statement
//! into catalog's model, with the place in the files that defined each object.
//!
//! The schema rules then check one model whether it came from files or from
//! the live database: that is what keeps the rule IDs the same on both sides.

use std::collections::HashMap;

use catalog::model::{
    Column, Constraint, ConstraintKind, ForeignKey, ForeignKeyAction, Identity, Index, Partition,
    Partitioning, Schema, Table, display_name,
};
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

use crate::syntax::{
    canonical_type, column_list, name_parts, normalized_text, qualified_name, referenced_names,
    simple_name,
};

/// An object of the model, keyed by its table's display name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ObjectKey {
    Table(String),
    Column(String, String),
    Constraint(String, String),
    Index(String, String),
    Partition(String, String),
}

/// A byte range of one file of a migration set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileSpan {
    pub(crate) file: usize,
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// Where each object of a file-built model was defined.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    map: HashMap<ObjectKey, FileSpan>,
    /// Constraints and indexes whose names PostgreSQL chose because the file gave none.
    pub(crate) unnamed: Vec<ObjectKey>,
    /// Every `ALTER COLUMN ... TYPE`, in replay order.
    pub(crate) type_changes: Vec<TypeChange>,
}

/// One `ALTER COLUMN ... TYPE` of the replayed files.
#[derive(Debug)]
pub(crate) struct TypeChange {
    /// The `ALTER COLUMN` clause.
    pub(crate) at: FileSpan,
    /// The table's display name.
    pub(crate) table: String,
    pub(crate) column: String,
    /// The column's type before, as `format_type` prints it; `None` when the
    /// replayed files do not create the column.
    pub(crate) old: Option<String>,
    /// Whether `old` is the live database's type (the files do not create the column).
    pub(crate) old_from_live: bool,
    /// The new type, as `format_type` prints it.
    pub(crate) new: String,
    /// The `USING` expression, if any.
    pub(crate) using: Option<String>,
    /// Whether the same file created the table earlier: nothing reads it yet.
    pub(crate) new_table: bool,
}

impl Origins {
    pub(crate) fn get(&self, key: &ObjectKey) -> Option<FileSpan> {
        self.map.get(key).copied()
    }
}

/// Replays statements into a model.
///
/// Tables are kept by display name while replaying, so that each column,
/// constraint and index finds its table in constant time: a history of
/// thousands of files replays in time linear in its statements.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    tables: HashMap<String, Table>,
    /// Tables made by `CREATE TABLE ... AS`, `SELECT ... INTO` or `CREATE
    /// MATERIALIZED VIEW` (not modelled), with the file that made each.
    made_by_query: HashMap<String, usize>,
    /// Column types of the live database, by table display name and column:
    /// the type before an `ALTER COLUMN ... TYPE` of a column the files do not create.
    live_types: HashMap<(String, String), String>,
    pub(crate) origins: Origins,
    /// Schemas whose objects are left out (dbops's own bookkeeping).
    ignored_schemas: Vec<String>,
}

impl Replay {
    pub(crate) fn new(ignored_schemas: &[String]) -> Replay {
        Replay {
            ignored_schemas: ignored_schemas.to_vec(),
            ..Replay::default()
        }
    }

    pub(crate) fn finish(self) -> (Schema, Origins) {
        let mut schema = Schema {
            tables: self.tables.into_values().collect(),
        };
        schema.sort();
        (schema, self.origins)
    }

    fn table_mut(&mut self, key: &str) -> Option<&mut Table> {
        self.tables.get_mut(key)
    }

    fn record(&mut self, key: ObjectKey, file: usize, node: &SyntaxNode) {
        let range = node.text_range();
        self.origins.map.insert(
            key,
            FileSpan {
                file,
                start: range.start().into(),
                end: range.end().into(),
            },
        );
    }

    fn ignored(&self, schema: &str) -> bool {
        self.ignored_schemas.iter().any(|s| s == schema)
    }

    /// Applies one top-level statement of file number `file`.
    pub(crate) fn statement(&mut self, file: usize, stmt: &ast::Stmt) {
        match stmt {
            ast::Stmt::CreateTable(create) => self.create_table(file, create),
            ast::Stmt::AlterTable(alter) => self.alter_table(file, alter),
            ast::Stmt::CreateIndex(create) => self.create_index(file, create),
            ast::Stmt::CreateTableAs(_)
            | ast::Stmt::SelectInto(_)
            | ast::Stmt::CreateMaterializedView(_) => {
                if let Some((schema, name)) = crate::rules::squawk::created_table(stmt) {
                    self.made_by_query
                        .insert(display_name(&schema, &name), file);
                }
            }
            ast::Stmt::DropTable(drop) => {
                for name in drop.table_name_refs() {
                    if let Some((schema, name)) = qualified_name(name.syntax()) {
                        let key = display_name(&schema, &name);
                        if self.tables.remove(&key).is_some() {
                            continue;
                        }
                        // Not a table: perhaps a partition.
                        for table in self.tables.values_mut() {
                            if let Some(p) = &mut table.partitioning {
                                p.partitions
                                    .retain(|p| display_name(&p.schema, &p.name) != key);
                            }
                        }
                    }
                }
            }
            ast::Stmt::DropIndex(drop) => {
                for index in drop.index_refs() {
                    let Some(name) = name_parts(index.syntax()).pop() else {
                        continue;
                    };
                    for table in self.tables.values_mut() {
                        table.indexes.retain(|i| i.name != name);
                    }
                }
            }
            _ => {}
        }
    }

    fn create_table(&mut self, file: usize, create: &ast::CreateTable) {
        let Some((schema, name)) = create.table_name().and_then(|n| qualified_name(n.syntax()))
        else {
            return;
        };
        if self.ignored(&schema) {
            return;
        }
        let key = display_name(&schema, &name);
        if let Some(parent) = create.partition_of().and_then(|p| p.table_name_ref()) {
            let Some((parent_schema, parent_name)) = qualified_name(parent.syntax()) else {
                return;
            };
            let bound = create
                .syntax()
                .children()
                .find(|n| {
                    matches!(
                        n.kind(),
                        SyntaxKind::PARTITION_DEFAULT
                            | SyntaxKind::PARTITION_FOR_VALUES_FROM
                            | SyntaxKind::PARTITION_FOR_VALUES_IN
                            | SyntaxKind::PARTITION_FOR_VALUES_WITH
                    )
                })
                .map_or_else(|| "DEFAULT".to_owned(), |n| normalized_text(&n));
            let bound = if bound.eq_ignore_ascii_case("default") {
                "DEFAULT".to_owned()
            } else {
                bound
            };
            self.add_partition(
                file,
                create.syntax(),
                &display_name(&parent_schema, &parent_name),
                schema,
                name,
                bound,
            );
            return;
        }
        self.tables.insert(
            key.clone(),
            Table {
                schema,
                name: name.clone(),
                comment: None,
                columns: Vec::new(),
                constraints: Vec::new(),
                indexes: Vec::new(),
                partitioning: create.partition_by().map(|_| Partitioning {
                    key: String::new(),
                    partitions: Vec::new(),
                }),
            },
        );
        if let Some(by) = create.partition_by() {
            // Keep the key as `pg_get_partkeydef` prints it: `RANGE (occurred_at)`.
            let strategy = by
                .partition_strategy()
                .map(|s| normalized_text(s.syntax()).to_uppercase());
            let items = by
                .partition_item_list()
                .map(|l| normalized_text(l.syntax()))
                .unwrap_or_default();
            if let Some(p) = self.table_mut(&key).and_then(|t| t.partitioning.as_mut()) {
                p.key = format!("{} {items}", strategy.unwrap_or_default());
            }
        }
        // A table's findings point at `CREATE TABLE name`, not at its whole definition.
        let head_end = create
            .table_name()
            .map_or(create.syntax().text_range().end(), |n| {
                n.syntax().text_range().end()
            });
        let head = FileSpan {
            file,
            start: create.syntax().text_range().start().into(),
            end: head_end.into(),
        };
        self.origins.map.insert(ObjectKey::Table(key.clone()), head);
        let Some(args) = create.table_arg_list() else {
            return;
        };
        for arg in args.args() {
            match arg {
                ast::TableArg::Column(column) => self.add_column(file, &key, &column),
                ast::TableArg::TableConstraint(constraint) => {
                    self.add_table_constraint(file, &key, constraint.syntax(), None)
                }
                ast::TableArg::LikeClause(_) => {}
            }
        }
    }

    fn add_partition(
        &mut self,
        file: usize,
        node: &SyntaxNode,
        parent: &str,
        schema: String,
        name: String,
        bound: String,
    ) {
        let key = ObjectKey::Partition(parent.to_owned(), display_name(&schema, &name));
        let Some(partitioning) = self.table_mut(parent).and_then(|t| t.partitioning.as_mut())
        else {
            return;
        };
        partitioning.partitions.push(Partition {
            schema,
            name,
            bound,
            parent: None,
            subpartition_key: None,
        });
        self.record(key, file, node);
    }

    fn add_column(&mut self, file: usize, table: &str, column: &ast::Column) {
        let Some(name) = column.name().and_then(|n| simple_name(&n)) else {
            return;
        };
        let data_type = column
            .ty()
            .map(|ty| canonical_type(&normalized_text(ty.syntax())))
            .unwrap_or_default();
        self.push_column(file, table, &name, data_type, column.syntax());
    }

    fn push_column(
        &mut self,
        file: usize,
        table: &str,
        name: &str,
        data_type: String,
        node: &SyntaxNode,
    ) {
        let mut nullable = true;
        let mut default = None;
        let mut identity = None;
        let mut generated = None;
        let mut inline = Vec::new();
        for constraint in node.children() {
            match constraint.kind() {
                SyntaxKind::NOT_NULL_CONSTRAINT => nullable = false,
                SyntaxKind::PRIMARY_KEY_CONSTRAINT => {
                    nullable = false;
                    inline.push(constraint);
                }
                SyntaxKind::DEFAULT_CONSTRAINT => {
                    default = ast::DefaultConstraint::cast(constraint)
                        .and_then(|d| d.expr())
                        .map(|e| normalized_text(e.syntax()));
                }
                SyntaxKind::GENERATED_CONSTRAINT => {
                    let text = normalized_text(&constraint).to_uppercase();
                    if text.contains("IDENTITY") {
                        nullable = false;
                        identity = Some(if text.contains("ALWAYS") {
                            Identity::Always
                        } else {
                            Identity::ByDefault
                        });
                    } else {
                        generated = Some(normalized_text(&constraint));
                    }
                }
                SyntaxKind::UNIQUE_CONSTRAINT
                | SyntaxKind::CHECK_CONSTRAINT
                | SyntaxKind::REFERENCES_CONSTRAINT => inline.push(constraint),
                _ => {}
            }
        }
        let Some(t) = self.table_mut(table) else {
            return;
        };
        t.columns.retain(|c| c.name != name);
        t.columns.push(Column {
            name: name.to_owned(),
            data_type,
            nullable,
            default,
            identity,
            generated,
            comment: None,
            classification: None,
        });
        self.record(
            ObjectKey::Column(table.to_owned(), name.to_owned()),
            file,
            node,
        );
        for constraint in inline {
            self.add_table_constraint(file, table, &constraint, Some(name));
        }
    }

    /// Adds a table constraint, or a column constraint of `column`.
    fn add_table_constraint(
        &mut self,
        file: usize,
        table: &str,
        node: &SyntaxNode,
        column: Option<&str>,
    ) {
        let Some(table_name) = self.tables.get(table).map(|t| t.name.clone()) else {
            return;
        };
        let given_name = node
            .children()
            .find(|n| n.kind() == SyntaxKind::CONSTRAINT_NAME_CLAUSE)
            .and_then(|clause| {
                clause
                    .children()
                    .find(|n| n.kind() == SyntaxKind::CONSTRAINT_NAME)
            })
            .and_then(|n| simple_name_of(&n));
        let own_columns = |list_kind: SyntaxKind| -> Vec<String> {
            match column {
                Some(column) => vec![column.to_owned()],
                None => node
                    .descendants()
                    .find(|n| n.kind() == list_kind)
                    .map(|l| column_list(&l))
                    .unwrap_or_default(),
            }
        };
        let (kind, columns, suffix) = match node.kind() {
            SyntaxKind::PRIMARY_KEY_CONSTRAINT => (
                ConstraintKind::PrimaryKey,
                own_columns(SyntaxKind::CONSTRAINT_COLUMN_REF_LIST),
                "pkey",
            ),
            SyntaxKind::UNIQUE_CONSTRAINT => (
                ConstraintKind::Unique,
                own_columns(SyntaxKind::CONSTRAINT_COLUMN_REF_LIST),
                "key",
            ),
            SyntaxKind::CHECK_CONSTRAINT => {
                let expr = node
                    .children()
                    .find(|n| !matches!(n.kind(), SyntaxKind::CONSTRAINT_NAME_CLAUSE));
                let columns = expr.map(|e| referenced_names(&e)).unwrap_or_default();
                (ConstraintKind::Check, columns, "check")
            }
            SyntaxKind::FOREIGN_KEY_CONSTRAINT | SyntaxKind::REFERENCES_CONSTRAINT => {
                let lists: Vec<SyntaxNode> = node
                    .children()
                    .filter(|n| n.kind() == SyntaxKind::FOREIGN_KEY_COLUMN_LIST)
                    .collect();
                let (columns, referenced_columns) = match column {
                    Some(column) => (
                        vec![column.to_owned()],
                        node.children()
                            .filter(|n| n.kind() == SyntaxKind::COLUMN_NAME_REF)
                            .filter_map(|n| simple_name_of(&n))
                            .take(1)
                            .collect(),
                    ),
                    None => (
                        lists.first().map(column_list).unwrap_or_default(),
                        lists.get(1).map(column_list).unwrap_or_default(),
                    ),
                };
                let Some((ref_schema, ref_table)) = node
                    .children()
                    .find(|n| n.kind() == SyntaxKind::TABLE_NAME_REF)
                    .and_then(|n| qualified_name(&n))
                else {
                    return;
                };
                let referenced_columns = if referenced_columns.is_empty() {
                    vec!["id".to_owned()]
                } else {
                    referenced_columns
                };
                let text = normalized_text(node).to_uppercase();
                let on_delete = if text.contains("ON DELETE CASCADE") {
                    ForeignKeyAction::Cascade
                } else if text.contains("ON DELETE SET NULL") {
                    ForeignKeyAction::SetNull
                } else if text.contains("ON DELETE RESTRICT") {
                    ForeignKeyAction::Restrict
                } else {
                    ForeignKeyAction::NoAction
                };
                let fk = ForeignKey {
                    referenced_schema: ref_schema,
                    referenced_table: ref_table,
                    referenced_columns,
                    on_delete,
                    on_update: ForeignKeyAction::NoAction,
                    match_full: text.contains("MATCH FULL"),
                    triggers_enabled: true,
                };
                (ConstraintKind::ForeignKey(fk), columns, "fkey")
            }
            SyntaxKind::EXCLUDE_CONSTRAINT => (ConstraintKind::Exclusion, Vec::new(), "excl"),
            _ => return,
        };
        let unnamed = given_name.is_none();
        let name = given_name
            .clone()
            .unwrap_or_else(|| default_constraint_name(&table_name, &columns, suffix));
        let not_valid = normalized_text(node).to_uppercase().ends_with("NOT VALID");
        // As `pg_get_constraintdef` prints it: without the `CONSTRAINT name` clause.
        let definition = normalized_text(node)
            .strip_prefix(
                &given_name
                    .as_ref()
                    .map(|_| {
                        node.children()
                            .find(|n| n.kind() == SyntaxKind::CONSTRAINT_NAME_CLAUSE)
                            .map(|c| normalized_text(&c) + " ")
                            .unwrap_or_default()
                    })
                    .unwrap_or_default(),
            )
            .map(str::to_owned)
            .unwrap_or_else(|| normalized_text(node));
        let backing_index = matches!(kind, ConstraintKind::PrimaryKey | ConstraintKind::Unique)
            .then(|| Index {
                name: name.clone(),
                definition: definition.clone(),
                columns: columns.clone(),
                method: "btree".to_owned(),
                unique: true,
                primary: kind == ConstraintKind::PrimaryKey,
                valid: true,
                predicate: None,
                constraint: Some(name.clone()),
            });
        let Some(t) = self.table_mut(table) else {
            return;
        };
        if kind == ConstraintKind::PrimaryKey {
            for column in &mut t.columns {
                if columns.contains(&column.name) {
                    column.nullable = false;
                }
            }
        }
        t.constraints.retain(|c| c.name != name);
        t.constraints.push(Constraint {
            name: name.clone(),
            kind,
            columns,
            definition,
            validated: !not_valid,
            comment: None,
        });
        if let Some(index) = backing_index {
            t.indexes.retain(|i| i.name != index.name);
            t.indexes.push(index);
            self.record(ObjectKey::Index(table.to_owned(), name.clone()), file, node);
        }
        let key = ObjectKey::Constraint(table.to_owned(), name);
        if unnamed {
            self.origins.unnamed.push(key.clone());
        }
        self.record(key, file, node);
    }

    fn alter_table(&mut self, file: usize, alter: &ast::AlterTable) {
        let Some((schema, name)) = alter
            .table_relation_name()
            .and_then(|r| r.table_name_ref())
            .and_then(|n| qualified_name(n.syntax()))
        else {
            return;
        };
        if self.ignored(&schema) {
            return;
        }
        let key = display_name(&schema, &name);
        for action in alter.actions() {
            match action {
                ast::AlterTableAction::AddColumn(add) => {
                    let Some(column) = add.column_name().and_then(|n| simple_name(&n)) else {
                        continue;
                    };
                    let data_type = add
                        .ty()
                        .map(|ty| canonical_type(&normalized_text(ty.syntax())))
                        .unwrap_or_default();
                    self.push_column(file, &key, &column, data_type, add.syntax());
                }
                ast::AlterTableAction::DropColumn(drop) => {
                    let Some(column) = drop.column_name_ref().and_then(|n| simple_name(&n)) else {
                        continue;
                    };
                    if let Some(t) = self.table_mut(&key) {
                        t.columns.retain(|c| c.name != column);
                        t.constraints.retain(|c| !c.columns.contains(&column));
                        t.indexes.retain(|i| !i.columns.contains(&column));
                    }
                }
                ast::AlterTableAction::AddConstraint(add) => {
                    if let Some(constraint) = add.constraint() {
                        self.add_table_constraint(file, &key, constraint.syntax(), None);
                    }
                }
                ast::AlterTableAction::DropConstraint(drop) => {
                    let Some(constraint) = drop.constraint_name_ref().and_then(|n| simple_name(&n))
                    else {
                        continue;
                    };
                    if let Some(t) = self.table_mut(&key) {
                        t.constraints.retain(|c| c.name != constraint);
                        t.indexes
                            .retain(|i| i.constraint.as_deref() != Some(constraint.as_str()));
                    }
                }
                ast::AlterTableAction::RenameColumn(rename) => {
                    let from = rename.column_name_ref().and_then(|n| simple_name(&n));
                    let to = rename.column_name().and_then(|n| simple_name(&n));
                    if let (Some(from), Some(to), Some(t)) = (from, to, self.tables.get_mut(&key)) {
                        for column in t.columns.iter_mut().filter(|c| c.name == from) {
                            column.name = to.clone();
                        }
                        for list in t
                            .constraints
                            .iter_mut()
                            .map(|c| &mut c.columns)
                            .chain(t.indexes.iter_mut().map(|i| &mut i.columns))
                        {
                            for column in list.iter_mut().filter(|c| **c == from) {
                                *column = to.clone();
                            }
                        }
                    }
                }
                ast::AlterTableAction::TableRenameTo(rename) => {
                    let to = rename
                        .table_name()
                        .and_then(|n| name_parts(n.syntax()).pop());
                    if let (Some(to), Some(mut t)) = (to, self.tables.remove(&key)) {
                        t.name = to;
                        self.tables.insert(t.display_name(), t);
                    }
                }
                ast::AlterTableAction::AlterColumn(alter_column) => {
                    let Some(column) = alter_column.column_name_ref().and_then(|n| simple_name(&n))
                    else {
                        continue;
                    };
                    if let Some(ast::AlterColumnOption::SetType(set)) = alter_column.option() {
                        self.set_type(file, &key, &column, alter_column.syntax(), &set);
                        continue;
                    }
                    let Some(t) = self.tables.get_mut(&key) else {
                        continue;
                    };
                    let Some(c) = t.columns.iter_mut().find(|c| c.name == column) else {
                        continue;
                    };
                    match alter_column.option() {
                        Some(ast::AlterColumnOption::SetNotNull(_)) => c.nullable = false,
                        Some(ast::AlterColumnOption::DropNotNull(_)) => c.nullable = true,
                        _ => {}
                    }
                }
                ast::AlterTableAction::AttachPartition(attach) => {
                    let Some((p_schema, p_name)) = attach
                        .table_name_ref()
                        .and_then(|n| qualified_name(n.syntax()))
                    else {
                        continue;
                    };
                    let bound = attach
                        .partition_type()
                        .map_or_else(|| "DEFAULT".to_owned(), |b| normalized_text(b.syntax()));
                    // The attached table stops being a table of its own.
                    let attached = display_name(&p_schema, &p_name);
                    self.tables.remove(&attached);
                    self.add_partition(file, attach.syntax(), &key, p_schema, p_name, bound);
                }
                ast::AlterTableAction::DetachPartition(detach) => {
                    let Some((p_schema, p_name)) = detach
                        .table_name_ref()
                        .and_then(|n| qualified_name(n.syntax()))
                    else {
                        continue;
                    };
                    if let Some(p) = self.table_mut(&key).and_then(|t| t.partitioning.as_mut()) {
                        p.partitions
                            .retain(|p| !(p.schema == p_schema && p.name == p_name));
                    }
                }
                _ => {}
            }
        }
    }

    /// `ALTER COLUMN ... TYPE`: records the change, with the type the column
    /// had before as far as the replay knows it, then changes the model.
    fn set_type(
        &mut self,
        file: usize,
        table: &str,
        column: &str,
        node: &SyntaxNode,
        set: &ast::SetType,
    ) {
        let Some(ty) = set.ty() else {
            return;
        };
        let new = canonical_type(&normalized_text(ty.syntax()));
        let new_table = self
            .origins
            .get(&ObjectKey::Table(table.to_owned()))
            .is_some_and(|span| span.file == file)
            || self.made_by_query.get(table) == Some(&file);
        let using = set
            .using_expr()
            .and_then(|u| u.expr())
            .map(|e| normalized_text(e.syntax()));
        let current = self
            .tables
            .get_mut(table)
            .and_then(|t| t.columns.iter_mut().find(|c| c.name == column));
        let known = current.as_ref().map(|c| c.data_type.clone());
        if let Some(c) = current {
            c.data_type = new.clone();
        }
        let live = self
            .live_types
            .get(&(table.to_owned(), column.to_owned()))
            .filter(|_| known.is_none())
            .cloned();
        let old_from_live = live.is_some();
        let old = known.or(live);
        let range = node.text_range();
        self.origins.type_changes.push(TypeChange {
            at: FileSpan {
                file,
                start: range.start().into(),
                end: range.end().into(),
            },
            table: table.to_owned(),
            column: column.to_owned(),
            old,
            old_from_live,
            new,
            using,
            new_table,
        });
    }

    fn create_index(&mut self, file: usize, create: &ast::CreateIndex) {
        let Some((schema, table)) = create
            .table_relation_name()
            .and_then(|r| r.table_name_ref())
            .and_then(|n| qualified_name(n.syntax()))
        else {
            return;
        };
        if self.ignored(&schema) {
            return;
        }
        let key = display_name(&schema, &table);
        let columns: Vec<String> = create
            .partition_item_list()
            .map(|list| {
                list.partition_items()
                    .map(|item| {
                        let Some(expr) = item.expr() else {
                            return normalized_text(item.syntax());
                        };
                        match expr.syntax().kind() {
                            SyntaxKind::NAME_REF => simple_name(&expr).unwrap_or_default(),
                            _ => normalized_text(expr.syntax()),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let given = create.index().and_then(|i| name_parts(i.syntax()).pop());
        let unique = create.unique_token().is_some();
        let name = given.clone().unwrap_or_else(|| {
            default_constraint_name(&table, &columns, if unique { "key" } else { "idx" })
        });
        let index = Index {
            name: name.clone(),
            definition: normalized_text(create.syntax()),
            columns,
            method: create
                .using_method()
                .and_then(|m| {
                    m.syntax()
                        .descendants_with_tokens()
                        .filter_map(|e| e.into_token())
                        .filter(|t| !t.kind().is_trivia())
                        .last()
                })
                .map_or_else(|| "btree".to_owned(), |t| crate::syntax::ident(&t)),
            unique,
            primary: false,
            valid: create
                .table_relation_name()
                .and_then(|r| r.only_token())
                .is_none(),
            predicate: create
                .where_clause()
                .and_then(|w| w.syntax().children().last())
                .map(|e| normalized_text(&e)),
            constraint: None,
        };
        let Some(t) = self.table_mut(&key) else {
            return;
        };
        t.indexes.retain(|i| i.name != name);
        t.indexes.push(index);
        let object = ObjectKey::Index(key, name);
        if given.is_none() {
            self.origins.unnamed.push(object.clone());
        }
        self.record(object, file, create.syntax());
    }
}

fn simple_name_of(node: &SyntaxNode) -> Option<String> {
    node.descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .find(|t| !t.kind().is_trivia())
        .map(|t| crate::syntax::ident(&t))
}

/// PostgreSQL's default name for a constraint or index: `<table>_<columns>_<suffix>`.
fn default_constraint_name(table: &str, columns: &[String], suffix: &str) -> String {
    let columns: Vec<&str> = match suffix {
        "pkey" => Vec::new(),
        "check" | "fkey" => columns.iter().take(1).map(String::as_str).collect(),
        _ => columns.iter().map(String::as_str).collect(),
    };
    [table]
        .into_iter()
        .chain(columns)
        .chain([suffix])
        .collect::<Vec<_>>()
        .join("_")
}

/// Builds the model of a sequence of parsed files, in order.
#[cfg(test)]
pub(crate) fn replay<'a>(
    files: impl IntoIterator<Item = (usize, &'a squawk_syntax::Parse<squawk_syntax::SourceFile>)>,
    ignored_schemas: &[String],
) -> (Schema, Origins) {
    replay_over(files, ignored_schemas, None)
}

/// [`replay`], knowing the live database's schema: a type change of a
/// column the files do not create starts from the column's live type.
pub(crate) fn replay_over<'a>(
    files: impl IntoIterator<Item = (usize, &'a squawk_syntax::Parse<squawk_syntax::SourceFile>)>,
    ignored_schemas: &[String],
    live: Option<&Schema>,
) -> (Schema, Origins) {
    let mut replay = Replay::new(ignored_schemas);
    for table in live.into_iter().flat_map(|schema| &schema.tables) {
        for column in &table.columns {
            replay.live_types.insert(
                (table.display_name(), column.name.clone()),
                column.data_type.clone(),
            );
        }
    }
    for (file, parse) in files {
        for stmt in parse.tree().stmts() {
            replay.statement(file, &stmt);
        }
    }
    replay.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(sql: &str) -> Schema {
        let parse = squawk_syntax::SourceFile::parse(sql);
        replay([(0, &parse)], &["dbops".to_owned()]).0
    }

    #[test]
    fn replays_tables_constraints_indexes_and_partitions() {
        let schema = model(
            "CREATE TABLE orgs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, slug varchar(20) NOT NULL UNIQUE);
             CREATE TABLE events (id bigint, org_id bigint REFERENCES orgs, at timestamptz NOT NULL,
                 CONSTRAINT events_pkey PRIMARY KEY (id, at), CONSTRAINT events_at_check CHECK (at > '2020-01-01'))
                 PARTITION BY RANGE (at);
             CREATE INDEX events_org_id_idx ON ONLY events (org_id, lower(slug)) WHERE org_id IS NOT NULL;
             CREATE TABLE events_default PARTITION OF events DEFAULT;
             CREATE TABLE dbops.history (version bigint);
             ALTER TABLE orgs ADD COLUMN name text, DROP COLUMN slug;
             ALTER TABLE orgs RENAME COLUMN name TO title;",
        );
        let shape: Vec<String> = schema
            .tables
            .iter()
            .map(|t| {
                format!(
                    "{}: columns {:?}; constraints {:?}; indexes {:?}; partitioning {:?}",
                    t.name,
                    t.columns
                        .iter()
                        .map(|c| format!(
                            "{} {} {}",
                            c.name,
                            c.data_type,
                            if c.nullable { "null" } else { "not null" }
                        ))
                        .collect::<Vec<_>>(),
                    t.constraints
                        .iter()
                        .map(|c| format!("{} {:?}", c.name, c.columns))
                        .collect::<Vec<_>>(),
                    t.indexes
                        .iter()
                        .map(|i| format!(
                            "{} {:?} valid={} pred={:?}",
                            i.name, i.columns, i.valid, i.predicate
                        ))
                        .collect::<Vec<_>>(),
                    t.partitioning.as_ref().map(|p| (
                        p.key.clone(),
                        p.partitions
                            .iter()
                            .map(|p| format!("{} {}", p.name, p.bound))
                            .collect::<Vec<_>>()
                    )),
                )
            })
            .collect();
        expect_test::expect![[r#"
            [
                "events: columns [\"id bigint not null\", \"org_id bigint null\", \"at timestamp with time zone not null\"]; constraints [\"events_at_check [\\\"at\\\"]\", \"events_org_id_fkey [\\\"org_id\\\"]\", \"events_pkey [\\\"id\\\", \\\"at\\\"]\"]; indexes [\"events_org_id_idx [\\\"org_id\\\", \\\"lower(slug)\\\"] valid=false pred=Some(\\\"org_id IS NOT NULL\\\")\", \"events_pkey [\\\"id\\\", \\\"at\\\"] valid=true pred=None\"]; partitioning Some((\"RANGE (at)\", [\"events_default DEFAULT\"]))",
                "orgs: columns [\"id bigint not null\", \"title text null\"]; constraints [\"orgs_pkey [\\\"id\\\"]\"]; indexes [\"orgs_pkey [\\\"id\\\"] valid=true pred=None\"]; partitioning None",
            ]
        "#]]
        .assert_debug_eq(&shape);
    }
}
