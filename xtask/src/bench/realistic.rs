//! The realistic migration history of `cargo xtask bench apply-realistic`:
//! [`MIGRATIONS`] migrations shaped like a real project's, over about a
//! year, the same on every machine (a fixed-seed generator).
//!
//! It starts with a trigger function and five tables that are created and
//! seeded with data (`INSERT ... SELECT ... generate_series`, up to
//! [`ROWS`] rows), then new tables arrive one by one while the existing ones
//! change: columns added (nullable, or NOT NULL with a default, one with a
//! volatile default that rewrites its table), backfilled with `UPDATE`,
//! made NOT NULL, renamed, retyped and dropped; CHECKs and foreign keys,
//! some `NOT VALID` and validated later; indexes, on tables holding rows with
//! `CREATE INDEX CONCURRENTLY` alone in a `-- dbops:no-transaction` file;
//! views created and replaced; plpgsql functions created and replaced;
//! triggers; enum types that gain values (`ALTER TYPE ... ADD VALUE`) and
//! rename one; tables renamed and dropped; reference rows; comments.
//!
//! Every down migration undoes its up: running the downs newest first after
//! the ups leaves the database as it was after each earlier up (the test
//! below checks this one step at a time), and empty at the end. A down
//! cannot give back data a `DROP` destroyed, and a column it adds again
//! comes last; everything else is restored, enum values included (the type
//! is created again without the value and the column converted).
//!
//! `all.sql` and `all-down.sql` hold every up (every down, newest first) in
//! one file, as `psql -1 -f` would run it, except that `psql -1` cannot run
//! `CREATE INDEX CONCURRENTLY`: each stretch of transactional migrations is
//! wrapped in `BEGIN`/`COMMIT` and the no-transaction ones run between them,
//! so the files are run with `psql -f`, without `-1`. A value added to an enum
//! in one transaction cannot be used before it commits, so the history uses
//! a new value only after the next no-transaction migration.
//!
//! This file holds the writer and the model of the schema the history has
//! made so far; `changes.rs` the changes a migration makes; `domain.rs`
//! the project's tables and columns.

mod changes;
mod domain;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use domain::{EnumIdea, Idea, REFERENCES, Spec};

use super::fixture::{self, Fixture, Migration, in_stretches};
use crate::Result;

/// The number of migrations in the history.
pub const MIGRATIONS: usize = 320;
/// The rows of the largest table; the other seeded tables hold a share.
pub const ROWS: usize = 50_000;
/// The first line of a migration that runs outside a transaction.
pub use super::fixture::NO_TRANSACTION;

/// One migration of the history, before it gets a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What it does, such as `backfill` or `index concurrently`: for summaries.
    pub kind: &'static str,
    pub slug: String,
    pub up: String,
    pub down: String,
}

/// Writes the history, with `rows` rows in its largest table, under `out`,
/// replacing what was there; returns the fixture and the history.
pub fn write(out: &Path, rows: usize) -> Result<(Fixture, Vec<Step>)> {
    write_sized(out, rows, MIGRATIONS)
}

/// [`write`] with `count` migrations instead of [`MIGRATIONS`]: the same
/// history, continued (the lint benchmark's 3,000 files).
pub fn write_sized(out: &Path, rows: usize, count: usize) -> Result<(Fixture, Vec<Step>)> {
    let steps = history_of(rows, count);
    let mut clock = Rng(0x7469_6d65);
    let mut minutes = 0;
    let migrations: Vec<Migration> = steps
        .iter()
        .map(|step| {
            // Half a day to two and a half days apart (closer in a longer
            // history, which spans the same year).
            minutes += (720 + clock.below(2_880)) * MIGRATIONS / count.max(MIGRATIONS);
            Migration {
                version: fixture::version(minutes),
                slug: step.slug.clone(),
                up: step.up.clone(),
                down: step.down.clone(),
            }
        })
        .collect();
    let all_up = in_stretches(steps.iter().map(|step| step.up.as_str()));
    let all_down = in_stretches(steps.iter().rev().map(|step| step.down.as_str()));
    let fixture = fixture::write_files(out, &migrations, &all_up, &all_down)?;
    Ok((fixture, steps))
}

/// One line about the history: its size and how many of each kind.
pub fn summary(steps: &[Step]) -> String {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for step in steps {
        match kinds.iter_mut().find(|(kind, _)| *kind == step.kind) {
            Some((_, count)) => *count += 1,
            None => kinds.push((step.kind, 1)),
        }
    }
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(kind, count)| format!("{count} {kind}"))
        .collect();
    let no_transaction = steps
        .iter()
        .filter(|step| step.up.starts_with(NO_TRANSACTION))
        .count();
    format!(
        "{} migrations ({no_transaction} outside a transaction): {}",
        steps.len(),
        kinds.join(", ")
    )
}

/// The history, with `rows` rows in its largest table.
#[cfg(test)]
pub fn history(rows: usize) -> Vec<Step> {
    history_of(rows, MIGRATIONS)
}

/// The history of `count` migrations, with `rows` rows in its largest table.
fn history_of(rows: usize, count: usize) -> Vec<Step> {
    let mut history = History::new(rows);
    history.start();
    let started = history.steps.len();
    // A new table about every eleventh migration, as features arrive.
    while history.steps.len() < count {
        let due = (history.steps.len() - started).is_multiple_of(11);
        let step = due.then(|| history.create_table()).flatten();
        let step = step.unwrap_or_else(|| history.any_change());
        history.push(step);
    }
    history.steps
}

/// SplitMix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())])
    }
}

/// The schema as the history has made it so far.
struct History {
    rng: Rng,
    rows: usize,
    steps: Vec<Step>,
    tables: Vec<Table>,
    indexes: Vec<Index>,
    constraints: Vec<Constraint>,
    enums: Vec<Enum>,
    views: Vec<View>,
    functions: Vec<Function>,
    /// Names taken in the schema (relations and types share one namespace);
    /// a name stays taken after its object is renamed or dropped, so that
    /// a down never meets a newer object of the same name.
    names: HashSet<String>,
    /// How many no-transaction migrations there have been: a value added to
    /// an enum is used only after the next one.
    boundaries: usize,
    next_table: usize,
    references_done: Vec<bool>,
}

struct Table {
    spec: &'static Spec,
    name: String,
    columns: Vec<Column>,
    rows: usize,
    trigger: Option<String>,
    /// A function body names it: it keeps its name.
    in_function: bool,
    renamed: bool,
    dropped: bool,
    commented: bool,
    composite_index: bool,
    view: bool,
    count_function: bool,
    reference_rows: bool,
}

struct Column {
    name: String,
    idea: Option<&'static Idea>,
    ty: String,
    not_null: bool,
    default: Option<String>,
    /// What a backfill writes.
    fill: Option<String>,
    /// NULL in rows that a backfill should fill.
    unfilled: bool,
    /// A key, a timestamp, a reference or an enum column: never renamed,
    /// retyped or dropped.
    fixed: bool,
    /// An index, a constraint, a comment or a view needs it: never dropped.
    depended_on: bool,
    /// A view selects it: never retyped.
    in_view: bool,
    references: Option<usize>,
    enum_type: Option<usize>,
    indexed: bool,
    checked: bool,
    commented: bool,
    dropped: bool,
}

impl Column {
    fn fixed(name: &str, ty: &str, default: Option<&str>) -> Column {
        Column {
            name: name.to_owned(),
            idea: None,
            ty: ty.to_owned(),
            not_null: true,
            default: default.map(str::to_owned),
            fill: None,
            unfilled: false,
            fixed: true,
            depended_on: true,
            in_view: false,
            references: None,
            enum_type: None,
            indexed: false,
            checked: false,
            commented: false,
            dropped: false,
        }
    }

    fn from_idea(idea: &'static Idea) -> Column {
        Column {
            idea: Some(idea),
            not_null: false,
            fill: idea.fill.map(str::to_owned),
            fixed: false,
            depended_on: false,
            ..Column::fixed(idea.name, idea.ty, None)
        }
    }

    /// `name type [NOT NULL] [DEFAULT ...]`, as in `CREATE TABLE` and `ADD COLUMN`.
    fn definition(&self) -> String {
        let mut text = format!("{} {}", self.name, self.ty);
        if self.not_null {
            text.push_str(" NOT NULL");
        }
        if let Some(default) = &self.default {
            let _ = write!(text, " DEFAULT {default}");
        }
        text
    }
}

struct Index {
    name: String,
    table: usize,
    columns: Vec<usize>,
    unique: bool,
    gin: bool,
    partial: Option<&'static str>,
    concurrently: bool,
    /// On a reference column: kept, so that deleting referenced rows stays fast.
    on_reference: bool,
    dropped: bool,
}

struct Constraint {
    name: String,
    table: usize,
    column: usize,
    /// A CHECK's expression with `{c}`; `None` for a foreign key.
    check: Option<&'static str>,
    valid: bool,
}

struct Enum {
    idea: &'static EnumIdea,
    table: usize,
    column: usize,
    values: Vec<String>,
    next: usize,
    /// Values added so far: label, [`History::boundaries`] when added, used.
    added: Vec<(String, usize, bool)>,
    renamed: bool,
}

struct View {
    name: String,
    table: usize,
    /// The table's reference column and the parent table it joins.
    parent: (usize, usize),
    /// `(table, column, alias)`, the table being the view's or its parent.
    columns: Vec<(usize, usize, String)>,
}

struct Function {
    /// `None`: the `set_updated_at` trigger function; otherwise a count of
    /// a table's rows per parent: `(table, reference column, parameter)`.
    counts: Option<(usize, usize, String)>,
    name: String,
    version: usize,
}

fn step(kind: &'static str, slug: String, up: String, down: String) -> Step {
    Step {
        kind,
        slug,
        up,
        down,
    }
}

/// A script of one statement run outside a transaction.
fn no_transaction(statement: &str) -> String {
    format!("{NO_TRANSACTION}{statement};\n")
}

impl History {
    fn new(rows: usize) -> History {
        History {
            rng: Rng(0x0064_626f_7073),
            rows,
            steps: Vec::new(),
            tables: Vec::new(),
            indexes: Vec::new(),
            constraints: Vec::new(),
            enums: Vec::new(),
            views: Vec::new(),
            functions: Vec::new(),
            names: HashSet::new(),
            boundaries: 0,
            next_table: 0,
            references_done: vec![false; REFERENCES.len()],
        }
    }

    fn push(&mut self, step: Step) {
        if step.up.starts_with(NO_TRANSACTION) {
            self.boundaries += 1;
        }
        self.steps.push(step);
    }

    fn take_name(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 2;
        while self.names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn table_named(&self, spec_name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|table| table.spec.name == spec_name && !table.dropped)
    }

    /// The tables changes may touch: not dropped, not legacy.
    fn live_tables(&self) -> Vec<usize> {
        (0..self.tables.len())
            .filter(|&t| !self.tables[t].dropped && !self.tables[t].spec.legacy)
            .collect()
    }

    /// Live columns of live tables that pass `keep`, as `(table, column)`;
    /// a table holding rows counts three times, as changes go where the data is.
    fn columns_where(&self, keep: impl Fn(&Table, &Column) -> bool) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for t in self.live_tables() {
            let table = &self.tables[t];
            for (c, column) in table.columns.iter().enumerate() {
                if !column.dropped && keep(table, column) {
                    let times = if table.rows > 0 { 3 } else { 1 };
                    found.extend(std::iter::repeat_n((t, c), times));
                }
            }
        }
        found
    }

    fn col(&self, t: usize, c: usize) -> &Column {
        &self.tables[t].columns[c]
    }

    fn index_sql(&self, index: &Index, concurrently: bool) -> String {
        let table = &self.tables[index.table];
        let columns: Vec<&str> = index
            .columns
            .iter()
            .map(|&c| table.columns[c].name.as_str())
            .collect();
        let mut sql = format!(
            "CREATE {}INDEX {}{} ON {}{} ({})",
            if index.unique { "UNIQUE " } else { "" },
            if concurrently { "CONCURRENTLY " } else { "" },
            index.name,
            table.name,
            if index.gin { " USING gin" } else { "" },
            columns.join(", ")
        );
        if let Some(partial) = index.partial {
            let _ = write!(sql, " WHERE {}", partial.replace("{c}", columns[0]));
        }
        sql
    }

    /// `(create, drop)` scripts of an index, in a transaction or not.
    fn index_scripts(&self, index: &Index) -> (String, String) {
        if index.concurrently {
            (
                no_transaction(&self.index_sql(index, true)),
                no_transaction(&format!("DROP INDEX CONCURRENTLY {}", index.name)),
            )
        } else {
            (
                format!("{};\n", self.index_sql(index, false)),
                format!("DROP INDEX {};\n", index.name),
            )
        }
    }

    fn constraint_def(&self, constraint: &Constraint) -> String {
        let table = &self.tables[constraint.table];
        let column = &table.columns[constraint.column];
        match (constraint.check, column.references) {
            (Some(check), _) => format!("CHECK ({})", check.replace("{c}", &column.name)),
            (None, Some(p)) => format!(
                "FOREIGN KEY ({}) REFERENCES {} (id)",
                column.name, self.tables[p].name
            ),
            (None, None) => unreachable!("a constraint is a check or a foreign key"),
        }
    }

    fn view_sql(&self, view: &View) -> String {
        let select: Vec<String> = view
            .columns
            .iter()
            .map(|&(t, c, ref alias)| {
                let letter = if t == view.table { 't' } else { 'p' };
                format!("{letter}.{} AS {alias}", self.col(t, c).name)
            })
            .collect();
        let (fk, p) = view.parent;
        format!(
            "SELECT {}\nFROM {} t\nJOIN {} p ON p.id = t.{}",
            select.join(", "),
            self.tables[view.table].name,
            self.tables[p].name,
            self.col(view.table, fk).name
        )
    }

    /// `name(args) RETURNS ... AS $$ ... $$` of function `f` at `version`.
    fn function_sql(&self, f: usize, version: usize) -> String {
        let function = &self.functions[f];
        let Some((t, fk, param)) = &function.counts else {
            let body = if version == 1 {
                "    NEW.updated_at := now();\n    RETURN NEW;\n"
            } else {
                "    IF NEW IS DISTINCT FROM OLD THEN\n        NEW.updated_at := now();\n    END IF;\n    RETURN NEW;\n"
            };
            return format!(
                "set_updated_at() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n{body}END\n$$"
            );
        };
        let table = &self.tables[*t];
        let (from, column) = (&table.name, &table.columns[*fk].name);
        let body = match version {
            1 => format!(
                "BEGIN\n    RETURN (SELECT count(*) FROM {from} WHERE {column} = {param});\nEND\n"
            ),
            2 => format!(
                "DECLARE\n    n bigint;\nBEGIN\n    SELECT count(*) INTO n FROM {from} WHERE {column} = {param};\n    RETURN coalesce(n, 0);\nEND\n"
            ),
            _ => format!(
                "DECLARE\n    n bigint;\nBEGIN\n    IF {param} IS NULL THEN\n        RETURN 0;\n    END IF;\n    SELECT count(*) INTO n FROM {from} WHERE {column} = {param};\n    RETURN coalesce(n, 0);\nEND\n"
            ),
        };
        format!(
            "{}({param} bigint) RETURNS bigint\nLANGUAGE plpgsql STABLE AS $$\n{body}$$",
            function.name
        )
    }

    fn live_enums(&self) -> Vec<usize> {
        (0..self.enums.len())
            .filter(|&e| !self.tables[self.enums[e].table].dropped)
            .collect()
    }
}

fn trigger_name(table: &str) -> String {
    format!("{table}_set_updated_at")
}

fn trigger_sql(trigger: &str, table: &str) -> String {
    format!(
        "CREATE TRIGGER {trigger} BEFORE UPDATE ON {table}\n    FOR EACH ROW EXECUTE FUNCTION set_updated_at();\n"
    )
}

#[cfg(test)]
mod tests;
