//! The changes a migration of the realistic history makes, each a method
//! of [`History`] that picks its target among those it can change now (or
//! returns `None`), writes the up and the down, and updates the model.

use std::fmt::Write as _;

use super::domain::{ADDED, ENUMS, EnumIdea, Idea, REFERENCES, TABLES};
use super::{
    Column, Constraint, Enum, Function, History, Index, MIGRATIONS, Step, Table, View, step,
    trigger_name, trigger_sql,
};

/// The changes that make up most of the history, with their weights.
type Change = fn(&mut History) -> Option<Step>;
const CHANGES: &[(Change, usize)] = &[
    (History::add_column, 12),
    (History::add_column_with_default, 6),
    (History::backfill, 10),
    (History::set_not_null, 6),
    (History::index, 12),
    (History::drop_index, 2),
    (History::add_check, 5),
    (History::validate, 4),
    (History::add_reference, 3),
    (History::create_view, 3),
    (History::replace_view, 3),
    (History::create_function, 2),
    (History::replace_function, 2),
    (History::add_trigger, 2),
    (History::create_enum, 3),
    (History::add_enum_value, 3),
    (History::use_enum_value, 3),
    (History::rename_enum_value, 1),
    (History::rename_column, 3),
    (History::rename_table, 1),
    (History::drop_column, 2),
    (History::retype, 1),
    (History::set_default, 2),
    (History::comment, 4),
    (History::drop_table, 1),
    (History::insert_reference_rows, 2),
];

impl History {
    /// The first migrations: the trigger function, then the tables that
    /// hold data, each seeded right after it is created.
    pub(super) fn start(&mut self) {
        self.functions.push(Function {
            counts: None,
            name: "set_updated_at".into(),
            version: 1,
        });
        let body = self.function_sql(0, 1);
        self.push(step(
            "function",
            "create_set_updated_at_function".into(),
            format!("CREATE FUNCTION {body};\n"),
            "DROP FUNCTION set_updated_at();\n".into(),
        ));
        while TABLES[self.next_table].seed.is_some() {
            let create = self.create_table().expect("the seeded tables come first");
            self.push(create);
            let seed = self.seed(self.tables.len() - 1);
            self.push(seed);
        }
    }

    /// A change picked by weight among those possible now.
    pub(super) fn any_change(&mut self) -> Step {
        let total: usize = CHANGES.iter().map(|(_, weight)| weight).sum();
        for _ in 0..10_000 {
            let mut ticket = self.rng.below(total);
            let (change, _) = CHANGES
                .iter()
                .find(|(_, weight)| {
                    let hit = ticket < *weight;
                    ticket = ticket.saturating_sub(*weight);
                    hit
                })
                .expect("the ticket is below the total");
            if let Some(step) = change(self) {
                return step;
            }
        }
        unreachable!("a comment on some table or column is always possible")
    }

    pub(super) fn create_table(&mut self) -> Option<Step> {
        let spec = match TABLES.get(self.next_table) {
            Some(spec) => spec,
            // Past the history the apply benchmark replays, the project keeps
            // growing: the tables come round again, under new names (`users_2`).
            None if self.steps.len() >= MIGRATIONS => &TABLES[self.next_table % TABLES.len()],
            None => return None,
        };
        self.next_table += 1;
        let t = self.tables.len();
        let name = self.take_name(spec.name);
        for suffix in ["id_seq", "pkey"] {
            self.take_name(&format!("{name}_{suffix}"));
        }
        let mut columns = vec![Column::fixed("id", "bigint", None)];
        let mut up = format!(
            "CREATE TABLE {name} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        );
        let mut after = String::new();
        for (column, parent) in spec.parents {
            let p = self.table_named(parent).expect("parents come first");
            let _ = write!(
                up,
                ",\n    {column} bigint NOT NULL REFERENCES {} (id)",
                self.tables[p].name
            );
            let index = self.take_name(&format!("{name}_{column}_idx"));
            let _ = writeln!(after, "CREATE INDEX {index} ON {name} ({column});");
            self.indexes.push(Index {
                name: index,
                table: t,
                columns: vec![columns.len()],
                unique: false,
                gin: false,
                partial: None,
                concurrently: false,
                on_reference: true,
                dropped: false,
            });
            columns.push(Column {
                references: Some(p),
                indexed: true,
                ..Column::fixed(column, "bigint", None)
            });
        }
        for idea in spec.columns {
            let column = Column {
                not_null: idea.required,
                default: idea.default.map(str::to_owned),
                ..Column::from_idea(idea)
            };
            let _ = write!(up, ",\n    {}", column.definition());
            columns.push(column);
        }
        for stamp in ["created_at", "updated_at"] {
            let column = Column::fixed(stamp, "timestamptz", Some("now()"));
            let _ = write!(up, ",\n    {}", column.definition());
            columns.push(column);
        }
        up.push_str("\n);\n");
        up.push_str(&after);
        let trigger = spec.trigger.then(|| trigger_name(&name));
        if let Some(trigger) = &trigger {
            up.push_str(&trigger_sql(trigger, &name));
        }
        let down = format!("DROP TABLE {name};\n");
        self.tables.push(Table {
            spec,
            name: name.clone(),
            columns,
            rows: 0,
            trigger,
            in_function: false,
            renamed: false,
            dropped: false,
            commented: false,
            composite_index: false,
            view: false,
            count_function: false,
            reference_rows: false,
        });
        Some(step("create table", format!("create_{name}"), up, down))
    }

    /// Rows for a table just created: each column's fill, references
    /// spread over the parent's rows.
    fn seed(&mut self, t: usize) -> Step {
        let (share, whole) = self.tables[t].spec.seed.expect("a seeded table");
        let count = (self.rows * share / whole).max(1);
        let (mut names, mut values) = (Vec::new(), Vec::new());
        for column in &self.tables[t].columns {
            let value = match (column.references, &column.fill) {
                (Some(p), _) => format!("(id % {}) + 1", self.tables[p].rows),
                (None, Some(fill)) => fill.clone(),
                (None, None) => continue,
            };
            names.push(column.name.as_str());
            values.push(value);
        }
        let name = &self.tables[t].name;
        let up = format!(
            "INSERT INTO {name} ({})\nSELECT {}\nFROM generate_series(1, {count}) AS id;\n",
            names.join(", "),
            values.join(",\n    ")
        );
        let down = format!("DELETE FROM {name};\n");
        let slug = format!("seed_{name}");
        self.tables[t].rows = count;
        step("seed", slug, up, down)
    }

    /// The ideas not yet used on table `t`.
    fn fresh_ideas(&self, t: usize, keep: impl Fn(&Idea) -> bool) -> Vec<&'static Idea> {
        let table = &self.tables[t];
        ADDED
            .iter()
            .filter(|idea| {
                keep(idea)
                    && !table.columns.iter().any(|column| {
                        column.idea.is_some_and(|used| used.name == idea.name)
                            || column.name == idea.name
                            || Some(column.name.as_str()) == idea.rename
                    })
            })
            .collect()
    }

    /// A table, three times likelier when it holds rows, and an idea for it.
    fn table_and_idea(&mut self, keep: impl Fn(&Idea) -> bool) -> Option<(usize, &'static Idea)> {
        let mut tables = Vec::new();
        for t in self.live_tables() {
            let times = if self.tables[t].rows > 0 { 3 } else { 1 };
            tables.extend(std::iter::repeat_n(t, times));
        }
        let t = self.rng.pick(&tables)?;
        let ideas = self.fresh_ideas(t, keep);
        let idea = self.rng.pick(&ideas)?;
        Some((t, idea))
    }

    /// A nullable column, to be backfilled if the table holds rows.
    fn add_column(&mut self) -> Option<Step> {
        let (t, idea) = self.table_and_idea(|idea| idea.default != Some("gen_random_uuid()"))?;
        let column = Column {
            unfilled: self.tables[t].rows > 0 && idea.fill.is_some(),
            ..Column::from_idea(idea)
        };
        Some(self.push_column(t, column, "add column"))
    }

    /// `ADD COLUMN ... NOT NULL DEFAULT ...`: instant for a constant, a
    /// rewrite of the table for a volatile default such as `gen_random_uuid()`.
    fn add_column_with_default(&mut self) -> Option<Step> {
        let (t, idea) = self.table_and_idea(|idea| idea.required && idea.default.is_some())?;
        let column = Column {
            not_null: true,
            default: idea.default.map(str::to_owned),
            ..Column::from_idea(idea)
        };
        Some(self.push_column(t, column, "add column with default"))
    }

    fn push_column(&mut self, t: usize, column: Column, kind: &'static str) -> Step {
        let table = &mut self.tables[t];
        let (name, definition) = (&table.name, column.definition());
        let up = format!("ALTER TABLE {name} ADD COLUMN {definition};\n");
        let down = format!("ALTER TABLE {name} DROP COLUMN {};\n", column.name);
        let slug = format!("add_{}_to_{name}", column.name);
        table.columns.push(column);
        step(kind, slug, up, down)
    }

    fn backfill(&mut self) -> Option<Step> {
        let candidates = self.columns_where(|_, column| column.unfilled);
        let (t, c) = self.rng.pick(&candidates)?;
        let (table, column) = (&self.tables[t].name, self.col(t, c));
        let fill = column
            .fill
            .as_deref()
            .expect("an unfilled column has a fill");
        let up = format!(
            "UPDATE {table} SET {c} = {fill} WHERE {c} IS NULL;\n",
            c = column.name
        );
        let down = format!("UPDATE {table} SET {} = NULL;\n", column.name);
        let slug = format!("backfill_{table}_{}", column.name);
        self.tables[t].columns[c].unfilled = false;
        Some(step("backfill", slug, up, down))
    }

    fn set_not_null(&mut self) -> Option<Step> {
        let candidates = self.columns_where(|_, column| {
            !column.not_null
                && !column.unfilled
                && column.fill.is_some()
                && column.idea.is_some_and(|idea| idea.required)
        });
        let (t, c) = self.rng.pick(&candidates)?;
        let (table, column) = (&self.tables[t].name, self.col(t, c));
        let name = &column.name;
        let default = column
            .idea
            .and_then(|idea| idea.default)
            .filter(|_| column.default.is_none());
        let (up, down) = match default {
            Some(default) => (
                format!(
                    "ALTER TABLE {table}\n    ALTER COLUMN {name} SET DEFAULT {default},\n    ALTER COLUMN {name} SET NOT NULL;\n"
                ),
                format!(
                    "ALTER TABLE {table}\n    ALTER COLUMN {name} DROP NOT NULL,\n    ALTER COLUMN {name} DROP DEFAULT;\n"
                ),
            ),
            None => (
                format!("ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL;\n"),
                format!("ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL;\n"),
            ),
        };
        let slug = format!("{table}_{name}_not_null");
        let column = &mut self.tables[t].columns[c];
        column.not_null = true;
        if let Some(default) = default {
            column.default = Some(default.to_owned());
        }
        Some(step("set not null", slug, up, down))
    }

    /// An index on a column (a new reference first), or on a reference and
    /// `created_at`: concurrently on a table holding rows.
    fn index(&mut self) -> Option<Step> {
        let references =
            self.columns_where(|_, column| column.references.is_some() && !column.indexed);
        let plain = self.columns_where(|_, column| {
            !column.indexed && (column.idea.is_some() || column.enum_type.is_some())
        });
        let composite = self.columns_where(|table, column| {
            column.references.is_some() && column.indexed && !table.composite_index
        });
        let (t, columns) = match self.rng.below(10) {
            0..=6 if !references.is_empty() => {
                let (t, c) = self.rng.pick(&references)?;
                (t, vec![c])
            }
            7 if !composite.is_empty() => {
                let (t, c) = self.rng.pick(&composite)?;
                let created_at = self.tables[t]
                    .columns
                    .iter()
                    .position(|column| column.name == "created_at")?;
                (t, vec![c, created_at])
            }
            _ => {
                let (t, c) = self.rng.pick(&plain)?;
                (t, vec![c])
            }
        };
        let first = self.col(t, columns[0]);
        let idea = first.idea;
        let unique = columns.len() == 1 && idea.is_some_and(|idea| idea.unique);
        let gin = first.ty == "jsonb";
        let partial = idea.and_then(|idea| idea.partial);
        let on_reference = first.references.is_some();
        let names: Vec<&str> = columns
            .iter()
            .map(|&c| self.col(t, c).name.as_str())
            .collect();
        let base = format!(
            "{}_{}_{}",
            self.tables[t].name,
            names.join("_"),
            if unique { "key" } else { "idx" }
        );
        let slug = format!("index_{}_{}", self.tables[t].name, names.join("_"));
        let concurrently = self.tables[t].rows > 0 || self.rng.below(3) == 0;
        let name = self.take_name(&base);
        let index = Index {
            name,
            table: t,
            columns,
            unique,
            gin,
            partial,
            concurrently,
            on_reference,
            dropped: false,
        };
        let (up, down) = self.index_scripts(&index);
        let table = &mut self.tables[t];
        if index.columns.len() > 1 {
            table.composite_index = true;
        }
        for &c in &index.columns {
            table.columns[c].indexed = true;
            table.columns[c].depended_on = true;
        }
        self.indexes.push(index);
        let kind = if concurrently {
            "index concurrently"
        } else {
            "index"
        };
        Some(step(kind, slug, up, down))
    }

    fn drop_index(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = (0..self.indexes.len())
            .filter(|&i| {
                let index = &self.indexes[i];
                !index.dropped
                    && !index.on_reference
                    && !index.unique
                    && !self.tables[index.table].dropped
            })
            .collect();
        let i = self.rng.pick(&candidates)?;
        let (create, drop) = self.index_scripts(&self.indexes[i]);
        let slug = format!("drop_index_{}", self.indexes[i].name);
        self.indexes[i].dropped = true;
        Some(step("drop index", slug, drop, create))
    }

    fn add_check(&mut self) -> Option<Step> {
        let candidates = self.columns_where(|_, column| {
            !column.checked && column.idea.is_some_and(|idea| idea.check.is_some())
        });
        let (t, c) = self.rng.pick(&candidates)?;
        let not_valid = self.tables[t].rows > 0 && self.rng.below(2) == 0;
        let check = self.col(t, c).idea.and_then(|idea| idea.check);
        let table = self.tables[t].name.clone();
        let name = format!("{table}_{}_check", self.col(t, c).name);
        let constraint = Constraint {
            name,
            table: t,
            column: c,
            check,
            valid: !not_valid,
        };
        let up = format!(
            "ALTER TABLE {table} ADD CONSTRAINT {} {}{};\n",
            constraint.name,
            self.constraint_def(&constraint),
            if not_valid { " NOT VALID" } else { "" }
        );
        let down = format!("ALTER TABLE {table} DROP CONSTRAINT {};\n", constraint.name);
        let slug = format!("add_{}", constraint.name);
        let column = &mut self.tables[t].columns[c];
        column.checked = true;
        column.depended_on = true;
        self.constraints.push(constraint);
        Some(step("check constraint", slug, up, down))
    }

    /// `VALIDATE CONSTRAINT` of a constraint added `NOT VALID`; its down
    /// adds it again `NOT VALID`.
    fn validate(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = (0..self.constraints.len())
            .filter(|&k| {
                let constraint = &self.constraints[k];
                !constraint.valid
                    && !self.tables[constraint.table].dropped
                    && !self.col(constraint.table, constraint.column).dropped
            })
            .collect();
        let k = self.rng.pick(&candidates)?;
        let constraint = &self.constraints[k];
        let table = &self.tables[constraint.table].name;
        let name = &constraint.name;
        let up = format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name};\n");
        let down = format!(
            "ALTER TABLE {table} DROP CONSTRAINT {name};\nALTER TABLE {table} ADD CONSTRAINT {name} {} NOT VALID;\n",
            self.constraint_def(constraint)
        );
        let slug = format!("validate_{name}");
        self.constraints[k].valid = true;
        Some(step("validate constraint", slug, up, down))
    }

    /// A reference column added to an existing table, `NOT VALID` when the
    /// table holds rows (validated, backfilled and indexed later).
    fn add_reference(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = (0..REFERENCES.len())
            .filter(|&r| {
                let (table, column, parent) = REFERENCES[r];
                !self.references_done[r]
                    && self.table_named(parent).is_some()
                    && self.table_named(table).is_some_and(|t| {
                        !self.tables[t]
                            .columns
                            .iter()
                            .any(|existing| existing.name == column)
                    })
            })
            .collect();
        let r = self.rng.pick(&candidates)?;
        let (table, column, parent) = REFERENCES[r];
        let (t, p) = (self.table_named(table)?, self.table_named(parent)?);
        let (name, parent_name) = (self.tables[t].name.clone(), self.tables[p].name.clone());
        let parent_rows = self.tables[p].rows;
        let holds_rows = self.tables[t].rows > 0;
        let constraint = Constraint {
            name: format!("{name}_{column}_fkey"),
            table: t,
            column: self.tables[t].columns.len(),
            check: None,
            valid: !holds_rows,
        };
        let up = if holds_rows {
            format!(
                "ALTER TABLE {name} ADD COLUMN {column} bigint;\nALTER TABLE {name} ADD CONSTRAINT {} FOREIGN KEY ({column}) REFERENCES {parent_name} (id) NOT VALID;\n",
                constraint.name
            )
        } else {
            format!(
                "ALTER TABLE {name} ADD COLUMN {column} bigint REFERENCES {parent_name} (id);\n"
            )
        };
        let down = format!("ALTER TABLE {name} DROP COLUMN {column};\n");
        let fill = (parent_rows > 0).then(|| format!("(id % {parent_rows}) + 1"));
        self.tables[t].columns.push(Column {
            not_null: false,
            unfilled: holds_rows && fill.is_some(),
            fill,
            references: Some(p),
            ..Column::fixed(column, "bigint", None)
        });
        self.constraints.push(constraint);
        self.references_done[r] = true;
        Some(step(
            "foreign key",
            format!("add_{column}_to_{name}"),
            up,
            down,
        ))
    }

    /// A view over a table, its first parent joined: the table's key, two of
    /// its own columns and one of the parent's.
    fn create_view(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = self
            .live_tables()
            .into_iter()
            .filter(|&t| !self.tables[t].view && !self.tables[t].spec.parents.is_empty())
            .collect();
        let t = self.rng.pick(&candidates)?;
        let table = &self.tables[t];
        let own: Vec<usize> = (0..table.columns.len())
            .filter(|&c| {
                let column = &table.columns[c];
                !column.dropped && column.idea.is_some()
            })
            .take(2)
            .collect();
        let fk = table.columns.iter().position(|c| c.references.is_some())?;
        let p = table.columns[fk].references?;
        let parent = &self.tables[p];
        let pc = parent
            .columns
            .iter()
            .position(|column| !column.dropped && column.idea.is_some())?;
        let parent_alias = format!("{}_{}", parent.spec.singular, parent.columns[pc].name);
        let mut columns = vec![(t, 0, "id".to_owned())];
        columns.extend(own.iter().map(|&c| (t, c, table.columns[c].name.clone())));
        columns.push((p, pc, parent_alias));
        let name = self.take_name(&format!("{}_overview", table.name));
        let view = View {
            name,
            table: t,
            parent: (fk, p),
            columns,
        };
        let up = format!("CREATE VIEW {} AS\n{};\n", view.name, self.view_sql(&view));
        let down = format!("DROP VIEW {};\n", view.name);
        let slug = format!("create_view_{}", view.name);
        for &(table, c, _) in &view.columns {
            self.pin_in_view(table, c);
        }
        self.tables[t].view = true;
        self.views.push(view);
        Some(step("create view", slug, up, down))
    }

    fn pin_in_view(&mut self, t: usize, c: usize) {
        let table = &mut self.tables[t];
        table.columns[c].in_view = true;
        table.columns[c].depended_on = true;
    }

    /// `CREATE OR REPLACE VIEW` with one more column; its down drops the view
    /// and creates the old one (a view cannot lose a column in place).
    fn replace_view(&mut self) -> Option<Step> {
        let mut candidates = Vec::new();
        for (v, view) in self.views.iter().enumerate() {
            let table = &self.tables[view.table];
            for (c, column) in table.columns.iter().enumerate() {
                let listed = view
                    .columns
                    .iter()
                    .any(|(listed_table, listed, _)| (*listed_table, *listed) == (view.table, c));
                if !column.dropped && column.idea.is_some() && !listed {
                    candidates.push((v, c));
                }
            }
        }
        let (v, c) = self.rng.pick(&candidates)?;
        let view = &self.views[v];
        let t = view.table;
        let alias = self.tables[t].columns[c].name.clone();
        let old = self.view_sql(view);
        self.views[v].columns.push((t, c, alias.clone()));
        let view = &self.views[v];
        let up = format!(
            "CREATE OR REPLACE VIEW {} AS\n{};\n",
            view.name,
            self.view_sql(view)
        );
        let down = format!(
            "DROP VIEW {name};\nCREATE VIEW {name} AS\n{old};\n",
            name = view.name
        );
        let slug = format!("add_{alias}_to_{}", view.name);
        self.pin_in_view(t, c);
        Some(step("replace view", slug, up, down))
    }

    /// A function counting a table's rows per parent row.
    fn create_function(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = self
            .live_tables()
            .into_iter()
            .filter(|&t| !self.tables[t].count_function && !self.tables[t].spec.parents.is_empty())
            .collect();
        let t = self.rng.pick(&candidates)?;
        let table = &self.tables[t];
        let fk = table.columns.iter().position(|c| c.references.is_some())?;
        let parent = &self.tables[table.columns[fk].references?];
        let name = format!("{}_count_for_{}", table.name, parent.spec.singular);
        let param = format!("p_{}", table.columns[fk].name);
        self.functions.push(Function {
            counts: Some((t, fk, param)),
            name: name.clone(),
            version: 1,
        });
        let up = format!(
            "CREATE FUNCTION {};\n",
            self.function_sql(self.functions.len() - 1, 1)
        );
        let down = format!("DROP FUNCTION {name}(bigint);\n");
        let table = &mut self.tables[t];
        table.count_function = true;
        table.in_function = true;
        Some(step(
            "create function",
            format!("create_function_{name}"),
            up,
            down,
        ))
    }

    fn replace_function(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = (0..self.functions.len())
            .filter(|&f| {
                let function = &self.functions[f];
                let last = if function.counts.is_some() { 3 } else { 2 };
                function.version < last
                    && function
                        .counts
                        .as_ref()
                        .is_none_or(|(t, _, _)| !self.tables[*t].dropped)
            })
            .collect();
        let f = self.rng.pick(&candidates)?;
        let version = self.functions[f].version;
        let up = format!(
            "CREATE OR REPLACE FUNCTION {};\n",
            self.function_sql(f, version + 1)
        );
        let down = format!(
            "CREATE OR REPLACE FUNCTION {};\n",
            self.function_sql(f, version)
        );
        self.functions[f].version += 1;
        let slug = format!("{}_v{}", self.functions[f].name, version + 1);
        Some(step("replace function", slug, up, down))
    }

    fn add_trigger(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = self
            .live_tables()
            .into_iter()
            .filter(|&t| self.tables[t].trigger.is_none())
            .collect();
        let t = self.rng.pick(&candidates)?;
        let table = self.tables[t].name.clone();
        let trigger = trigger_name(&table);
        let up = trigger_sql(&trigger, &table);
        let down = format!("DROP TRIGGER {trigger} ON {table};\n");
        self.tables[t].trigger = Some(trigger);
        Some(step(
            "trigger",
            format!("add_{table}_updated_at_trigger"),
            up,
            down,
        ))
    }

    /// An enum type and a NOT NULL column of it, with a default.
    fn create_enum(&mut self) -> Option<Step> {
        let candidates: Vec<&'static EnumIdea> = ENUMS
            .iter()
            .filter(|idea| {
                !self
                    .enums
                    .iter()
                    .any(|e| e.idea.type_name == idea.type_name)
                    && self.table_named(idea.table).is_some_and(|t| {
                        !self.tables[t]
                            .columns
                            .iter()
                            .any(|column| column.name == idea.column)
                    })
            })
            .collect();
        let idea = self.rng.pick(&candidates)?;
        let t = self.table_named(idea.table)?;
        let type_name = self.take_name(idea.type_name);
        self.take_name(&format!("_{type_name}"));
        let values = idea
            .values
            .iter()
            .map(|v| format!("'{v}'"))
            .collect::<Vec<_>>();
        let table = &self.tables[t].name;
        let column = idea.column;
        let up = format!(
            "CREATE TYPE {type_name} AS ENUM ({});\nALTER TABLE {table} ADD COLUMN {column} {type_name} NOT NULL DEFAULT {};\n",
            values.join(", "),
            values[0]
        );
        let down = format!("ALTER TABLE {table} DROP COLUMN {column};\nDROP TYPE {type_name};\n");
        let slug = format!("add_{column}_to_{table}");
        let e = self.enums.len();
        let table = &mut self.tables[t];
        table.columns.push(Column {
            enum_type: Some(e),
            ..Column::fixed(column, &type_name, Some(&values[0]))
        });
        self.enums.push(Enum {
            idea,
            table: t,
            column: table.columns.len() - 1,
            values: idea.values.iter().map(|v| (*v).to_owned()).collect(),
            next: 0,
            added: Vec::new(),
            renamed: false,
        });
        Some(step("enum", slug, up, down))
    }

    /// `ALTER TYPE ... ADD VALUE`. PostgreSQL cannot drop an enum value, so
    /// the down creates the type again without it and converts the column.
    fn add_enum_value(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = self
            .live_enums()
            .into_iter()
            .filter(|&e| self.enums[e].next < self.enums[e].idea.added.len())
            .collect();
        let e = self.rng.pick(&candidates)?;
        let the_enum = &self.enums[e];
        let (value, place) = the_enum.idea.added[the_enum.next];
        let type_name = the_enum.idea.type_name;
        let (table, column) = (
            &self.tables[the_enum.table].name,
            &self.col(the_enum.table, the_enum.column).name,
        );
        // "BEFORE 'done'": where, and next to which label, if it still exists.
        let place = place.and_then(|place| {
            let (word, label) = place.split_once(' ')?;
            let label = label.trim_matches('\'');
            let at = the_enum.values.iter().position(|v| v == label)?;
            Some((place, if word == "BEFORE" { at } else { at + 1 }))
        });
        let up = match place {
            Some((place, _)) => format!("ALTER TYPE {type_name} ADD VALUE '{value}' {place};\n"),
            None => format!("ALTER TYPE {type_name} ADD VALUE '{value}';\n"),
        };
        let old_values: Vec<String> = the_enum.values.iter().map(|v| format!("'{v}'")).collect();
        let down = format!(
            "ALTER TYPE {type_name} RENAME TO {type_name}_old;\n\
             CREATE TYPE {type_name} AS ENUM ({});\n\
             ALTER TABLE {table}\n    ALTER COLUMN {column} DROP DEFAULT,\n    \
             ALTER COLUMN {column} TYPE {type_name} USING {column}::text::{type_name},\n    \
             ALTER COLUMN {column} SET DEFAULT {};\n\
             DROP TYPE {type_name}_old;\n",
            old_values.join(", "),
            old_values[0]
        );
        let slug = format!("add_{value}_to_{type_name}");
        let boundaries = self.boundaries;
        let the_enum = &mut self.enums[e];
        let at = place.map_or(the_enum.values.len(), |(_, at)| at);
        the_enum.values.insert(at, value.to_owned());
        the_enum.added.push((value.to_owned(), boundaries, false));
        the_enum.next += 1;
        Some(step("enum value", slug, up, down))
    }

    /// An `UPDATE` that puts a value added earlier to use, once a commit
    /// has come between (see the module docs).
    fn use_enum_value(&mut self) -> Option<Step> {
        let mut candidates = Vec::new();
        for e in self.live_enums() {
            let the_enum = &self.enums[e];
            for (a, (_, added_at, used)) in the_enum.added.iter().enumerate() {
                if !used && *added_at < self.boundaries && self.tables[the_enum.table].rows > 0 {
                    candidates.push((e, a));
                }
            }
        }
        let (e, a) = self.rng.pick(&candidates)?;
        let the_enum = &self.enums[e];
        let value = &the_enum.added[a].0;
        let (table, column) = (
            &self.tables[the_enum.table].name,
            &self.col(the_enum.table, the_enum.column).name,
        );
        let up = format!(
            "UPDATE {table} SET {column} = '{value}' WHERE id % 10 = {};\n",
            a + 1
        );
        let down = format!(
            "UPDATE {table} SET {column} = '{}' WHERE {column} = '{value}';\n",
            the_enum.values[0]
        );
        let slug = format!("mark_{table}_{value}");
        self.enums[e].added[a].2 = true;
        Some(step("enum backfill", slug, up, down))
    }

    fn rename_enum_value(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = self
            .live_enums()
            .into_iter()
            .filter(|&e| {
                let the_enum = &self.enums[e];
                !the_enum.renamed
                    && the_enum.idea.rename.is_some_and(|(from, _)| {
                        the_enum.values.iter().skip(1).any(|value| value == from)
                    })
            })
            .collect();
        let e = self.rng.pick(&candidates)?;
        let the_enum = &mut self.enums[e];
        let (from, to) = the_enum.idea.rename?;
        let type_name = the_enum.idea.type_name;
        for label in the_enum
            .values
            .iter_mut()
            .chain(the_enum.added.iter_mut().map(|(label, _, _)| label))
        {
            if label == from {
                *label = to.to_owned();
            }
        }
        the_enum.renamed = true;
        Some(step(
            "rename enum value",
            format!("rename_{type_name}_{from}_to_{to}"),
            format!("ALTER TYPE {type_name} RENAME VALUE '{from}' TO '{to}';\n"),
            format!("ALTER TYPE {type_name} RENAME VALUE '{to}' TO '{from}';\n"),
        ))
    }

    fn rename_column(&mut self) -> Option<Step> {
        let candidates = self.columns_where(|table, column| {
            column.idea.is_some_and(|idea| {
                idea.rename.is_some_and(|to| {
                    column.name == idea.name && !table.columns.iter().any(|other| other.name == to)
                })
            }) && !column.fixed
        });
        let (t, c) = self.rng.pick(&candidates)?;
        let table = &self.tables[t].name;
        let from = self.col(t, c).name.clone();
        let to = self.col(t, c).idea?.rename?;
        let up = format!("ALTER TABLE {table} RENAME COLUMN {from} TO {to};\n");
        let down = format!("ALTER TABLE {table} RENAME COLUMN {to} TO {from};\n");
        let slug = format!("rename_{table}_{from}_to_{to}");
        self.tables[t].columns[c].name = to.to_owned();
        Some(step("rename column", slug, up, down))
    }

    fn rename_table(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = self
            .live_tables()
            .into_iter()
            .filter(|&t| {
                let table = &self.tables[t];
                !table.renamed
                    && !table.in_function
                    && table.spec.rename.is_some_and(|to| !self.names.contains(to))
            })
            .collect();
        let t = self.rng.pick(&candidates)?;
        let from = self.tables[t].name.clone();
        let to = self.take_name(self.tables[t].spec.rename?);
        let up = format!("ALTER TABLE {from} RENAME TO {to};\n");
        let down = format!("ALTER TABLE {to} RENAME TO {from};\n");
        let slug = format!("rename_{from}_to_{to}");
        let table = &mut self.tables[t];
        table.name = to;
        table.renamed = true;
        Some(step("rename table", slug, up, down))
    }

    /// A column nothing depends on; its down adds it again (last, and
    /// without its data). Only columns a plain `ADD COLUMN` can give back.
    fn drop_column(&mut self) -> Option<Step> {
        let candidates = self.columns_where(|_, column| {
            !column.fixed && !column.depended_on && (!column.not_null || column.default.is_some())
        });
        let (t, c) = self.rng.pick(&candidates)?;
        let table = &self.tables[t].name;
        let column = self.col(t, c);
        let up = format!("ALTER TABLE {table} DROP COLUMN {};\n", column.name);
        let down = format!("ALTER TABLE {table} ADD COLUMN {};\n", column.definition());
        let slug = format!("drop_{table}_{}", column.name);
        self.tables[t].columns[c].dropped = true;
        Some(step("drop column", slug, up, down))
    }

    /// A wider type (`integer` to `bigint`, a larger `numeric`): a rewrite
    /// of the table, and of its indexes.
    fn retype(&mut self) -> Option<Step> {
        let candidates = self.columns_where(|_, column| {
            !column.fixed
                && !column.in_view
                && column.default.is_none()
                && column
                    .idea
                    .is_some_and(|idea| idea.retype.is_some() && column.ty == idea.ty)
        });
        let (t, c) = self.rng.pick(&candidates)?;
        let table = &self.tables[t].name;
        let column = self.col(t, c);
        let to = column.idea?.retype?;
        let up = format!(
            "ALTER TABLE {table} ALTER COLUMN {} TYPE {to};\n",
            column.name
        );
        let down = format!(
            "ALTER TABLE {table} ALTER COLUMN {} TYPE {};\n",
            column.name, column.ty
        );
        let slug = format!("widen_{table}_{}", column.name);
        self.tables[t].columns[c].ty = to.to_owned();
        Some(step("change column type", slug, up, down))
    }

    fn set_default(&mut self) -> Option<Step> {
        let candidates = self.columns_where(|_, column| {
            column.default.is_none() && column.idea.is_some_and(|idea| idea.default.is_some())
        });
        let (t, c) = self.rng.pick(&candidates)?;
        let table = &self.tables[t].name;
        let column = self.col(t, c);
        let default = column.idea?.default?;
        let up = format!(
            "ALTER TABLE {table} ALTER COLUMN {} SET DEFAULT {default};\n",
            column.name
        );
        let down = format!(
            "ALTER TABLE {table} ALTER COLUMN {} DROP DEFAULT;\n",
            column.name
        );
        let slug = format!("default_{table}_{}", column.name);
        self.tables[t].columns[c].default = Some(default.to_owned());
        Some(step("set default", slug, up, down))
    }

    fn comment(&mut self) -> Option<Step> {
        let tables: Vec<usize> = self
            .live_tables()
            .into_iter()
            .filter(|&t| !self.tables[t].commented)
            .collect();
        let columns = self.columns_where(|_, column| !column.commented && column.idea.is_some());
        if self.rng.below(3) == 0
            && let Some(t) = self.rng.pick(&tables)
        {
            let table = &mut self.tables[t];
            table.commented = true;
            let name = &table.name;
            return Some(step(
                "comment",
                format!("comment_on_{name}"),
                format!(
                    "COMMENT ON TABLE {name} IS 'One row per {}.';\n",
                    table.spec.singular.replace('_', " ")
                ),
                format!("COMMENT ON TABLE {name} IS NULL;\n"),
            ));
        }
        let (t, c) = self.rng.pick(&columns)?;
        let singular = self.tables[t].spec.singular.replace('_', " ");
        let table = &mut self.tables[t];
        let column = &mut table.columns[c];
        column.commented = true;
        column.depended_on = true;
        let target = format!("{}.{}", table.name, column.name);
        Some(step(
            "comment",
            format!("comment_on_{}_{}", table.name, column.name),
            format!(
                "COMMENT ON COLUMN {target} IS 'The {} of a {singular}.';\n",
                column.name.replace('_', " ")
            ),
            format!("COMMENT ON COLUMN {target} IS NULL;\n"),
        ))
    }

    /// A legacy table (which no other change touches, so a plain `CREATE
    /// TABLE` gives it back); its down creates it again, empty.
    fn drop_table(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = (0..self.tables.len())
            .filter(|&t| self.tables[t].spec.legacy && !self.tables[t].dropped)
            .collect();
        let t = self.rng.pick(&candidates)?;
        let table = &self.tables[t];
        let columns: Vec<String> = table
            .columns
            .iter()
            .filter(|column| !column.dropped)
            .map(|column| {
                if column.name == "id" {
                    "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY".to_owned()
                } else {
                    column.definition()
                }
            })
            .collect();
        let name = &table.name;
        let up = format!("DROP TABLE {name};\n");
        let down = format!(
            "CREATE TABLE {name} (\n    {}\n);\n",
            columns.join(",\n    ")
        );
        let slug = format!("drop_{name}");
        self.tables[t].dropped = true;
        Some(step("drop table", slug, up, down))
    }

    /// The rows of a reference table (plans, feature flags).
    fn insert_reference_rows(&mut self) -> Option<Step> {
        let candidates: Vec<usize> = self
            .live_tables()
            .into_iter()
            .filter(|&t| {
                let table = &self.tables[t];
                let first = table.columns.iter().position(|c| c.idea.is_some());
                !table.spec.reference.is_empty()
                    && !table.reference_rows
                    && table.rows == 0
                    && table.columns.iter().enumerate().all(|(c, column)| {
                        column.dropped
                            || !column.not_null
                            || column.default.is_some()
                            || column.name == "id"
                            || Some(c) == first
                    })
            })
            .collect();
        let t = self.rng.pick(&candidates)?;
        let table = &mut self.tables[t];
        let first = table.columns.iter().position(|c| c.idea.is_some())?;
        let values: Vec<String> = table
            .spec
            .reference
            .iter()
            .map(|v| format!("'{v}'"))
            .collect();
        let (name, column) = (&table.name, &table.columns[first].name);
        let up = format!(
            "INSERT INTO {name} ({column}) VALUES\n    ({});\n",
            values.join("),\n    (")
        );
        let down = format!(
            "DELETE FROM {name} WHERE {column} IN ({});\n",
            values.join(", ")
        );
        let slug = format!("insert_{name}");
        table.rows = values.len();
        table.reference_rows = true;
        for column in &mut table.columns {
            if !column.dropped && !column.not_null && column.fill.is_some() {
                column.unfilled = true;
            }
        }
        Some(step("reference rows", slug, up, down))
    }
}
