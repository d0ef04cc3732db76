//! What `dbops docs validate` reports: one finding per difference or unenforced foreign key, as data.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing validation found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind of problem.
    pub kind: FindingKind,
    /// The object, as it is written in messages: ``column `api_keys.revoked_at` ``.
    pub subject: String,
    /// What is wrong, e.g. `nullable in the database, NOT NULL in the dictionary`.
    pub message: String,
}

impl Finding {
    pub(crate) fn new(
        kind: FindingKind,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            kind,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// The kinds of [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// The docs describe an object the database does not have.
    NotInDatabase,
    /// The database has an object the docs do not describe.
    NotInDocs,
    /// An object differs between the database and the docs.
    Changed,
    /// A generated file is missing, unreadable or was edited by hand.
    DocsFile,
    /// The data-classification map and the database disagree.
    Classification,
    /// A foreign key was added `NOT VALID` and never validated.
    ForeignKeyNotValidated,
    /// A trigger enforcing a foreign key is disabled.
    ForeignKeyTriggersDisabled,
    /// Existing rows violate a foreign key.
    ForeignKeyViolated,
}

impl FindingKind {
    /// Whether `dbops docs generate` (or `validate --fix`) makes this finding
    /// go away; the others need a change to the database or the map.
    pub fn fixed_by_regenerating(self) -> bool {
        matches!(
            self,
            FindingKind::NotInDatabase
                | FindingKind::NotInDocs
                | FindingKind::Changed
                | FindingKind::DocsFile
        )
    }
}
