//! `cargo xtask ci`: everything a change must pass, in the order that fails
//! fastest: formatting, clippy, the workflow files, then every test (with
//! ClickHouse's two-shard cluster), the ClickHouse SQL on a current release
//! (chDB), and the smoke run against PostgreSQL, then the tests and smoke
//! again against the oldest and the newest major version (`cargo xtask
//! matrix --versions 14,18`).
//!
//! Tests and smoke share the dev-profile build; clippy's check build is the
//! only other one. Benchmarks are compiled by clippy (`--all-targets`) but
//! not run here.

mod actionlint;
mod chdb_parity;
mod venv;

use std::process::Command;
use std::time::Instant;

use url::Url;

use crate::flags::Args;
use crate::pg::{self, Durability};
use crate::workspace::{Profile, cargo};
use crate::{Result, clickhouse, cmd, matrix, smoke};

/// The PostgreSQL majors tested besides the one the tests and smoke just
/// ran against: the oldest and the newest (`cargo xtask matrix`).
const CI_MATRIX: &[u32] = &[14, 18];

/// `cargo xtask ci [--no-matrix]`.
pub fn task(args: &mut Args) -> Result {
    let matrix = !args.flag("--no-matrix");
    args.finish()?;
    let started = Instant::now();
    stage("fmt", || {
        cmd::run(cargo().args(["fmt", "--all", "--check"]))
    })?;
    stage("clippy", || {
        cmd::run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    stage("actionlint", actionlint::run)?;
    let server = pg::ensure_with(Durability::Throwaway)?;
    // The rollup-clickhouse tests run against a real two-shard cluster.
    let clickhouse = clickhouse::ensure()?;
    // Smoke reuses the tests' build of dbops instead of building it again.
    let smoke_options = smoke::Options {
        build: Profile::Test,
        ..smoke::Options::default()
    };
    let checked = stage("tests", || tests(&server.url, &clickhouse.urls))
        .and_then(|()| stage("chdb parity", || chdb_parity::run(&clickhouse.urls)))
        .and_then(|()| stage("smoke", || smoke::run(&server.url, &smoke_options)));
    // Stop the servers we started even when something failed: their data
    // stays in target/pg/ and target/clickhouse/ for a look, and `cargo
    // xtask pg` and `cargo xtask clickhouse` start them again.
    let stopped = server.stop_if_started();
    let stopped_clickhouse = clickhouse.stop_if_started();
    checked?;
    stopped?;
    stopped_clickhouse?;
    if matrix {
        stage("matrix", || matrix::run(CI_MATRIX))?;
    }
    eprintln!("ci: all passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Every test of the workspace against the server at `url`: with
/// cargo-nextest when it is installed, and the doctests (which nextest does
/// not run) with `cargo test --doc`; ClickHouse's URLs in
/// `CLICKHOUSE_URLS`.
fn tests(url: &Url, clickhouse_urls: &str) -> Result {
    let with_db = |cmd: &mut Command| {
        cmd.env(pg::URL_ENV, url.as_str())
            .env(clickhouse::URLS_ENV, clickhouse_urls)
            .env_remove("ANALYTICS_URL");
    };
    let mut run = cargo();
    if cmd::on_path("cargo-nextest") {
        run.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        run.args(["test", "--workspace", "--no-fail-fast"]);
    }
    with_db(&mut run);
    cmd::run(&mut run)?;
    if cmd::on_path("cargo-nextest") {
        let mut doc = cargo();
        doc.args(["test", "--workspace", "--doc"]);
        with_db(&mut doc);
        cmd::run(&mut doc)?;
    }
    Ok(())
}

fn stage(name: &str, run: impl FnOnce() -> Result) -> Result {
    eprintln!("ci: {name}");
    let started = Instant::now();
    run().map_err(|e| format!("ci stage `{name}` failed: {e}"))?;
    eprintln!("ci: {name} passed in {:.0?}", started.elapsed());
    Ok(())
}
