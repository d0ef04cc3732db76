//! `cargo xtask bench fleet [--runners N] [--rounds R]`: N `dbops migrate
//! up` processes (default 32) started together against one fresh database,
//! as the pods of a deployment start, with the synthetic fixture of `bench
//! apply` (300 migrations); then N `dbops migrate down --to V` together, V
//! being the second newest version. (A fleet rolls back to a version:
//! `--steps` counts from whatever is newest when each runner plans, so a
//! runner that plans after another rolled back would go one step further.)
//! Each of R rounds (default 1) on a fresh database.
//!
//! Not a timing: it counts how many runners exited 0 (the others by exit
//! code, with one runner's last line), and whether each migration was
//! applied once: history rows, `migration.apply` audit entries and
//! succeeded `run_log` rows per version. After the downs, exactly one
//! migration must be rolled back, once.
//!
//! Goal (issue 11): every runner exits 0; each migration applied once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Stdio};

use url::Url;

use super::{Context, fixture, verdict};
use crate::Result;
use crate::pg::psql;

const MIGRATIONS: usize = 300;
const DEFAULT_RUNNERS: usize = 32;
const DEFAULT_ROUNDS: usize = 1;
const DB: &str = "xtask_bench_fleet";

pub fn run(ctx: &Context) -> Result {
    let fixture = fixture::write(&ctx.scratch.join("fixture"), MIGRATIONS)?;
    let runners = ctx.count("--runners", DEFAULT_RUNNERS);
    let rounds = ctx.rounds(DEFAULT_ROUNDS);
    let logs = ctx.scratch.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut all_met = true;
    for round in 1..=rounds {
        let db = ctx.fresh_database(DB)?;
        let up_args = [&["migrate"], super::apply::UP].concat();
        eprintln!("bench: round {round}: {runners} × dbops migrate up");
        let up = fleet(
            ctx,
            &db,
            &up_args,
            &fixture.migrations,
            &logs.join("up"),
            runners,
        )?;
        let applied = Counts::read(&db, "up", "migration.apply")?;
        let up_met = up.all_exited_0() && applied.each_once(MIGRATIONS);
        println!(
            "\n### Round {round}: {runners} × `dbops migrate up --allow-lint-errors` at once, {MIGRATIONS} migrations\n\n{}\n{}\n{}",
            up.report(),
            applied.report(MIGRATIONS),
            audit_actions(&db)?
        );

        let to = fixture::version(MIGRATIONS - 1);
        eprintln!("bench: round {round}: {runners} × dbops migrate down --to {to}");
        let down_args = ["migrate", "down", "--to", to.as_str()];
        let down = fleet(
            ctx,
            &db,
            &down_args,
            &fixture.migrations,
            &logs.join("down"),
            runners,
        )?;
        let rolled_back = Counts::read(&db, "down", "migration.rollback")?;
        let history_after = history_rows(&db)?;
        let down_met =
            down.all_exited_0() && rolled_back.each_once(1) && history_after == MIGRATIONS - 1;
        println!(
            "\n### Round {round}: {runners} × `dbops migrate down --to {to}` at once\n\n{}\n{}\nhistory rows left: {history_after} (expected {})\n",
            down.report(),
            rolled_back.report(1),
            MIGRATIONS - 1
        );
        println!(
            "goal: every runner exits 0 and each migration is applied once: up {}, down {}",
            verdict(up_met),
            verdict(down_met)
        );
        all_met &= up_met && down_met;
    }
    psql::drop_database(&ctx.server, DB)?;
    if rounds > 1 {
        println!(
            "\nover {rounds} rounds: {}",
            if all_met { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

/// How the runners of one fleet ended.
struct Fleet {
    /// Exit code (`None`: killed by a signal) to the runners that ended so,
    /// and one of their logs' last lines.
    exits: BTreeMap<Option<i32>, (usize, String)>,
    runners: usize,
}

/// Starts `runners` dbops processes with `args` as close together as
/// processes can start, and waits for all of them.
fn fleet(
    ctx: &Context,
    db: &Url,
    args: &[&str],
    dir: &Path,
    logs: &Path,
    runners: usize,
) -> Result<Fleet> {
    std::fs::create_dir_all(logs)?;
    let mut children: Vec<(Child, std::path::PathBuf)> = Vec::with_capacity(runners);
    for runner in 1..=runners {
        let log = logs.join(format!("runner-{runner}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = ctx
            .dbops(db)
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start runner {runner}: {e}"))?;
        children.push((child, log));
    }
    let mut exits: BTreeMap<Option<i32>, (usize, String)> = BTreeMap::new();
    for (mut child, log) in children {
        let code = child.wait()?.code();
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let last = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let entry = exits.entry(code).or_insert_with(|| (0, last.to_owned()));
        entry.0 += 1;
    }
    Ok(Fleet { exits, runners })
}

impl Fleet {
    fn all_exited_0(&self) -> bool {
        self.exits
            .get(&Some(0))
            .is_some_and(|(n, _)| *n == self.runners)
    }

    fn report(&self) -> String {
        let mut text = String::from(
            "| exit code | runners | last line of one runner's output |\n|---|---|---|\n",
        );
        for (code, (count, last)) in &self.exits {
            let code = code.map_or("signal".to_owned(), |c| c.to_string());
            // A runner that finds the work done lists every version: cut.
            let mut last = last.replace('|', "\\|");
            if let Some((at, _)) = last.char_indices().nth(160) {
                last.truncate(at);
                last.push_str(" …");
            }
            let _ = writeln!(text, "| {code} | {count} of {} | `{last}` |", self.runners);
        }
        text
    }
}

/// Per version: the history's rows, the audit entries of `action`, and the
/// succeeded `run_log` rows of `direction`.
struct Counts {
    history: BTreeMap<i64, usize>,
    audit: BTreeMap<i64, usize>,
    run_log: BTreeMap<i64, usize>,
    direction: &'static str,
    action: &'static str,
}

impl Counts {
    fn read(db: &Url, direction: &'static str, action: &'static str) -> Result<Counts> {
        let per_version = |sql: &str| -> Result<BTreeMap<i64, usize>> {
            let rows = psql::query(db, sql)?;
            let mut counts = BTreeMap::new();
            for row in rows.lines().filter(|row| !row.is_empty()) {
                let (version, count) = row.split_once('|').ok_or("a row of two columns")?;
                counts.insert(version.parse()?, count.parse()?);
            }
            Ok(counts)
        };
        Ok(Counts {
            history: per_version(
                "SELECT version, count(*) FROM dbops.operational_schema_history GROUP BY version",
            )?,
            audit: per_version(&format!(
                "SELECT target_id, count(*) FROM dbops.audit_log WHERE action = '{action}' GROUP BY target_id"
            ))?,
            run_log: per_version(&format!(
                "SELECT version, count(*) FROM dbops.run_log \
                 WHERE direction = '{direction}' AND outcome = 'succeeded' GROUP BY version"
            ))?,
            direction,
            action,
        })
    }

    /// Whether `versions` versions have one audit entry and one run_log row
    /// each, and (going up) one history row each.
    fn each_once(&self, versions: usize) -> bool {
        let once = |counts: &BTreeMap<i64, usize>| {
            counts.len() == versions && counts.values().all(|&n| n == 1)
        };
        let history = self.direction == "down" || once(&self.history);
        history && once(&self.audit) && once(&self.run_log)
    }

    fn report(&self, expected: usize) -> String {
        let describe = |counts: &BTreeMap<i64, usize>| {
            let rows: usize = counts.values().sum();
            let more = counts.values().filter(|&&n| n > 1).count();
            format!(
                "{rows} rows for {} versions, {more} versions more than once",
                counts.len()
            )
        };
        let mut text = format!("expected: {expected} versions, once each\n\n");
        if self.direction == "up" {
            let _ = writeln!(text, "- history: {}", describe(&self.history));
        }
        let _ = writeln!(
            text,
            "- `{}` audit entries: {}",
            self.action,
            describe(&self.audit)
        );
        let _ = writeln!(
            text,
            "- succeeded `{}` run_log rows: {}",
            self.direction,
            describe(&self.run_log)
        );
        text
    }
}

fn history_rows(db: &Url) -> Result<usize> {
    let rows = psql::query(db, "SELECT count(*) FROM dbops.operational_schema_history")?;
    Ok(rows.trim().parse()?)
}

/// Every audit action and its count, such as the lint overrides each
/// runner records.
fn audit_actions(db: &Url) -> Result<String> {
    let rows = psql::query(
        db,
        "SELECT action, count(*) FROM dbops.audit_log GROUP BY action ORDER BY action",
    )?;
    let actions: Vec<String> = rows
        .lines()
        .filter_map(|row| row.split_once('|'))
        .map(|(action, count)| format!("{count} `{action}`"))
        .collect();
    Ok(format!("audit entries by action: {}", actions.join(", ")))
}
