//! The error type of the `docgen` crate.

use std::path::PathBuf;

/// Everything that stops docs generation or validation. Differences between
/// the docs and the database are not errors but [`crate::Finding`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Introspection or the classification map failed.
    #[error(transparent)]
    Catalog(#[from] catalog::Error),
    /// A docs file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// `reading` or `writing`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The dictionary has no embedded model block.
    #[error("the dictionary has no embedded model (a `<!-- dbops:model ... -->` block)")]
    NoEmbeddedModel,
    /// The embedded model is not valid JSON for this version.
    #[error("the dictionary's embedded model cannot be read")]
    EmbeddedModel(#[source] serde_json::Error),
    /// The embedded model was written by an incompatible version.
    #[error(
        "the dictionary's embedded model has format {found}; this dbops reads format {expected}"
    )]
    EmbeddedModelFormat {
        /// The format in the file.
        found: u32,
        /// The format this version writes.
        expected: u32,
    },
    /// The query looking for rows that violate a foreign key failed.
    #[error("checking rows against foreign key `{constraint}`")]
    ForeignKeyCheck {
        /// `table.constraint`.
        constraint: String,
        /// The database error.
        #[source]
        source: tokio_postgres::Error,
    },
}
