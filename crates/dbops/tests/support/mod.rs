//! Shared by the CLI tests that migrate throwaway folders (`--dir`).
// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's `configs/migrate.toml` copied into a folder of its own,
/// for `DBOPS_CONFIG`. The tests run from crates/dbops, where dbops would
/// find the repository's configuration walking up, and with it
/// configs/lint.toml, whose data-classification map rightly refuses the
/// tests' made-up tables. This copy keeps the repository's settings,
/// environments and hooks, and lints with the rules' defaults.
pub fn standalone_config() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let folder = tempfile::tempdir().unwrap().keep();
        let path = folder.join("migrate.toml");
        std::fs::write(&path, include_str!("../../../../configs/migrate.toml")).unwrap();
        path
    })
}

/// A finished dbops process as (exit code, stdout, stderr).
pub fn outcome(output: std::process::Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
