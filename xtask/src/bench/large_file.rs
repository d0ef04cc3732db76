//! `cargo xtask bench large-file`: one migration of about 50 MB (a table,
//! about half a million rows in multi-row `INSERT`s, then an index and a
//! CHECK), applied with `dbops migrate up` and the standard hooks on,
//! against `psql -1 -f` of the same file, each round on fresh databases.
//! Then the peak memory (resident set) of each, from one more untimed run.
//!
//! Goals (issue 11): at most 1.5× the time of `psql -1`; peak memory at
//! most 3× the file's size.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Context;
use super::fixture::{self, Fixture, Migration};
use super::paired::{Case, paired};
use crate::pg::psql;
use crate::{Result, cmd};

/// The size the file grows to, give or take one `INSERT`.
const SIZE: usize = 50 << 20;
const ROWS_PER_INSERT: usize = 1_000;
const DEFAULT_ROUNDS: usize = 5;
const TIME_GOAL: f64 = 1.5;
const MEMORY_GOAL: f64 = 3.0;

const PSQL_DB: &str = "xtask_bench_large_psql";
const DBOPS_DB: &str = "xtask_bench_large_dbops";

pub fn run(ctx: &Context) -> Result {
    let (fixture, size) = write(&ctx.scratch.join("fixture"))?;
    let up_file = &fixture.all_up;
    let rounds = ctx.rounds(DEFAULT_ROUNDS);
    let psql_up = |db: &str| -> Result<Command> {
        Ok(super::cases::Psql::OneTransaction.command(&ctx.fresh_database(db)?, up_file))
    };
    let dbops_up = |db: &str| -> Result<Command> {
        let mut dbops = ctx.dbops(&ctx.fresh_database(db)?);
        dbops
            .arg("migrate")
            .args(super::apply::UP)
            .arg("--dir")
            .arg(&fixture.migrations);
        Ok(dbops)
    };
    let time = paired(
        rounds,
        Case::new("psql -1 -f all.sql", || psql_up(PSQL_DB)),
        Case::new("dbops migrate up --allow-lint-errors --dir", || {
            dbops_up(DBOPS_DB)
        }),
    )?;
    for db in [PSQL_DB, DBOPS_DB] {
        let rows = psql::query(
            &psql::database_url(&ctx.server, db),
            "SELECT count(*) FROM large_events",
        )?;
        eprintln!("bench: {db}: {} rows in large_events", rows.trim());
    }
    println!(
        "\n### One migration of {:.1} MB\n\n{}",
        mb(size as u64),
        time.report()
    );
    println!("{}", time.goal(TIME_GOAL));

    eprintln!("bench: peak memory, one more run each (not timed)");
    let psql_peak = peak_memory(psql_up(PSQL_DB)?, &ctx.scratch)?;
    let dbops_peak = peak_memory(dbops_up(DBOPS_DB)?, &ctx.scratch)?;
    let multiple = dbops_peak as f64 / size as f64;
    let mut table =
        String::from("| command | peak resident memory | × the file |\n|---|---|---|\n");
    for (label, peak) in [("psql -1 -f", psql_peak), ("dbops migrate up", dbops_peak)] {
        let _ = writeln!(
            table,
            "| `{label}` | {:.0} MB | {:.2}× |",
            mb(peak),
            peak as f64 / size as f64
        );
    }
    println!("\n{table}");
    println!(
        "goal: dbops's peak at most {MEMORY_GOAL:.1}× the file: {} ({multiple:.2}×)",
        super::verdict(multiple <= MEMORY_GOAL)
    );

    for db in [PSQL_DB, DBOPS_DB] {
        psql::drop_database(&ctx.server, db)?;
    }
    Ok(())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Writes the migration (and its down, `DROP TABLE`) under `out`; returns
/// the fixture, whose `all.sql` is the up migration itself, and its size.
fn write(out: &Path) -> Result<(Fixture, usize)> {
    let mut up = String::with_capacity(SIZE + (1 << 20));
    up.push_str(
        "CREATE TABLE large_events (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    \
         organization_id bigint NOT NULL,\n    kind text NOT NULL,\n    payload text NOT NULL,\n    \
         created_at timestamptz NOT NULL\n);\n",
    );
    const KINDS: [&str; 5] = ["page_view", "signup", "invoice_paid", "task_moved", "login"];
    let mut row: u64 = 0;
    while up.len() < SIZE {
        up.push_str(
            "INSERT INTO large_events (organization_id, kind, payload, created_at) VALUES\n",
        );
        for i in 0..ROWS_PER_INSERT {
            row += 1;
            // Deterministic and varied: the row number, scrambled.
            let hash = row.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let _ = write!(
                up,
                "({}, '{}', 'session {hash:016x} from {:08x}', timestamptz '2025-01-01 00:00+00' + interval '{} seconds')",
                row % 997,
                KINDS[(hash >> 60) as usize % KINDS.len()],
                hash >> 32,
                row * 7
            );
            up.push_str(if i + 1 < ROWS_PER_INSERT {
                ",\n"
            } else {
                ";\n"
            });
        }
    }
    up.push_str(
        "CREATE INDEX large_events_organization_id_idx ON large_events (organization_id);\n\
         ALTER TABLE large_events ADD CONSTRAINT large_events_kind_check CHECK (kind <> '');\n",
    );
    let down = "DROP TABLE large_events;\n".to_owned();
    let size = up.len();
    let migration = Migration {
        version: fixture::version(1),
        slug: "large_events".into(),
        up,
        down,
    };
    let fixture = fixture::write_files(
        out,
        std::slice::from_ref(&migration),
        &migration.up,
        &migration.down,
    )?;
    Ok((fixture, size))
}

/// The peak resident memory of `command` in bytes, which must succeed:
/// from `/usr/bin/time -f %M` when it is installed, else from `VmHWM` in
/// `/proc/<pid>/status`, read every 5 ms while it runs.
fn peak_memory(command: Command, scratch: &Path) -> Result<u64> {
    let time = Path::new("/usr/bin/time");
    if time.is_file() {
        let report = scratch.join("peak-memory.txt");
        let mut timed = Command::new(time);
        timed
            .args(["-f", "%M", "-o"])
            .arg(&report)
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => timed.env(key, value),
                None => timed.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            timed.current_dir(dir);
        }
        cmd::output(&mut timed)?;
        let kib = std::fs::read_to_string(&report)?;
        let kib: u64 = kib
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| format!("{} holds no peak memory: {kib:?}", report.display()))?;
        return Ok(kib * 1024);
    }
    polled_peak(command, scratch)
}

/// The `VmHWM` (high-water mark of the resident set) of `command`, read
/// until it exits; the last read is at most 5 ms before the exit.
fn polled_peak(mut command: Command, scratch: &Path) -> Result<u64> {
    let log: PathBuf = scratch.join("peak-memory.log");
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", cmd::display(&command)))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kib) = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak_kib = u64::max(peak_kib, kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !status.success() {
        let output = std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(&log).unwrap_or_default(),
        };
        return Err(cmd::failure(&command, &output).into());
    }
    Ok(peak_kib * 1024)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    #[test]
    fn both_ways_of_reading_peak_memory_see_a_small_process() {
        let scratch = std::env::temp_dir().join(format!("xtask-peak-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let sleep = || {
            let mut sleep = Command::new("sleep");
            sleep.arg("0.05");
            sleep
        };
        let polled = super::polled_peak(sleep(), &scratch).unwrap();
        let either = super::peak_memory(sleep(), &scratch).unwrap();
        std::fs::remove_dir_all(&scratch).unwrap();
        for peak in [polled, either] {
            assert!((1 << 10..64 << 20).contains(&peak), "{peak} bytes");
        }
    }
}
