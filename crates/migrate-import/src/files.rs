//! Reading a tool's folder: its entries, the notes that may sit among
//! migrations, and versions as numbers.

use std::path::{Path, PathBuf};

use crate::Error;

/// The entries of `dir`, sorted by name; with `recursive`, the files of its
/// subfolders too (refinery and Flyway look there).
pub(crate) fn entries(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, Error> {
    let read = std::fs::read_dir(dir).map_err(|source| Error::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in read {
        let path = entry
            .map_err(|source| Error::ReadDir {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if recursive && path.is_dir() && !is_note(&path) {
            paths.extend(entries(&path, true)?);
        } else {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// The entries of `dir` that may be migrations (not notes), with their
/// file names.
pub(crate) fn candidates(dir: &Path, recursive: bool) -> Result<Vec<(PathBuf, String)>, Error> {
    Ok(entries(dir, recursive)?
        .into_iter()
        .filter(|path| !is_note(path))
        .map(|path| {
            let name = file_name(&path).to_string();
            (path, name)
        })
        .collect())
}

/// Whether an entry is a note, a hidden file or Atlas's checksum file
/// (`atlas.sum`, which Atlas writes beside the golang-migrate, goose, Flyway
/// and dbmate folders it generates): no tool runs them.
pub(crate) fn is_note(path: &Path) -> bool {
    let name = file_name(path).to_ascii_lowercase();
    name.starts_with('.')
        || name.ends_with(".md")
        || name.ends_with(".txt")
        || name == "readme"
        || name == "license"
        || name == "atlas.sum"
}

/// The file name, or `""`.
pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default()
}

/// Reads a file as text, line endings normalized as dbops reads migrations.
pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|text| migrate_core::source::normalize(&text))
        .map_err(|source| Error::ReadFile {
            path: path.to_path_buf(),
            source,
        })
}

/// A version as numbers: `20240101120000` -> `[20240101120000]`, Flyway's
/// `1.2.10` -> `[1, 2, 10]`, diesel's `2024-01-01-120000` -> one number;
/// `None` when it is not digits (and dots).
pub(crate) fn version_key(version: &str) -> Option<Vec<u64>> {
    let digits = version.replace('-', "");
    digits
        .split('.')
        .map(|part| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                part.parse().ok()
            }
        })
        .collect()
}

/// `digits_rest` split at the first `_` when what comes before is digits.
pub(crate) fn split_version(stem: &str) -> Option<(&str, &str)> {
    let (version, rest) = stem.split_once('_')?;
    (!version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())).then_some((version, rest))
}

/// A numeric version without its leading zeros, as tools that store it as
/// a number record it (`00012` -> `12`).
pub(crate) fn as_number(version: &str) -> String {
    let trimmed = version.trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }.to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{is_note, version_key};

    #[test]
    fn notes_checksums_and_hidden_files_are_not_migrations() {
        for name in ["README.md", "notes.txt", ".gitkeep", "LICENSE", "atlas.sum"] {
            assert!(is_note(Path::new(name)), "{name}");
        }
        for name in [
            "1_init.up.sql",
            "V1__init.sql",
            "20240101_x.sql",
            "atlas.sql",
        ] {
            assert!(!is_note(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn versions_are_read_as_numbers() {
        assert_eq!(version_key("000012"), Some(vec![12]));
        assert_eq!(version_key("1.2.10"), Some(vec![1, 2, 10]));
        assert_eq!(version_key("2024-01-01-120000"), Some(vec![20240101120000]));
        assert_eq!(version_key("1.x"), None);
        assert_eq!(version_key(""), None);
        assert_eq!(version_key("99999999999999999999999"), None);
    }
}
