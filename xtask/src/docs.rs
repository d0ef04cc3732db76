//! `cargo xtask docs [--check]`: regenerates the generated documentation with
//! `dbops docs generate` against a freshly migrated database. With `--check`
//! it fails when that changed any file under `docs/`, which is how CI keeps
//! the generated files current.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::flags::Args;
use crate::pg::{self, psql};
use crate::workspace::{self, Profile};
use crate::{Result, cmd};

/// `cargo xtask docs [--check]`.
pub fn task(args: &mut Args) -> Result {
    let check = args.flag("--check");
    args.finish()?;
    let server = pg::ensure()?;
    let dbops = workspace::build_dbops(Profile::Dev)?;
    let docs = workspace::root().join("docs");
    let before = snapshot(&docs)?;

    let db = psql::create_fresh_database(&server, "xtask_docs")?;
    let dbops_in_db = |args: &[&str]| {
        cmd::run(
            std::process::Command::new(&dbops)
                .current_dir(workspace::root())
                .env(pg::URL_ENV, db.as_str())
                .env("ANALYTICS_URL", db.as_str())
                .args(args),
        )
    };
    dbops_in_db(&["migrate", "up", "--target", "all"])?;
    dbops_in_db(&["docs", "generate"])?;
    psql::drop_database(&server, psql::database_name(&db))?;

    let changed = changes(&before, &snapshot(&docs)?);
    if changed.is_empty() {
        eprintln!("docs: generated docs are current");
    } else if check {
        return Err(format!(
            "generated docs were out of date; `cargo xtask docs` rewrote:\n  {}\ncommit them",
            changed.join("\n  ")
        )
        .into());
    } else {
        eprintln!("docs: regenerated:\n  {}", changed.join("\n  "));
    }
    Ok(())
}

/// Every file under `dir` and its contents.
fn snapshot(dir: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let contents =
                    std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                files.insert(path, contents);
            }
        }
    }
    Ok(files)
}

/// Files added, changed or removed between two snapshots.
fn changes(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    let root = workspace::root();
    let name = |path: &PathBuf| {
        path.strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(path, contents)| before.get(*path) != Some(contents))
        .map(|(path, _)| name(path))
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|path| !after.contains_key(*path))
            .map(|path| name(path) + " (removed)"),
    );
    changed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    #[test]
    fn changes_lists_added_changed_and_removed_files() {
        let files = |list: &[(&str, &str)]| -> BTreeMap<PathBuf, Vec<u8>> {
            list.iter()
                .map(|(p, c)| (PathBuf::from(p), c.as_bytes().to_vec()))
                .collect()
        };
        let before = files(&[("a.md", "1"), ("b.md", "2"), ("c.md", "3")]);
        let after = files(&[("a.md", "1"), ("b.md", "two"), ("d.md", "4")]);
        assert_eq!(
            super::changes(&before, &after),
            ["b.md", "d.md", "c.md (removed)"]
        );
    }
}
