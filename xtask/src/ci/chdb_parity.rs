//! Runs the ClickHouse SQL of the `clickhouse` rollup target on a current
//! ClickHouse too: `crates/rollup-clickhouse/parity/chdb_parity.py`, with the
//! embedded engine of the PyPI package `chdb` installed into a virtualenv
//! under `target/`, against the first server of `cargo xtask clickhouse`
//! (Debian's 18.16). It fails unless both answer every query the same.

use std::process::Command;

use super::venv;
use crate::clickhouse::URLS_ENV;
use crate::{Result, cmd, workspace};

/// The package and version that embeds the current ClickHouse (26.9).
const WHEEL: &str = "chdb==4.4.0";

pub fn run(clickhouse_urls: &str) -> Result {
    let python = venv::install("chdb-venv", WHEEL, "python")?;
    let script = workspace::root()
        .join("crates")
        .join("rollup-clickhouse")
        .join("parity")
        .join("chdb_parity.py");
    cmd::run(
        Command::new(python)
            .arg(script)
            .env(URLS_ENV, clickhouse_urls),
    )
}
