//! Records the git commit dbops is built from, for `dbops --version`:
//! `git rev-parse --short HEAD`, or "unknown" outside a checkout.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=DBOPS_GIT_COMMIT={commit}");
    println!("cargo::rerun-if-changed=build.rs");
    // Build again when HEAD moves: a checkout changes HEAD, a commit changes
    // the branch HEAD points to (a loose ref, or packed-refs).
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        println!("cargo::rerun-if-changed={}", git_dir.join("HEAD").display());
    }
    if let Some(common_dir) = git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from) {
        println!(
            "cargo::rerun-if-changed={}",
            common_dir.join("packed-refs").display()
        );
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!(
                "cargo::rerun-if-changed={}",
                common_dir.join(branch).display()
            );
        }
    }
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
