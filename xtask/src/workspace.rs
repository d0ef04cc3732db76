//! Where things are in the workspace, and building the `dbops` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, cmd};

/// The workspace root (the folder holding `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits in the workspace root")
        .to_path_buf()
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// A `cargo` command run in the workspace root, with the cargo that runs us.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// The profile to build `dbops` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// The dev profile, shared with `cargo test`: for smoke runs and CI.
    Dev,
    /// The release profile: for benchmarks.
    Release,
}

/// Builds the `dbops` binary and returns its path.
pub fn build_dbops(profile: Profile) -> Result<PathBuf> {
    let mut build = cargo();
    build.args(["build", "--package", "dbops", "--bin", "dbops"]);
    let dir = match profile {
        Profile::Dev => "debug",
        Profile::Release => {
            build.arg("--release");
            "release"
        }
    };
    cmd::run(&mut build)?;
    let binary = target_dir().join(dir).join("dbops");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("cargo built dbops but {} is not there", binary.display()).into())
    }
}
