//! What the checks read from a migration's SQL ([`Touched`], [`Leftovers`]),
//! parsed once per migration: the after-check of a migration follows its
//! before-check, so the last script read is all there is to remember.

use std::sync::{Arc, Mutex, PoisonError};

use crate::tables::{Leftovers, Touched};

/// What the checks read from one script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    /// The tables it touches.
    pub touched: Touched,
    /// The half-done states it can leave.
    pub leftovers: Leftovers,
    /// Whether it can change a table's row count: see
    /// [`crate::row_counts::may_change_rows`].
    pub changes_rows: bool,
}

impl Reading {
    /// Reads a script one statement at a time (cut where the engine cuts
    /// it), without the rows of bulk inserts, so that a large file is never
    /// one syntax tree in memory.
    fn of_sql(sql: &str) -> Reading {
        let mut reading = Reading::default();
        let sql = migrate_core::split::without_bulk_rows(sql);
        for statement in migrate_core::split::split_statements(&sql) {
            let tree = squawk_syntax::SourceFile::parse(statement.text).tree();
            let touched = Touched::of_tree(&tree);
            reading.touched.tables.extend(touched.tables);
            reading.touched.created.extend(touched.created);
            reading.touched.dropped.extend(touched.dropped);
            let leftovers = Leftovers::of_tree(&tree);
            reading.leftovers.invalid_indexes |= leftovers.invalid_indexes;
            reading.leftovers.not_valid_constraints |= leftovers.not_valid_constraints;
            reading.changes_rows |= crate::row_counts::may_change_rows(&tree);
        }
        reading
    }
}

/// A script's length and text hash: see [`key`].
type Key = (usize, u64);

/// A script's identity for the cache: its length and a hash of its text,
/// rather than a copy of a text that may be large.
fn key(sql: &str) -> Key {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    sql.hash(&mut hasher);
    (sql.len(), hasher.finish())
}

/// The last script read and what it says.
#[derive(Debug, Default)]
pub(crate) struct LastScript {
    last: Mutex<Option<(Key, Arc<Reading>)>>,
}

impl LastScript {
    /// What `sql` says: remembered when it is the script read last, else read now.
    pub fn read(&self, sql: &str) -> Arc<Reading> {
        let key = key(sql);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((read, reading)) = last.as_ref()
            && *read == key
        {
            return Arc::clone(reading);
        }
        let reading = Arc::new(Reading::of_sql(sql));
        *last = Some((key, Arc::clone(&reading)));
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str =
        "CREATE TABLE teams (id bigint PRIMARY KEY); INSERT INTO teams VALUES (1);";
    const ALTER: &str = "ALTER TABLE users ADD CONSTRAINT users_x_check CHECK (x > 0) NOT VALID;";

    #[test]
    fn a_script_is_read_once_while_it_is_the_last() {
        let last = LastScript::default();
        let alter = last.read(ALTER);
        assert_eq!(alter.touched, Touched::of_sql(ALTER));
        assert!(alter.leftovers.not_valid_constraints);
        assert!(Arc::ptr_eq(&alter, &last.read(ALTER)), "not read again");
        let create = last.read(CREATE);
        assert_eq!(create.touched, Touched::of_sql(CREATE));
        assert!(!Arc::ptr_eq(&alter, &last.read(ALTER)), "read again");
    }
}
