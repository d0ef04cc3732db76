//! Finding the installed PostgreSQL programs.
//!
//! Server programs come from one folder, searched in this order:
//! `pg_config --bindir`, `/usr/lib/postgresql/<newest major>/bin`, then the
//! folders of `PATH` (following a symlinked `pg_ctl` to its real folder).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// The folder holding `initdb`, `pg_ctl` and `postgres`.
pub fn server_dir() -> Result<PathBuf> {
    candidate_dirs()
        .into_iter()
        .find(|dir| {
            SERVER_PROGRAMS
                .iter()
                .all(|program| dir.join(program).is_file())
        })
        .ok_or_else(|| {
            "no PostgreSQL server programs (initdb, pg_ctl, postgres) found through \
             `pg_config --bindir`, in /usr/lib/postgresql/*/bin or on PATH: install \
             PostgreSQL (Debian: apt-get install postgresql) or set DB_URL"
                .into()
        })
}

/// A client program such as `psql`: from `PATH` when it is there, otherwise
/// from the server's folder.
pub fn client(program: &str) -> PathBuf {
    if crate::cmd::on_path(program) {
        return PathBuf::from(program);
    }
    candidate_dirs()
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        dirs.push(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ));
    }
    dirs.extend(debian_dirs(Path::new("/usr/lib/postgresql")));
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            match std::fs::canonicalize(dir.join("pg_ctl")) {
                Ok(real) => dirs.extend(real.parent().map(Path::to_path_buf)),
                Err(_) => dirs.push(dir),
            }
        }
    }
    dirs
}

/// `<root>/<major>/bin`, newest major first.
fn debian_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn debian_folders_come_newest_major_first() {
        let root = std::env::temp_dir().join(format!("xtask-pg-bin-{}", std::process::id()));
        for version in ["9.6", "15", "17", "common"] {
            std::fs::create_dir_all(root.join(version).join("bin")).unwrap();
        }
        let dirs = super::debian_dirs(&root);
        std::fs::remove_dir_all(&root).unwrap();
        let names: Vec<_> = dirs
            .iter()
            .map(|d| d.strip_prefix(&root).unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            ["17/bin", "15/bin", "9.6/bin"].map(std::path::PathBuf::from)
        );
    }
}
