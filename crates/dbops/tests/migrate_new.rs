//! `dbops migrate new`: a pair of files from templates, with a version that
//! never collides and never lands out of order, and a slug checked first.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

mod support;

fn new(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::cargo_bin("dbops")
        .unwrap()
        .env("DBOPS_CONFIG", support::standalone_config())
        .args(["migrate", "new"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn new_writes_a_pair_that_is_refused_until_written_and_never_collides() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = new(dir.path(), &["add_widgets"]);
    assert_eq!(code, 0, "{stderr}");
    let paths: Vec<&str> = stdout.lines().collect();
    assert_eq!(paths.len(), 2, "{stdout}");
    assert!(paths[0].ends_with("_add_widgets.up.sql"), "{stdout}");
    assert!(paths[1].ends_with("_add_widgets.down.sql"), "{stdout}");

    let (code, stdout, stderr) = new(dir.path(), &["add_widgets_idx", "--no-transaction"]);
    assert_eq!(code, 0, "{stderr}");
    let up = std::fs::read_to_string(stdout.lines().next().unwrap()).unwrap();
    assert!(up.starts_with("-- dbops:no-transaction\n"), "{up}");
    let mut versions: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy()[..12].to_string())
        .collect();
    versions.sort();
    versions.dedup();
    assert_eq!(
        versions.len(),
        2,
        "two versions, one per migration: {versions:?}"
    );

    // Until the templates hold SQL, the folder is refused (exit 4), naming the file.
    let output = Command::cargo_bin("dbops")
        .unwrap()
        .env("DBOPS_CONFIG", support::standalone_config())
        .env("DB_URL", "postgres://nobody@127.0.0.1:1/none")
        .args(["migrate", "status", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("_add_widgets.up.sql: has no SQL statement"),
        "{stderr}"
    );
}

#[test]
fn a_bad_slug_is_a_usage_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = new(dir.path(), &["Add-Widgets"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("slug"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
