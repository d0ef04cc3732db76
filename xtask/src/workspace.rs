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

/// How to build `dbops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// `cargo build -p dbops`: the least to build for a run on its own.
    #[default]
    Dev,
    /// The binary of `cargo test --workspace`'s build. That build unifies
    /// features over the whole workspace and its dev-dependencies, so after
    /// the tests have run this costs nothing, where `cargo build -p dbops`
    /// would compile some thirty crates again with other features.
    Test,
    /// The release profile: for benchmarks.
    Release,
}

/// Builds the `dbops` binary and returns its path.
pub fn build_dbops(profile: Profile) -> Result<PathBuf> {
    let mut build = cargo();
    let dir = match profile {
        Profile::Dev => {
            build.args(["build", "--package", "dbops", "--bin", "dbops"]);
            "debug"
        }
        // Building the integration tests of `dbops` builds the binary too,
        // and cargo links it as target/debug/dbops even when it is fresh.
        Profile::Test => {
            build.args(["test", "--workspace", "--no-run"]);
            "debug"
        }
        Profile::Release => {
            build.args(["build", "--package", "dbops", "--bin", "dbops", "--release"]);
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
