//! Reading each script once, ahead of the run: what the hooks learn from a
//! script's SQL ([`Touched`], [`Leftovers`]) comes from one parse, shared by
//! every hook and by both phases.
//!
//! The engine hands the hooks a run's scripts before the first migration
//! ([`migrate_core::hooks::Hook::look_ahead`]). A background thread then
//! reads them in order while the database executes the migrations, so that
//! parsing is off the path between one migration's commit and the next one's
//! start. A hook that asks for a script the thread has not reached reads it
//! itself; one the thread is reading waits for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use crate::tables::{Leftovers, Touched};

/// What the hooks read from one script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    /// The tables it touches.
    pub touched: Touched,
    /// The half-done states it can leave.
    pub leftovers: Leftovers,
}

impl Reading {
    fn of_sql(sql: &str) -> Reading {
        let tree = squawk_syntax::SourceFile::parse(sql).tree();
        Reading {
            touched: Touched::of_tree(&tree),
            leftovers: Leftovers::of_tree(&tree),
        }
    }
}

/// One script's reading, once made, and whether a read-ahead thread has it in its queue.
#[derive(Debug, Default)]
struct Entry {
    reading: OnceLock<Arc<Reading>>,
    queued: AtomicBool,
}

impl Entry {
    fn read(&self, sql: &str) -> Arc<Reading> {
        Arc::clone(self.reading.get_or_init(|| Arc::new(Reading::of_sql(sql))))
    }
}

type Slot = Arc<Entry>;

/// The readings of the scripts of the current run, shared by the standard
/// hooks of one [`crate::standard_hooks`] call.
#[derive(Debug, Default)]
pub(crate) struct Readings {
    slots: Mutex<HashMap<Arc<str>, Slot>>,
}

impl Readings {
    /// What `sql` says: read ahead, or read now.
    pub fn get(&self, sql: &str) -> Arc<Reading> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            match slots.get(sql) {
                Some(slot) => Arc::clone(slot),
                None => {
                    let slot = Slot::default();
                    slots.insert(Arc::from(sql), Arc::clone(&slot));
                    slot
                }
            }
        };
        // Outside the map's lock: reading takes a while, and the thread
        // reading ahead must be able to claim the next script meanwhile.
        slot.read(sql)
    }

    /// Starts reading `scripts`, in order, on a thread of its own, unless
    /// they are read or queued already (every hook sharing these readings
    /// passes on the same run). The readings of scripts outside `scripts`
    /// are dropped: the map holds one run's scripts, not every script the
    /// hooks ever saw.
    pub fn look_ahead(self: &Arc<Self>, scripts: &[&str]) {
        let queue: Vec<(Arc<str>, Slot)> = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let mut kept = HashMap::with_capacity(scripts.len());
            for &sql in scripts {
                let (key, slot) = match slots.remove_entry(sql) {
                    Some(entry) => entry,
                    None => (Arc::from(sql), Slot::default()),
                };
                kept.insert(key, slot);
            }
            *slots = kept;
            scripts
                .iter()
                .filter_map(|&sql| slots.get_key_value(sql))
                .filter(|(_, slot)| {
                    slot.reading.get().is_none() && !slot.queued.swap(true, Ordering::Relaxed)
                })
                .map(|(key, slot)| (Arc::clone(key), Arc::clone(slot)))
                .collect()
        };
        if queue.is_empty() {
            return;
        }
        let owner = Arc::downgrade(self);
        // Should no thread be available, each script is read when a hook
        // first asks for it, as it would be without looking ahead.
        let _ = std::thread::Builder::new()
            .name("dbops-hooks-read-ahead".into())
            .spawn(move || read_ahead(&owner, queue));
    }
}

/// Reads `queue` in order while the hooks that asked for it are alive.
fn read_ahead(owner: &Weak<Readings>, queue: Vec<(Arc<str>, Slot)>) {
    for (sql, slot) in queue {
        if owner.strong_count() == 0 {
            return;
        }
        // Held by this queue alone: a later run dropped the script, nobody will ask.
        if Arc::strong_count(&slot) > 1 {
            slot.read(&sql);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str =
        "CREATE TABLE teams (id bigint PRIMARY KEY); INSERT INTO teams VALUES (1);";
    const ALTER: &str = "ALTER TABLE users ADD CONSTRAINT users_x_check CHECK (x > 0) NOT VALID;";

    fn wait_until_read(readings: &Readings, sql: &str) {
        let started = std::time::Instant::now();
        loop {
            let slots = readings.slots.lock().unwrap();
            if slots
                .get(sql)
                .is_some_and(|slot| slot.reading.get().is_some())
            {
                return;
            }
            drop(slots);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the read-ahead thread never read {sql:?}"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_reading_is_what_the_script_says() {
        let readings = Readings::default();
        let reading = readings.get(ALTER);
        assert_eq!(reading.touched, Touched::of_sql(ALTER));
        assert_eq!(reading.leftovers, Leftovers::of_sql(ALTER));
        assert!(reading.leftovers.not_valid_constraints);
        // Asked again, the same reading comes back rather than a new parse.
        assert!(Arc::ptr_eq(&reading, &readings.get(ALTER)));
    }

    #[test]
    fn looking_ahead_reads_the_run_and_forgets_the_previous_one() {
        let readings = Arc::new(Readings::default());
        let before = readings.get(CREATE);
        readings.look_ahead(&[ALTER]);
        wait_until_read(&readings, ALTER);
        let slots = readings.slots.lock().unwrap();
        assert_eq!(slots.len(), 1, "only the run's scripts are kept");
        drop(slots);
        let alter = readings.get(ALTER);
        assert_eq!(*alter, Reading::of_sql(ALTER), "read ahead like read now");
        // A script of the previous run that is in the next one keeps its reading.
        readings.look_ahead(&[CREATE, ALTER]);
        wait_until_read(&readings, CREATE);
        assert!(Arc::ptr_eq(&alter, &readings.get(ALTER)));
        assert_eq!(readings.get(CREATE), before);
    }
}
