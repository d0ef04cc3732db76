//! `cargo xtask bench history`: a real project's migration history, taken
//! over from the tool that wrote it and applied and rolled back with the
//! standard hooks on, against `psql -1` of the same SQL.
//!
//! The history is Lemmy's (a federated link aggregator on PostgreSQL,
//! migrated with diesel): the 233 migrations of `lemmy_db_schema` 0.19.21 on
//! crates.io, written from 2019 to 2025. Tables created and then altered
//! over six years, columns renamed and retyped, views, materialized views,
//! functions and triggers replaced many times, enum changes, backfills. The
//! crate comes from the crates.io registry, checked against the registry's
//! SHA-256, and is taken over with `dbops migrate import --from diesel`, as
//! a team adopting dbops would.
//!
//! Applying: `psql -1 -f all.sql` against `dbops migrate up`. Rolling back:
//! the history's own downs fail at `202307050000_person_admin` (it drops an
//! index a later migration already dropped), so both sides roll back the
//! 75 migrations after it: `psql -1` of their downs against `dbops migrate
//! down --to 202307050000`. Both directions are also timed against one
//! transaction per migration (see `fixture::one_transaction_each`).
//!
//! Goals (issue 11, which measured real histories of this size): applying at
//! most 1.3× `psql -1`, rolling back at most 2.0×.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Context;
use super::cases::{Cases, Psql};
use super::fixture::{NO_TRANSACTION, one_transaction_each};
use super::paired::paired;
use crate::pg::psql;
use crate::{Result, cmd};

const CRATE: &str = "lemmy_db_schema";
const VERSION: &str = "0.19.21";
/// The registry index's `cksum` of the crate file.
const SHA256: &str = "8569be2266043a656e6b2b01a9c362bd265a8d81dab7b3f5384c8210c1e8bdf7";
const MIGRATIONS: usize = 233;
/// The newest migration whose down fails: rollbacks stop above it.
const ROLLBACK_TO: i64 = 202_307_050_000;
const ROLLBACKS: usize = 75;

const DEFAULT_ROUNDS: usize = 7;
const UP_GOAL: f64 = 1.3;
const DOWN_GOAL: f64 = 2.0;

const PSQL_DB: &str = "xtask_bench_history_psql";
const DBOPS_DB: &str = "xtask_bench_history_dbops";

pub fn run(ctx: &Context) -> Result {
    let history = History::take_over(ctx)?;
    println!(
        "history: {CRATE} {VERSION} from crates.io, {MIGRATIONS} diesel migrations imported; {ROLLBACKS} rolled back"
    );
    let rounds = ctx.rounds(DEFAULT_ROUNDS);
    let cases = Cases::new(ctx, &history.migrations, PSQL_DB, DBOPS_DB);
    let to = ROLLBACK_TO.to_string();

    let up = paired(
        rounds,
        cases.psql_up("psql -1 -f all.sql", Psql::OneTransaction, &history.all_up),
        cases.dbops_up(),
    )?;
    let applied = ctx.same_schema(PSQL_DB, DBOPS_DB)?;
    println!(
        "\n### Applying Lemmy's {MIGRATIONS} migrations ({applied})\n\n{}",
        up.report()
    );
    println!("{}", up.goal(UP_GOAL));

    let down = paired(
        rounds,
        cases.psql_down(
            "psql -1 -f down.sql",
            Psql::OneTransaction,
            &history.all_up,
            &history.all_down,
        ),
        cases.dbops_down(&to),
    )?;
    let left = ctx.same_schema(PSQL_DB, DBOPS_DB)?;
    println!(
        "\n### Rolling back Lemmy's newest {ROLLBACKS} migrations ({left} left)\n\n{}",
        down.report()
    );
    println!("{}", down.goal(DOWN_GOAL));

    cases.against_one_commit_each(
        rounds,
        &format!("Lemmy's history ({MIGRATIONS} up, {ROLLBACKS} down)"),
        (&history.each_up, &history.each_down),
        &to,
        |_| ctx.same_schema(PSQL_DB, DBOPS_DB).map(drop),
    )?;

    for db in [PSQL_DB, DBOPS_DB] {
        psql::drop_database(&ctx.server, db)?;
    }
    Ok(())
}

/// The history taken over, and the files `psql` runs.
struct History {
    /// The dbops migrations `import` wrote.
    migrations: PathBuf,
    all_up: PathBuf,
    all_down: PathBuf,
    each_up: PathBuf,
    each_down: PathBuf,
}

impl History {
    /// Fetches the crate (once), unpacks its migrations, imports them into
    /// a fresh folder and writes the four files of SQL.
    fn take_over(ctx: &Context) -> Result<History> {
        let out = &ctx.scratch;
        let source = unpack(&fetch(out)?, out)?;
        let migrations = out.join("dbops");
        empty_dir(&migrations)?;
        cmd::output(
            Command::new(&ctx.dbops)
                .current_dir(crate::workspace::root())
                .args(["migrate", "import", "--from", "diesel"])
                .arg(&source)
                .arg("--dir")
                .arg(&migrations),
        )?;
        let ups = scripts(&migrations, ".up.sql")?;
        if ups.len() != MIGRATIONS {
            return Err(format!(
                "the import wrote {} migrations, not {MIGRATIONS}",
                ups.len()
            )
            .into());
        }
        let mut downs: Vec<(i64, String)> = scripts(&migrations, ".down.sql")?
            .into_iter()
            .filter(|(version, _)| *version > ROLLBACK_TO)
            .collect();
        downs.reverse();
        if downs.len() != ROLLBACKS {
            return Err(format!(
                "{} migrations after {ROLLBACK_TO}, not {ROLLBACKS}",
                downs.len()
            )
            .into());
        }
        let history = History {
            migrations,
            all_up: out.join("all.sql"),
            all_down: out.join("down.sql"),
            each_up: out.join("each.sql"),
            each_down: out.join("each-down.sql"),
        };
        if let Some((version, _)) = ups.iter().find(|(_, sql)| sql.starts_with(NO_TRANSACTION)) {
            return Err(format!(
                "migration {version} runs outside a transaction: `psql -1` cannot run it"
            )
            .into());
        }
        let up = || ups.iter().map(|(_, sql)| sql.as_str());
        let down = || downs.iter().map(|(_, sql)| sql.as_str());
        // A script's last statement may lack its semicolon.
        let joined = |scripts: &mut dyn Iterator<Item = &str>| -> String {
            scripts.flat_map(|sql| [sql, "\n;\n"]).collect()
        };
        for (file, sql) in [
            (&history.all_up, joined(&mut up())),
            (&history.all_down, joined(&mut down())),
            (&history.each_up, one_transaction_each(up())),
            (&history.each_down, one_transaction_each(down())),
        ] {
            std::fs::write(file, sql).map_err(|e| format!("writing {}: {e}", file.display()))?;
        }
        Ok(history)
    }
}

/// The crate file under `out`, downloaded from crates.io unless a copy with
/// the registry's checksum is there.
fn fetch(out: &Path) -> Result<PathBuf> {
    let file = out.join(format!("{CRATE}-{VERSION}.crate"));
    if file.exists() && sha256(&file)? == SHA256 {
        return Ok(file);
    }
    let partial = file.with_extension("partial");
    let url = format!("https://static.crates.io/crates/{CRATE}/{CRATE}-{VERSION}.crate");
    eprintln!("bench: downloading {url}");
    cmd::output(
        Command::new("curl")
            .args(["--fail", "--silent", "--show-error", "--location"])
            .args(["--max-time", "120", "--output"])
            .arg(&partial)
            .arg(&url),
    )?;
    let got = sha256(&partial)?;
    if got != SHA256 {
        return Err(format!("{url} has SHA-256 {got}, not the registry's {SHA256}").into());
    }
    std::fs::rename(&partial, &file).map_err(|e| format!("renaming {}: {e}", partial.display()))?;
    Ok(file)
}

fn sha256(file: &Path) -> Result<String> {
    let out = cmd::read(Command::new("sha256sum").arg(file))?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Makes `dir` an empty folder, whatever was there.
fn empty_dir(dir: &Path) -> Result {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(())
}

/// Unpacks the crate's `migrations/` folder under `out`; returns its path.
fn unpack(crate_file: &Path, out: &Path) -> Result<PathBuf> {
    let unpacked = out.join("source");
    empty_dir(&unpacked)?;
    cmd::output(
        Command::new("tar")
            .arg("-xzf")
            .arg(crate_file)
            .arg("-C")
            .arg(&unpacked)
            .args(["--strip-components", "1"])
            .arg(format!("{CRATE}-{VERSION}/migrations")),
    )?;
    Ok(unpacked.join("migrations"))
}

/// The `(version, SQL)` of every file in `dir` whose name ends with
/// `suffix`, oldest first.
fn scripts(dir: &Path, suffix: &str) -> Result<Vec<(i64, String)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))? {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if !name.ends_with(suffix) {
            continue;
        }
        let version = name
            .split('_')
            .next()
            .and_then(|version| version.parse().ok())
            .ok_or_else(|| format!("{}: no version in the name", path.display()))?;
        let sql = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        found.push((version, sql));
    }
    found.sort_by_key(|(version, _)| *version);
    Ok(found)
}
