//! The lint baseline: findings accepted once, recorded by rule and file checksum, so that only
//! new findings block (as detekt's and PHPStan's baselines do).
//!
//! A history written before dbops, or before a rule existed, has findings no one will fix: the
//! migrations are applied everywhere and editing them would change their checksums. Recorded in
//! the baseline, they stop blocking a run that applies them (a fresh or rebuilt database), while a
//! new migration with the same problem still does. An entry counts the findings of one rule in a
//! file with one content: edit the file and its entries no longer match; more findings of that
//! rule than recorded, and the extra ones are new. Findings of the live database (`--db`) are
//! never baselined.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::violation::Violation;

/// The first lines of a baseline file.
const HEADER: &str = "\
# Accepted lint findings, written by `dbops lint --update-baseline`: do not edit by hand.
# Each entry accepts `count` findings of `rule` in a file whose content has `checksum`
# (SHA-256 of the text the linter reads); `file` is for people. An edited file loses its entries.
";

/// Accepted findings, by rule ID and file checksum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    entries: BTreeMap<(String, String), Accepted>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Accepted {
    file: String,
    count: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    #[serde(default)]
    accepted: Vec<RawEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    file: String,
    rule: String,
    checksum: String,
    count: usize,
}

/// Findings split by a [`Baseline`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baselined {
    /// Findings the baseline does not accept: these are reported and can fail a run.
    pub new: Vec<Violation>,
    /// Findings the baseline accepts.
    pub accepted: Vec<Violation>,
}

impl Baseline {
    /// Reads a baseline file; a file that does not exist is an empty baseline.
    pub fn load(path: &Path) -> Result<Baseline, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Baseline::parse(&text, path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Baseline::default()),
            Err(source) => Err(Error::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Parses a baseline file's text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Baseline, Error> {
        let raw: RawBaseline = toml::from_str(text).map_err(|source| Error::Baseline {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let mut baseline = Baseline::default();
        for entry in raw.accepted {
            baseline.add(entry.rule, entry.checksum, entry.file, entry.count);
        }
        Ok(baseline)
    }

    /// The baseline that accepts every finding of `violations` located in one
    /// of `files` (path and text, as given to the linter). File names are
    /// written relative to `root` when they are under it.
    pub fn record(violations: &[Violation], files: &[(PathBuf, String)], root: &Path) -> Baseline {
        let checksums = Checksums::new(files);
        let mut baseline = Baseline::default();
        for violation in violations {
            let Some((path, checksum)) = checksums.of(violation) else {
                continue;
            };
            let file = path.strip_prefix(root).unwrap_or(path);
            baseline.add(
                violation.rule.to_owned(),
                checksum,
                file.to_string_lossy().replace('\\', "/"),
                1,
            );
        }
        baseline
    }

    /// Splits findings into those the baseline accepts and the new ones.
    /// `files` are the linted files' paths and texts.
    pub fn apply(&self, violations: Vec<Violation>, files: &[(PathBuf, String)]) -> Baselined {
        let checksums = Checksums::new(files);
        let mut left: HashMap<(&str, String), usize> = HashMap::new();
        let mut split = Baselined::default();
        for violation in violations {
            let accepted = checksums.of(&violation).is_some_and(|(_, checksum)| {
                let key = (violation.rule, checksum);
                let count = left.entry(key).or_insert_with_key(|(rule, checksum)| {
                    self.entries
                        .get(&((*rule).to_owned(), checksum.clone()))
                        .map_or(0, |a| a.count)
                });
                let accepted = *count > 0;
                *count = count.saturating_sub(1);
                accepted
            });
            if accepted {
                split.accepted.push(violation);
            } else {
                split.new.push(violation);
            }
        }
        split
    }

    /// The file's text: sorted by file, rule and checksum, one entry per
    /// rule and file content, so that a change shows as a small diff.
    pub fn to_toml(&self) -> String {
        let mut entries: Vec<RawEntry> = self
            .entries
            .iter()
            .map(|((rule, checksum), accepted)| RawEntry {
                file: accepted.file.clone(),
                rule: rule.clone(),
                checksum: checksum.clone(),
                count: accepted.count,
            })
            .collect();
        entries
            .sort_by(|a, b| (&a.file, &a.rule, &a.checksum).cmp(&(&b.file, &b.rule, &b.checksum)));
        let body = toml::to_string(&RawBaseline { accepted: entries })
            .expect("a baseline serializes to TOML");
        format!("{HEADER}\n{body}")
    }

    /// How many findings the baseline accepts in all.
    pub fn len(&self) -> usize {
        self.entries.values().map(|a| a.count).sum()
    }

    /// Whether the baseline accepts nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The checksum a file's entries are keyed by: SHA-256 of the text the
    /// linter reads (line endings as `\n`, a bulk `INSERT` by its first row,
    /// as `migrate_core::split::without_bulk_rows` leaves it, since no rule
    /// reads the others), in hex. The same whether given the file as written
    /// or as the migration engine hands it to the linter.
    pub fn checksum(text: &str) -> String {
        let lean = migrate_core::split::without_bulk_rows(text);
        let normalized = lean.replace("\r\n", "\n");
        hex::encode(Sha256::digest(normalized.as_bytes()))
    }

    fn add(&mut self, rule: String, checksum: String, file: String, count: usize) {
        self.entries
            .entry((rule, checksum))
            .and_modify(|a| a.count += count)
            .or_insert(Accepted { file, count });
    }
}

/// The linted files' checksums, computed once per file that has a finding.
struct Checksums<'a> {
    texts: HashMap<&'a Path, &'a str>,
    computed: std::cell::RefCell<HashMap<&'a Path, String>>,
}

impl<'a> Checksums<'a> {
    fn new(files: &'a [(PathBuf, String)]) -> Checksums<'a> {
        Checksums {
            texts: files
                .iter()
                .map(|(path, text)| (path.as_path(), text.as_str()))
                .collect(),
            computed: Default::default(),
        }
    }

    /// The file a finding is in, and its checksum; `None` for a finding outside the files.
    fn of(&self, violation: &Violation) -> Option<(&'a Path, String)> {
        let path = violation.location.path()?;
        let (&path, &text) = self.texts.get_key_value(path)?;
        let checksum = self
            .computed
            .borrow_mut()
            .entry(path)
            .or_insert_with(|| Baseline::checksum(text))
            .clone();
        Some((path, checksum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(files: &[(PathBuf, String)]) -> Vec<Violation> {
        crate::engine::lint_sources(
            files.to_vec(),
            &crate::Config::default(),
            crate::rules::test_support::NOW,
        )
    }

    fn files(up: &str) -> Vec<(PathBuf, String)> {
        vec![
            (PathBuf::from("m/202601010000_a.up.sql"), up.to_owned()),
            (
                PathBuf::from("m/202601010000_a.down.sql"),
                "SELECT 1;".to_owned(),
            ),
        ]
    }

    #[test]
    fn accepts_recorded_findings_until_the_file_changes() {
        let old = files(
            "CREATE INDEX users_email_idx ON users (email);\nALTER TABLE users DROP COLUMN nickname;\n",
        );
        let findings = lint(&old);
        assert_eq!(findings.len(), 2, "{findings:?}");
        let baseline = Baseline::record(&findings, &old, Path::new("m"));
        expect_test::expect![[r##"
            # Accepted lint findings, written by `dbops lint --update-baseline`: do not edit by hand.
            # Each entry accepts `count` findings of `rule` in a file whose content has `checksum`
            # (SHA-256 of the text the linter reads); `file` is for people. An edited file loses its entries.

            [[accepted]]
            file = "202601010000_a.up.sql"
            rule = "drop-column"
            checksum = "5f254db522ed991cbe0464d868c25ec2253c96ae6208d8cdcec539efec675e49"
            count = 1

            [[accepted]]
            file = "202601010000_a.up.sql"
            rule = "index-without-concurrently"
            checksum = "5f254db522ed991cbe0464d868c25ec2253c96ae6208d8cdcec539efec675e49"
            count = 1
        "##]]
        .assert_eq(&baseline.to_toml());
        let reread = Baseline::parse(&baseline.to_toml(), Path::new("b.toml")).unwrap();
        assert_eq!(reread, baseline);
        assert_eq!(reread.len(), 2);

        let split = reread.apply(findings, &old);
        assert_eq!((split.new.len(), split.accepted.len()), (0, 2));

        // The same file, edited: its entries no longer match.
        let edited = files(
            "CREATE INDEX users_email_idx ON users (email);\nALTER TABLE users DROP COLUMN nickname; -- gone\n",
        );
        let split = reread.apply(lint(&edited), &edited);
        assert_eq!((split.new.len(), split.accepted.len()), (2, 0));
    }

    #[test]
    fn more_findings_than_recorded_are_new() {
        let one = files("CREATE INDEX a_idx ON users (email);\n");
        let baseline = Baseline::record(&lint(&one), &one, Path::new(""));
        // Another file with the same content is accepted by the same entry,
        // but only as many times as recorded.
        let mut two = one.clone();
        two.push((PathBuf::from("m/202601020000_b.up.sql"), one[0].1.clone()));
        two.push((
            PathBuf::from("m/202601020000_b.down.sql"),
            "SELECT 1;".to_owned(),
        ));
        let split = baseline.apply(lint(&two), &two);
        assert_eq!((split.new.len(), split.accepted.len()), (1, 1), "{split:?}");
        assert_eq!(
            split.new[0].location.path(),
            Some(Path::new("m/202601020000_b.up.sql"))
        );
    }

    #[test]
    fn checksum_ignores_line_endings_and_bulk_rows() {
        let text = "INSERT INTO plans (name) VALUES ('a'), ('b'), ('c');\n";
        assert_eq!(
            Baseline::checksum(text),
            Baseline::checksum(&migrate_core::split::without_bulk_rows(text))
        );
        assert_eq!(
            Baseline::checksum("SELECT 1;\r\n"),
            Baseline::checksum("SELECT 1;\n")
        );
        assert_ne!(
            Baseline::checksum("SELECT 1;"),
            Baseline::checksum("SELECT 2;")
        );
    }

    #[test]
    fn missing_file_is_empty_and_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Baseline::load(&dir.path().join("none.toml")).unwrap();
        assert!(missing.is_empty());
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[[accepted]]\nrule = \"drop-column\"\n").unwrap();
        let error = Baseline::load(&bad).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}: invalid lint baseline", bad.display())
        );
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        assert!(
            cause.is_some_and(|c| c.contains("missing field")),
            "bad baseline cause"
        );
    }
}
