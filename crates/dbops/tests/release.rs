//! What an installed binary offers besides its commands: `--version` with the
//! commit, shell completions and the man page. None of them reads a
//! configuration file, so they work from any directory.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

/// Runs dbops in an empty directory and returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let empty = tempfile::tempdir().unwrap();
    let output = Command::cargo_bin("dbops")
        .unwrap()
        .current_dir(empty.path())
        .env_remove("DBOPS_CONFIG")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn version_names_the_commit() {
    let (code, stdout, stderr) = run(&["--version"]);
    assert_eq!(code, 0, "{stderr}");
    let rest = stdout
        .trim()
        .strip_prefix(concat!("dbops ", env!("CARGO_PKG_VERSION"), " ("))
        .unwrap_or_else(|| panic!("{stdout}"));
    let commit = rest.strip_suffix(')').unwrap_or_else(|| panic!("{stdout}"));
    // The tests run in a checkout, so the build found a commit, and it is one
    // of this repository's (others may have committed since the build).
    assert!(
        commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{stdout}"
    );
    let known = Command::new("git")
        .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(
        known.success(),
        "{commit} is not a commit of this repository"
    );
}

#[test]
fn completions_cover_every_shell_and_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (code, stdout, stderr) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        for word in ["dbops", "migrate", "health", "completions", "config"] {
            assert!(stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    let (code, _, stderr) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("possible values"), "{stderr}");
}

#[test]
fn man_prints_a_roff_page() {
    let (code, stdout, stderr) = run(&["man"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(".TH dbops 1"), "{stdout}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS", ".SH VERSION"] {
        assert!(stdout.contains(section), "the man page lacks {section}");
    }
    assert!(stdout.contains("migrate"), "{stdout}");
}
