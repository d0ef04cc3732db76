//! Records the git commit dbops is built from, for `dbops --version`:
//! `git rev-parse --short HEAD`, or "unknown" outside a checkout.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=DBOPS_GIT_COMMIT={commit}");
    println!("cargo::rerun-if-changed=build.rs");
    // Build again when HEAD moves: a checkout changes HEAD, a commit changes
    // the branch HEAD points to (a loose ref under refs/heads, or
    // packed-refs). The folder is found without git, so that a build during
    // which git could not answer (a lock, say) is redone once it can.
    if let Some(git_dir) = git_dir(Path::new(env!("CARGO_MANIFEST_DIR"))) {
        // Only paths that exist: cargo reruns a build script on every build
        // while a path it watches is missing.
        for watched in ["HEAD", "packed-refs", "refs/heads"] {
            let path = git_dir.join(watched);
            if path.exists() {
                println!("cargo::rerun-if-changed={}", path.display());
            }
        }
    }
}

/// The `.git` folder of the checkout holding `start`, if it is one (a
/// worktree's `.git` file is left alone: its HEAD lives elsewhere).
fn git_dir(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(".git"))
        .find(|candidate| candidate.exists())
        .filter(|candidate| candidate.is_dir())
}

/// The trimmed output of a successful git command, run from this crate's folder.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
