//! `cargo xtask bench crash [--trials N]`: whether what `dbops migrate up`
//! reports applied survives a server crash right after it exits 0.
//!
//! On a cluster of its own (PostgreSQL's default durability; the shared
//! benchmark server is never crashed), each of N trials (default 20): a
//! fresh database, `dbops migrate up` of the 30-migration synthetic fixture,
//! and as soon as it exits 0, `pg_ctl stop -m immediate` (the server's
//! processes quit without writing anything more: a crash, as far as what
//! was not on disk is concerned), then a start, whose recovery replays the
//! WAL. Every migration the run reported (`applied N migration(s)`) must
//! then have its history row, its audit entry and its table.
//!
//! Goal (issue 11): nothing lost, over at least 20 trials.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use url::Url;

use super::{Context, fixture};
use crate::pg::psql;
use crate::{Result, cmd};

const MIGRATIONS: usize = 30;
const DEFAULT_TRIALS: usize = 20;
const DB: &str = "xtask_bench_crash";

pub fn run(ctx: &Context) -> Result {
    let fixture = fixture::write(&ctx.scratch.join("fixture"), MIGRATIONS)?;
    let trials = ctx.count("--trials", DEFAULT_TRIALS);
    let cluster = CrashCluster::start()?;
    println!(
        "\n### {trials} crashes right after `dbops migrate up` ({MIGRATIONS} migrations) exits 0\n\n\
         crash cluster: {}, PostgreSQL's default durability\n\n\
         | trial | dbops | reported | crash signalled after | history rows | audit entries | tables | lost |\n\
         |---|---|---|---|---|---|---|---|",
        cluster.data.display()
    );
    let log = ctx.scratch.join("dbops.log");
    let (mut reported_total, mut lost_total, mut trials_with_loss) = (0, 0, 0);
    for trial in 1..=trials {
        let db = psql::recreate_database(&cluster.url(), DB)?;
        let mut up = ctx.dbops(&db);
        up.arg("migrate")
            .args(super::apply::UP)
            .arg("--dir")
            .arg(&fixture.migrations);
        let out = std::fs::File::create(&log)?;
        up.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        let status = up.status()?;
        let exited = Instant::now();
        if !status.success() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let last = said.lines().last().unwrap_or("").replace('|', "\\|");
            println!("| {trial} | {status}: `{last}` | - | - | - | - | - | - |");
            continue;
        }
        cluster.crash()?;
        let signalled = exited.elapsed();
        cluster.restart()?;
        let said = std::fs::read_to_string(&log)?;
        let reported = reported_count(&said)
            .ok_or_else(|| format!("dbops exited 0 without `applied N migration(s)`:\n{said}"))?;
        let found = Found::read(&db, reported)?;
        let lost = reported - found.complete;
        reported_total += reported;
        lost_total += lost;
        trials_with_loss += usize::from(lost > 0);
        println!(
            "| {trial} | exit 0 | {reported} | {} ms | {} | {} | {} | {lost} |",
            signalled.as_millis(),
            found.history,
            found.audit,
            found.tables
        );
    }
    cluster.stop()?;
    println!(
        "\nlost: {lost_total} of {reported_total} reported migrations; \
         {trials_with_loss} of {trials} trials lost something"
    );
    println!(
        "goal: nothing reported is lost: {}",
        super::verdict(lost_total == 0 && reported_total > 0)
    );
    Ok(())
}

/// `N` of dbops's `operational: applied N migration(s) in ...`.
fn reported_count(output: &str) -> Option<usize> {
    output.lines().find_map(|line| {
        let rest = line.split_once(": applied ")?.1;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// What survived of the first `reported` migrations of the fixture.
struct Found {
    history: usize,
    audit: usize,
    tables: usize,
    /// Migrations with all three.
    complete: usize,
}

impl Found {
    fn read(db: &Url, reported: usize) -> Result<Found> {
        let versions: Vec<String> = (1..=reported).map(fixture::version).collect();
        let sql = format!(
            "WITH reported (i, version) AS (SELECT i, ({list})[i] FROM generate_subscripts({list}, 1) i),
                  found AS (
                    SELECT r.version,
                        EXISTS (SELECT 1 FROM dbops.operational_schema_history h WHERE h.version::text = r.version) AS history,
                        EXISTS (SELECT 1 FROM dbops.audit_log a WHERE a.action = 'migration.apply' AND a.target_id = r.version) AS audit,
                        to_regclass('bench_t' || r.i) IS NOT NULL AS tables
                    FROM reported r)
             SELECT count(*) FILTER (WHERE history), count(*) FILTER (WHERE audit),
                    count(*) FILTER (WHERE tables), count(*) FILTER (WHERE history AND audit AND tables)
             FROM found",
            list = format_args!("ARRAY['{}']", versions.join("', '"))
        );
        // The bookkeeping tables may themselves be lost.
        let exists = psql::query(
            db,
            "SELECT to_regclass('dbops.operational_schema_history') IS NOT NULL \
             AND to_regclass('dbops.audit_log') IS NOT NULL",
        )?;
        if exists.trim() != "t" {
            return Ok(Found {
                history: 0,
                audit: 0,
                tables: 0,
                complete: 0,
            });
        }
        let row = psql::query(db, &sql)?;
        let counts: Vec<usize> = row
            .trim()
            .split('|')
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [history, audit, tables, complete] = counts[..] else {
            return Err(format!("unexpected counts: {row}").into());
        };
        Ok(Found {
            history,
            audit,
            tables,
            complete,
        })
    }
}

/// A cluster in a temporary folder, with PostgreSQL's default durability,
/// that this benchmark may crash. Its programs come from `pg_config
/// --bindir`; as root, they run as `postgres` (through `runuser`), as
/// PostgreSQL refuses to run as root. Stopped and removed when dropped.
struct CrashCluster {
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl CrashCluster {
    fn start() -> Result<CrashCluster> {
        let bin = PathBuf::from(cmd::read(Command::new("pg_config").arg("--bindir"))?.trim());
        if !bin.join("pg_ctl").is_file() {
            return Err(format!("no pg_ctl in {} (pg_config --bindir)", bin.display()).into());
        }
        let as_postgres = cmd::read(Command::new("id").arg("-u"))?.trim() == "0";
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let data = std::env::temp_dir().join(format!("dbops-bench-crash-{}", std::process::id()));
        let cluster = CrashCluster {
            data,
            bin,
            port,
            as_postgres,
        };
        // initdb creates the folder: /tmp lets the `postgres` user do that.
        cmd::output(
            cluster
                .program("initdb")
                .args(["--username=postgres", "--auth=trust", "--encoding=UTF8"])
                .args(["--no-locale", "--no-sync", "--pgdata"])
                .arg(&cluster.data),
        )?;
        let conf = cluster.data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| {
                writeln!(
                    file,
                    "\n# cargo xtask bench crash\nlisten_addresses = '127.0.0.1'\n\
                     unix_socket_directories = ''\nport = {port}"
                )
            })
            .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        cluster.pg_ctl(&["start", "--wait", "--timeout=60", "--silent"])?;
        eprintln!(
            "bench: crash cluster in {} on port {port}",
            cluster.data.display()
        );
        Ok(cluster)
    }

    fn url(&self) -> Url {
        Url::parse(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .expect("a valid URL")
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once.
    /// Returns once the signal is sent (`pg_ctl --wait` would add its
    /// polling interval, 100 ms, to what the trial reports).
    fn crash(&self) -> Result {
        self.pg_ctl(&["stop", "--no-wait", "--silent", "--mode=immediate"])
    }

    /// Starts the server again once the crashed one is gone.
    fn restart(&self) -> Result {
        let started = Instant::now();
        while self.data.join("postmaster.pid").exists() {
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the crashed server did not exit within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.pg_ctl(&["start", "--wait", "--timeout=60", "--silent"])
    }

    fn stop(&self) -> Result {
        self.pg_ctl(&["stop", "--wait", "--silent", "--mode=fast"])
    }

    fn pg_ctl(&self, args: &[&str]) -> Result {
        let log = self.data.join("server.log");
        let mut pg_ctl = self.program("pg_ctl");
        pg_ctl
            .args(args)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log);
        cmd::output(&mut pg_ctl).map(drop).map_err(|e| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(10).collect();
            format!(
                "{e}\nserver log, newest first:\n    {}",
                tail.join("\n    ")
            )
            .into()
        })
    }

    fn program(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(path);
            runuser
        } else {
            Command::new(path)
        };
        command.current_dir("/");
        command
    }
}

impl Drop for CrashCluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let _ = self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reported_count_comes_from_the_applied_line() {
        let output = "-- lint: no findings\noperational: applied 30 migration(s) in 412 ms, last 202501010030\n";
        assert_eq!(super::reported_count(output), Some(30));
        assert_eq!(
            super::reported_count("operational: nothing to apply\n"),
            None
        );
    }
}
