//! Python tools for `cargo xtask ci`, each installed from PyPI into a
//! virtualenv of its own under `target/`.

use std::path::PathBuf;
use std::process::Command;

use crate::{Result, cmd, workspace};

/// `target/NAME/bin/PROGRAM`, installing `wheel` into the virtualenv
/// `target/NAME` first when the program is not there yet.
pub fn install(name: &str, wheel: &str, program: &str) -> Result<PathBuf> {
    let venv = workspace::target_dir().join(name);
    let installed = venv.join("bin").join(program);
    let marker = venv.join(format!("installed-{wheel}"));
    if installed.is_file() && marker.is_file() {
        return Ok(installed);
    }
    eprintln!("ci: installing {wheel} into {}", venv.display());
    cmd::output(Command::new("python3").arg("-m").arg("venv").arg(&venv)).map_err(|e| {
        format!(
            "{e}\n(creating a virtualenv needs Python's venv module: apt-get install python3-venv)"
        )
    })?;
    cmd::output(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", wheel])
            .env("PIP_NO_INPUT", "1"),
    )?;
    if !installed.is_file() {
        return Err(format!(
            "{wheel} installed, but {} is not there",
            installed.display()
        )
        .into());
    }
    std::fs::write(&marker, "").map_err(|e| format!("writing {}: {e}", marker.display()))?;
    Ok(installed)
}
