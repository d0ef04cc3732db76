//! What a run would do: the steps chosen from the files and the history, their hash, and how a plan
//! reviewed before the lock compares with the history found under it.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::history::AppliedRow;
use crate::source::{Direction, Migration, Script, Source};
use crate::status::{DriftKind, DriftedMigration, PartialMigration};

/// Options of [`crate::Migrator::up`].
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Apply pending migrations up to and including this version only.
    pub to: Option<i64>,
    /// Apply pending migrations older than the newest applied one.
    pub allow_out_of_order: bool,
    /// The plan that was reviewed or approved before the run, usually from
    /// [`crate::Migrator::plan_up`]. Under the lock, steps of it that another
    /// runner applied identically meanwhile are skipped; any other difference
    /// refuses the run ([`Error::PlanChanged`]).
    pub expected_plan: Option<Plan>,
}

/// Options of [`crate::Migrator::down`].
#[derive(Debug, Clone)]
pub struct DownOptions {
    /// How far to go.
    pub to: DownTo,
    /// The plan that was reviewed or approved, as for [`UpOptions::expected_plan`].
    /// Without one, a rollback by `Steps` counts from whatever is newest
    /// once the lock is taken.
    pub expected_plan: Option<Plan>,
}

impl From<DownTo> for DownOptions {
    fn from(to: DownTo) -> DownOptions {
        DownOptions {
            to,
            expected_plan: None,
        }
    }
}

/// How far [`crate::Migrator::down`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownTo {
    /// Roll back every applied migration newer than this version; 0 rolls back everything.
    Version(i64),
    /// Roll back this many of the newest applied migrations.
    Steps(usize),
}

/// The scripts a run would execute, in order, and their hash.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The target.
    pub target: String,
    /// Up or down.
    pub direction: Direction,
    /// The steps, in execution order.
    pub steps: Vec<PlannedStep>,
    /// SHA-256 over the target, the direction and each step's version and checksum: what an approval is given for.
    pub hash: String,
}

/// One script of a [`Plan`].
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// The migration's version.
    pub version: i64,
    /// The migration's slug.
    pub slug: String,
    /// The script's file.
    pub file: PathBuf,
    /// Whether it runs outside a transaction.
    pub no_transaction: bool,
    /// The checksum the plan hash covers: refinery's for an up script, the SHA-256 of a down script.
    pub checksum: String,
}

impl Plan {
    /// The plan of running `migrations` in `direction`, in that order.
    pub(crate) fn new(target: &str, direction: Direction, migrations: &[&Migration]) -> Plan {
        let steps: Vec<PlannedStep> = migrations
            .iter()
            .map(|m| {
                let script = m.script(direction);
                PlannedStep {
                    version: m.version,
                    slug: m.slug.clone(),
                    file: script.path.clone(),
                    no_transaction: script.no_transaction,
                    checksum: step_checksum(m, direction),
                }
            })
            .collect();
        Plan {
            target: target.to_string(),
            direction,
            hash: plan_hash(target, direction, &steps),
            steps,
        }
    }
}

fn step_checksum(migration: &Migration, direction: Direction) -> String {
    match direction {
        Direction::Up => migration.checksum.to_string(),
        Direction::Down => hex::encode(Sha256::digest(migration.down.sql.as_bytes())),
    }
}

fn plan_hash(target: &str, direction: Direction, steps: &[PlannedStep]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("dbops plan v1\n{target}\n{}\n", direction.as_str()));
    for step in steps {
        hasher.update(format!("{}:{}\n", step.version, step.checksum));
    }
    hex::encode(hasher.finalize())
}

impl Migration {
    /// The script that runs in `direction`.
    pub fn script(&self, direction: Direction) -> &Script {
        match direction {
            Direction::Up => &self.up,
            Direction::Down => &self.down,
        }
    }
}

/// The pending migrations `up` applies, in order. Refuses while a migration
/// is partial, an applied one drifted, or (unless allowed) a pending one is
/// older than the newest applied one.
pub(crate) fn up_steps<'s>(
    source: &'s Source,
    applied: &[AppliedRow],
    partial: Vec<PartialMigration>,
    options: &UpOptions,
) -> Result<Vec<&'s Migration>, Error> {
    refuse_partial(partial)?;
    refuse_drift(source, applied)?;
    if let Some(to) = options.to
        && source.get(to).is_none()
    {
        return Err(Error::UnknownVersion {
            version: to,
            dir: source.dir().to_path_buf(),
        });
    }
    let newest = applied.iter().map(|row| row.version).max();
    let done: HashSet<i64> = applied.iter().map(|row| row.version).collect();
    let mut steps = Vec::new();
    for migration in source.migrations() {
        if done.contains(&migration.version) || options.to.is_some_and(|to| migration.version > to)
        {
            continue;
        }
        if let Some(newest) = newest
            && migration.version < newest
            && !options.allow_out_of_order
        {
            return Err(Error::OutOfOrder {
                version: migration.version,
                file: migration.up.path.clone(),
                newest,
            });
        }
        steps.push(migration);
    }
    Ok(steps)
}

/// The applied migrations `down` rolls back, newest first.
pub(crate) fn down_steps<'s>(
    source: &'s Source,
    applied: &[AppliedRow],
    partial: Vec<PartialMigration>,
    to: DownTo,
) -> Result<Vec<&'s Migration>, Error> {
    refuse_partial(partial)?;
    let mut newest_first: Vec<&AppliedRow> = applied.iter().collect();
    newest_first.sort_by_key(|row| std::cmp::Reverse(row.version));
    let chosen: Vec<AppliedRow> = match to {
        DownTo::Steps(n) => newest_first.into_iter().take(n).cloned().collect(),
        DownTo::Version(v) => {
            if v != 0 && source.get(v).is_none() && !applied.iter().any(|row| row.version == v) {
                return Err(Error::UnknownVersion {
                    version: v,
                    dir: source.dir().to_path_buf(),
                });
            }
            newest_first
                .into_iter()
                .take_while(|row| row.version > v)
                .cloned()
                .collect()
        }
    };
    refuse_drift(source, &chosen)?;
    Ok(chosen
        .iter()
        .filter_map(|row| source.get(row.version))
        .collect())
}

fn refuse_partial(partial: Vec<PartialMigration>) -> Result<(), Error> {
    if partial.is_empty() {
        Ok(())
    } else {
        Err(Error::Partial { partial })
    }
}

fn refuse_drift(source: &Source, applied: &[AppliedRow]) -> Result<(), Error> {
    let drifted = drift(source, applied);
    if drifted.is_empty() {
        Ok(())
    } else {
        Err(Error::Drift { drifted })
    }
}

/// Applied migrations whose file is missing or changed.
pub(crate) fn drift(source: &Source, applied: &[AppliedRow]) -> Vec<DriftedMigration> {
    applied
        .iter()
        .filter_map(|row| match source.get(row.version) {
            None => Some(DriftedMigration {
                version: row.version,
                name: row.name.clone(),
                file: None,
                kind: DriftKind::Missing,
            }),
            Some(m) if row.checksum != Some(m.checksum) || row.name != m.slug => {
                Some(DriftedMigration {
                    version: row.version,
                    name: row.name.clone(),
                    file: Some(m.up.path.clone()),
                    kind: DriftKind::Changed,
                })
            }
            Some(_) => None,
        })
        .collect()
}

/// How the plan reviewed before the lock stands under it.
#[derive(Debug)]
pub(crate) struct Reconciled {
    /// The versions of the reviewed plan that are still to run, in order.
    pub remaining: Vec<i64>,
    /// The versions of the reviewed plan that the history already shows done
    /// (applied for an up plan, absent for a down plan).
    pub done: Vec<i64>,
}

/// Compares the reviewed plan `expected` with `current`, the plan computed
/// from the history under the lock (`applied`).
///
/// The reviewed steps that the history shows done were run by someone else
/// (or by this run, before a lost connection): they are skipped. What is
/// left must be exactly what runs now: all of `current` for an up plan, the
/// newest steps of `current` for a down plan (a rollback by steps counts
/// from what is newest, which moves when another runner rolls back too).
/// Anything else means the plan changed, and the run is refused.
pub(crate) fn reconcile(
    expected: &Plan,
    current: &Plan,
    applied: &[AppliedRow],
) -> Result<Reconciled, Error> {
    let is_done = |step: &PlannedStep| match expected.direction {
        Direction::Up => applied.iter().any(|row| {
            row.version == step.version
                && row.checksum.map(|c| c.to_string()).as_deref() == Some(&step.checksum)
        }),
        Direction::Down => !applied.iter().any(|row| row.version == step.version),
    };
    let (done, remaining): (Vec<&PlannedStep>, Vec<&PlannedStep>) =
        expected.steps.iter().partition(|step| is_done(step));
    let key = |step: &PlannedStep| (step.version, step.checksum.clone());
    let remaining_keys: Vec<_> = remaining.iter().map(|step| key(step)).collect();
    let current_keys: Vec<_> = current.steps.iter().map(key).collect();
    let consistent = expected.target == current.target
        && expected.direction == current.direction
        && match expected.direction {
            Direction::Up => remaining_keys == current_keys,
            Direction::Down => current_keys.starts_with(&remaining_keys),
        };
    if !consistent {
        return Err(Error::PlanChanged {
            expected: expected.hash.clone(),
            actual: current.hash.clone(),
        });
    }
    Ok(Reconciled {
        remaining: remaining.iter().map(|step| step.version).collect(),
        done: done.iter().map(|step| step.version).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(version: i64, checksum: &str) -> PlannedStep {
        PlannedStep {
            version,
            slug: format!("m{version}"),
            file: PathBuf::new(),
            no_transaction: false,
            checksum: checksum.to_string(),
        }
    }

    fn plan(direction: Direction, steps: Vec<PlannedStep>) -> Plan {
        Plan {
            target: "operational".into(),
            direction,
            hash: plan_hash("operational", direction, &steps),
            steps,
        }
    }

    fn row(version: i64, checksum: u64) -> AppliedRow {
        AppliedRow {
            version,
            name: format!("m{version}"),
            applied_on: None,
            checksum: Some(checksum),
        }
    }

    #[test]
    fn an_up_plan_applied_by_someone_else_is_done() {
        let expected = plan(Direction::Up, vec![step(1, "11"), step(2, "22")]);
        let current = plan(Direction::Up, vec![]);
        let r = reconcile(&expected, &current, &[row(1, 11), row(2, 22)]).unwrap();
        assert_eq!((r.done, r.remaining), (vec![1, 2], vec![]));
    }

    #[test]
    fn an_up_plan_half_applied_by_someone_else_goes_on_with_the_rest() {
        let expected = plan(Direction::Up, vec![step(1, "11"), step(2, "22")]);
        let current = plan(Direction::Up, vec![step(2, "22")]);
        let r = reconcile(&expected, &current, &[row(1, 11)]).unwrap();
        assert_eq!((r.done, r.remaining), (vec![1], vec![2]));
    }

    #[test]
    fn an_up_plan_with_a_new_step_under_the_lock_is_refused() {
        let expected = plan(Direction::Up, vec![step(2, "22")]);
        let current = plan(Direction::Up, vec![step(2, "22"), step(3, "33")]);
        assert!(matches!(
            reconcile(&expected, &current, &[row(1, 11)]),
            Err(Error::PlanChanged { .. })
        ));
    }

    #[test]
    fn a_step_applied_with_another_checksum_is_not_done() {
        let expected = plan(Direction::Up, vec![step(1, "11")]);
        let current = plan(Direction::Up, vec![]);
        assert!(reconcile(&expected, &current, &[row(1, 99)]).is_err());
    }

    #[test]
    fn a_rollback_by_steps_done_by_someone_else_is_done() {
        let expected = plan(Direction::Down, vec![step(3, "c")]);
        // Under the lock, "one step" now means version 2.
        let current = plan(Direction::Down, vec![step(2, "b")]);
        let r = reconcile(&expected, &current, &[row(1, 1), row(2, 2)]).unwrap();
        assert_eq!((r.done, r.remaining), (vec![3], vec![]));
    }

    #[test]
    fn a_rollback_under_a_newer_migration_is_refused() {
        let expected = plan(Direction::Down, vec![step(2, "b")]);
        let current = plan(Direction::Down, vec![step(3, "c")]);
        assert!(reconcile(&expected, &current, &[row(2, 2), row(3, 3)]).is_err());
    }
}
