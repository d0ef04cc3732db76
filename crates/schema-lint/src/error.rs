//! The crate's error type: what stops the linter from running at all (findings are not errors).

use std::path::PathBuf;

/// Why linting could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path at fault.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `configs/lint.toml` is not valid.
    #[error("{}: invalid settings", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The TOML error, with line and column.
        source: Box<toml::de::Error>,
    },
    /// The lint baseline file is not valid.
    #[error("{}: invalid lint baseline", path.display())]
    Baseline {
        /// The baseline file.
        path: PathBuf,
        /// The TOML error, with line and column.
        source: Box<toml::de::Error>,
    },
    /// `configs/lint.toml` sets the level of a rule that does not exist.
    #[error("{}: unknown rule `{rule}` in [rules]", path.display())]
    UnknownRule {
        /// The config file.
        path: PathBuf,
        /// The unknown rule ID.
        rule: String,
    },
    /// The data-classification map named by the config is not valid.
    #[error("{}: cannot load the data-classification map", path.display())]
    Classification {
        /// The map's path.
        path: PathBuf,
        /// The catalog crate's error.
        source: catalog::Error,
    },
}
