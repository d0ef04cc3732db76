//! `cargo xtask matrix [--versions 14,16,...]`: every test and the smoke run
//! against each PostgreSQL major version from 14 to 18.
//!
//! Each version's server programs come from a package registry (see
//! `matrix/install.rs`), cached under `target/pg-dist/`. The tests are built
//! once; then, per version, a throwaway cluster starts in
//! `target/pg/matrix-<major>/`, `cargo test --workspace` runs against it
//! (with `DBOPS_PG_BINDIR` naming the same programs, for the tests that start
//! clusters of their own), then smoke, and the cluster stops. The table of
//! results is printed and written to `target/matrix/report.md`; each
//! version's test output is in `target/matrix/<major>-tests.log`.
//!
//! A version may have a known incompatibility outside dbops itself: on 14,
//! the platform's operational schema (`UNIQUE NULLS NOT DISTINCT`, new in
//! 15). The tests that fail on it, and on nothing else, are counted in a
//! column of their own and do not fail the run; smoke is not run there.

mod install;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use url::Url;

use crate::flags::Args;
use crate::pg::{self, psql};
use crate::workspace::{self, Profile, cargo};
use crate::{Result, clickhouse, cmd, smoke};
use install::{RELEASES, Release};

/// The environment variable that points testdb's own clusters at a
/// version's server programs.
const BINDIR_ENV: &str = "DBOPS_PG_BINDIR";

/// Something that fails on a version for a reason outside dbops: the tests
/// failing with every one of `markers` in their output are counted apart and
/// do not fail the run, and smoke, which migrates the same schema, is not run.
struct Known {
    markers: &'static [&'static str],
    reason: &'static str,
}

/// The platform's operational schema (`migrations/operational/`) needs
/// PostgreSQL 15: `UNIQUE NULLS NOT DISTINCT` in 202511150001_core_entities.
/// An applied migration cannot change (its checksum is history), so on 14
/// the tests that apply that schema fail on it, and only on it.
const BEFORE_15: Known = Known {
    // The server's message, quoted as is or escaped by a Debug format.
    markers: &["syntax error at or near ", "\"NULLS"],
    reason: "the platform schema's UNIQUE NULLS NOT DISTINCT needs PostgreSQL 15",
};

fn known_incompatibility(major: u32) -> Option<&'static Known> {
    (major < 15).then_some(&BEFORE_15)
}

/// What one version's run found.
struct Outcome {
    release: Release,
    server: String,
    passed: u32,
    /// Failed tests not explained by a known incompatibility.
    failed: u32,
    /// Failed tests explained by the version's known incompatibility.
    known: u32,
    /// Whether `cargo test` exited successfully (a build failure has no counts).
    tests_ok: bool,
    /// `None` when not run because of a known incompatibility.
    smoke: Option<Result<(), String>>,
    took: Duration,
}

/// `cargo xtask matrix [--versions 14,16,...]`.
pub fn task(args: &mut Args) -> Result {
    let versions = match args.value("--versions")? {
        Some(list) => parse_versions(&list)?,
        None => RELEASES.iter().map(|release| release.major).collect(),
    };
    args.finish()?;
    run(&versions)
}

/// Runs the tests and smoke against each major version in `majors`; fails
/// when any of them failed, after running them all.
pub fn run(majors: &[u32]) -> Result {
    let releases: Vec<Release> = majors
        .iter()
        .map(|major| {
            RELEASES
                .iter()
                .find(|release| release.major == *major)
                .copied()
                .ok_or_else(|| {
                    format!(
                        "no PostgreSQL {major} in the matrix; it has {}",
                        known_majors()
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    // Install everything first: a registry that fails should fail the run
    // before an hour of tests, not after.
    let bins = releases
        .iter()
        .map(install::server_dir)
        .collect::<Result<Vec<_>>>()?;
    // One build for every version: the tests and the dbops binary smoke runs.
    cmd::run(cargo().args(["test", "--workspace", "--no-run"]))?;
    let report_dir = workspace::target_dir().join("matrix");
    std::fs::create_dir_all(&report_dir)
        .map_err(|e| format!("creating {}: {e}", report_dir.display()))?;
    // The rollup-clickhouse tests need the two-shard cluster on every version.
    let clickhouse = clickhouse::ensure()?;
    let mut outcomes = Vec::new();
    for (release, bin) in releases.into_iter().zip(bins) {
        eprintln!("matrix: PostgreSQL {}", release.version);
        let started = Instant::now();
        let server = pg::start_named(bin.clone(), &format!("matrix-{}", release.major))?;
        let version = psql::server_version(&server.url).unwrap_or_else(|e| format!("unknown: {e}"));
        let log = report_dir.join(format!("{}-tests.log", release.major));
        let known = known_incompatibility(release.major);
        // The cluster's own programs: a copy when its user cannot reach target/.
        let programs = server.programs.clone().unwrap_or(bin);
        let tests = tests(&server.url, &clickhouse.urls, &programs, &log, known);
        let smoke = match known {
            Some(known) => {
                eprintln!("matrix: smoke not run: {}", known.reason);
                None
            }
            None => {
                let smoke_options = smoke::Options {
                    build: Profile::Test,
                    ..smoke::Options::default()
                };
                Some(smoke::run(&server.url, &smoke_options).map_err(|e| e.to_string()))
            }
        };
        let stopped = server.stop_if_started();
        let counts = tests?;
        stopped?;
        let outcome = Outcome {
            release,
            server: version,
            passed: counts.passed,
            failed: counts.failed - counts.known,
            known: counts.known,
            tests_ok: counts.cargo_ok || (counts.failed == counts.known && counts.failed > 0),
            smoke,
            took: started.elapsed(),
        };
        eprintln!("matrix: {}", row(&outcome));
        outcomes.push(outcome);
    }
    clickhouse.stop_if_started()?;
    let report = table(&outcomes);
    let path = report_dir.join("report.md");
    std::fs::write(&path, &report).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("{report}");
    eprintln!("matrix: table written to {}", path.display());
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.tests_ok || o.failed > 0 || matches!(o.smoke, Some(Err(_))))
        .map(|o| match &o.smoke {
            Some(Err(e)) => format!("PostgreSQL {}: smoke failed: {e}", o.release.version),
            _ => format!(
                "PostgreSQL {}: tests failed (see target/matrix/{}-tests.log)",
                o.release.version, o.release.major
            ),
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}

/// What `cargo test` printed and how it ended.
struct Counts {
    passed: u32,
    failed: u32,
    /// Of the failed, those whose output has the known incompatibility's marker.
    known: u32,
    cargo_ok: bool,
}

/// `cargo test --workspace` against `url` (and the ClickHouse cluster at
/// `clickhouse_urls`), its output in `log`.
fn tests(
    url: &Url,
    clickhouse_urls: &str,
    bin: &Path,
    log: &Path,
    known: Option<&Known>,
) -> Result<Counts> {
    let file =
        std::fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let mut run = cargo();
    run.args(["test", "--workspace", "--no-fail-fast"])
        .env(pg::URL_ENV, url.as_str())
        .env(clickhouse::URLS_ENV, clickhouse_urls)
        .env(BINDIR_ENV, bin)
        .env_remove("ANALYTICS_URL")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    eprintln!("$ {} > {}", cmd::display(&run), log.display());
    let status = run
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", cmd::display(&run)))?;
    let output = std::fs::read_to_string(log)?;
    let (passed, failed) = count_results(&output);
    let known = known.map_or(0, |known| failures_with(&output, known.markers));
    Ok(Counts {
        passed,
        failed,
        known,
        cargo_ok: status.success(),
    })
}

/// How many failed tests printed every one of `markers`: libtest prints
/// each failed test's output under `---- NAME stdout ----`, before its
/// `failures:` list.
fn failures_with(output: &str, markers: &[&str]) -> u32 {
    let mut count = 0;
    // The output of the failed test being read, when in one.
    let mut block: Option<String> = None;
    let mut close = |block: &mut Option<String>| {
        if let Some(text) = block.take() {
            count += u32::from(markers.iter().all(|marker| text.contains(marker)));
        }
    };
    for line in output.lines() {
        if line.starts_with("---- ") && line.ends_with(" stdout ----") {
            close(&mut block);
            block = Some(String::new());
        } else if line == "failures:" {
            close(&mut block);
        } else if let Some(text) = &mut block {
            text.push_str(line);
            text.push('\n');
        }
    }
    close(&mut block);
    count
}

/// Adds up libtest's `test result: ... N passed; M failed; ...` lines.
fn count_results(output: &str) -> (u32, u32) {
    let mut totals = (0, 0);
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            let (Some(count), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u32>() else {
                continue;
            };
            match kind {
                "passed" => totals.0 += count,
                "failed" => totals.1 += count,
                _ => {}
            }
        }
    }
    totals
}

fn parse_versions(list: &str) -> Result<Vec<u32>> {
    list.split(',')
        .map(|part| {
            part.trim().parse().map_err(|_| {
                format!(
                    "--versions takes major versions separated by commas ({}), not {part:?}",
                    known_majors()
                )
                .into()
            })
        })
        .collect()
}

fn known_majors() -> String {
    RELEASES
        .iter()
        .map(|release| release.major.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

const HEADER: &str = "| PostgreSQL | server | tests passed | tests failed | failed for a known reason | smoke | time |\n|---|---|---|---|---|---|---|\n";

fn table(outcomes: &[Outcome]) -> String {
    let mut text = String::from(HEADER);
    for outcome in outcomes {
        let _ = writeln!(text, "{}", row(outcome));
    }
    for outcome in outcomes {
        if let Some(known) = known_incompatibility(outcome.release.major) {
            let _ = writeln!(
                text,
                "\nPostgreSQL {}: {} (the failures that print {}; smoke, which migrates that schema, is not run).",
                outcome.release.major,
                known.reason,
                known
                    .markers
                    .iter()
                    .map(|marker| format!("`{}`", marker.trim()))
                    .collect::<Vec<_>>()
                    .join(" and ")
            );
        }
    }
    text
}

fn row(o: &Outcome) -> String {
    let tests_note = if o.tests_ok || o.failed > 0 {
        ""
    } else {
        " (cargo test failed)"
    };
    format!(
        "| {} | {} | {} | {}{tests_note} | {} | {} | {:.0?} |",
        o.release.major,
        o.server,
        o.passed,
        o.failed,
        o.known,
        match o.smoke {
            Some(Ok(())) => "ok",
            Some(Err(_)) => "failed",
            None => "not run",
        },
        Duration::from_secs(o.took.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::{count_results, failures_with, parse_versions};

    #[test]
    fn counts_add_up_over_every_test_binary() {
        let output = "\
running 4 tests
test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.98s
test result: FAILED. 10 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 3.1s
test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";
        assert_eq!(count_results(output), (14, 2));
    }

    #[test]
    fn failures_are_told_apart_by_what_they_printed() {
        let output = "\
---- a stdout ----
thread 'a' panicked: syntax error at or near \"NULLS\"

---- d stdout ----
thread 'd' panicked: Error { message: \"syntax error at or near \\\"NULLS\\\"\" }

---- b stdout ----
thread 'b' panicked: something else

failures:
    a
    b
---- c stdout ----
error: syntax error at or near \"NULLS\"
";
        let nulls = &["syntax error at or near ", "\"NULLS"];
        assert_eq!(failures_with(output, nulls), 3);
        assert_eq!(failures_with(output, &["something else"]), 1);
        assert_eq!(failures_with(output, &["NULLS", "something else"]), 0);
    }

    #[test]
    fn versions_are_majors_separated_by_commas() {
        assert_eq!(parse_versions("14, 18").unwrap(), [14, 18]);
        let error = parse_versions("14,x").unwrap_err().to_string();
        assert!(error.contains("not \"x\""), "{error}");
    }
}
