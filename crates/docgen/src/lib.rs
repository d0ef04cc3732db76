//! The data dictionary and ER diagram generated from the live schema, and their structural validation against it.
//!
//! [`generate`] introspects the database (through the `catalog` crate), joins
//! the data-classification map, and writes `docs/dictionary.md` and
//! `docs/erd/schema.puml`. [`validate`] reads the model embedded in the
//! committed dictionary back, compares it with the database object by
//! object, checks that the generated files were not edited by hand, and that
//! every foreign key is enforced. Rendering is pure ([`render`]): the same
//! schema gives byte-identical files.
#![warn(missing_docs)]

pub mod compare;
pub mod dictionary;
pub mod enforcement;
pub mod erd;
mod error;
mod finding;
mod mermaid;
pub mod model;

use std::path::{Path, PathBuf};

use catalog::classification::{ClassificationGap, ClassificationMap};
use catalog::introspect::{IntrospectOptions, introspect};
use catalog::model::Schema;
use tokio_postgres::Client;
use tracing::{info, instrument};

pub use error::Error;
pub use finding::{Finding, FindingKind};
use model::DocModel;

/// Where the docs and the classification map live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The docs folder: the dictionary is `<docs_dir>/dictionary.md`, the
    /// diagram `<docs_dir>/erd/schema.puml`.
    pub docs_dir: PathBuf,
    /// The data-classification map.
    pub classification_map: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            docs_dir: PathBuf::from("docs"),
            classification_map: PathBuf::from("configs/data-classification.toml"),
        }
    }
}

/// A database to document and the schemas to read from it. The platform's
/// operational schema (`public`) and its analytics schema may live in one
/// database or in two; the docs cover them together.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// A connection to the database.
    pub client: &'a Client,
    /// The schemas to read from it.
    pub options: &'a IntrospectOptions,
}

impl Config {
    /// `<docs_dir>/dictionary.md`.
    pub fn dictionary_path(&self) -> PathBuf {
        self.docs_dir.join("dictionary.md")
    }

    /// `<docs_dir>/erd/schema.puml`.
    pub fn erd_path(&self) -> PathBuf {
        self.docs_dir.join("erd").join("schema.puml")
    }
}

/// The generated files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedDocs {
    /// `docs/dictionary.md`.
    pub dictionary: String,
    /// `docs/erd/schema.puml`.
    pub erd: String,
}

/// Renders both files from a documented model.
pub fn render(model: &DocModel) -> RenderedDocs {
    RenderedDocs {
        dictionary: dictionary::render(model),
        erd: erd::render(model),
    }
}

/// What [`generate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Files whose contents changed (or that were created).
    pub written: Vec<PathBuf>,
    /// Files that were already current.
    pub unchanged: Vec<PathBuf>,
    /// Where the data-classification map and the database disagree; the
    /// dictionary marks such columns **unclassified**.
    pub classification_gaps: Vec<ClassificationGap>,
}

/// The live schema of every source as one, with the classification map
/// joined on, and where the map and the databases disagree.
#[instrument(skip_all)]
pub async fn classified_schema(
    sources: &[Source<'_>],
    config: &Config,
) -> Result<(Schema, Vec<ClassificationGap>), Error> {
    let per_source = introspect_each(sources).await?;
    classify(&per_source, config)
}

/// Each source's schema, in source order.
async fn introspect_each(sources: &[Source<'_>]) -> Result<Vec<Schema>, Error> {
    let mut schemas = Vec::with_capacity(sources.len());
    for source in sources {
        schemas.push(introspect(source.client, source.options).await?);
    }
    Ok(schemas)
}

/// The sources' schemas as one, with the classification map joined on.
fn classify(
    per_source: &[Schema],
    config: &Config,
) -> Result<(Schema, Vec<ClassificationGap>), Error> {
    let map = ClassificationMap::load(&config.classification_map)?;
    let mut schema = Schema {
        tables: per_source
            .iter()
            .flat_map(|s| s.tables.iter().cloned())
            .collect(),
    };
    schema.sort();
    let gaps = map.apply(&mut schema);
    Ok((schema, gaps))
}

/// Introspects the database and writes the dictionary and the diagram.
#[instrument(skip_all, fields(docs_dir = %config.docs_dir.display()))]
pub async fn generate(sources: &[Source<'_>], config: &Config) -> Result<Generated, Error> {
    let (schema, classification_gaps) = classified_schema(sources, config).await?;
    let rendered = render(&DocModel::from_schema(&schema));
    let mut generated = Generated {
        written: Vec::new(),
        unchanged: Vec::new(),
        classification_gaps,
    };
    for (path, contents) in [
        (config.dictionary_path(), &rendered.dictionary),
        (config.erd_path(), &rendered.erd),
    ] {
        if write_if_changed(&path, contents)? {
            info!(path = %path.display(), "wrote");
            generated.written.push(path);
        } else {
            generated.unchanged.push(path);
        }
    }
    Ok(generated)
}

/// Compares the committed docs with the database and checks every foreign
/// key. An empty result means the docs are current and the keys enforced.
#[instrument(skip_all, fields(docs_dir = %config.docs_dir.display()))]
pub async fn validate(sources: &[Source<'_>], config: &Config) -> Result<Vec<Finding>, Error> {
    let per_source = introspect_each(sources).await?;
    let (schema, gaps) = classify(&per_source, config)?;
    let mut findings: Vec<Finding> = gaps.iter().map(classification_finding).collect();
    findings.extend(validate_files(config, &DocModel::from_schema(&schema))?);
    // Each database checks its own keys: a foreign key never crosses databases.
    for (source, own) in sources.iter().zip(&per_source) {
        findings.extend(enforcement::check_foreign_keys(source.client, own).await?);
    }
    Ok(findings)
}

/// Compares the committed files with a live model: the structural
/// differences, then whether each file is exactly what its model renders to.
pub fn validate_files(config: &Config, live: &DocModel) -> Result<Vec<Finding>, Error> {
    let dictionary_path = config.dictionary_path();
    let subject = |path: &Path| format!("`{}`", path.display());
    let Some(text) = read_if_exists(&dictionary_path)? else {
        return Ok(vec![Finding::new(
            FindingKind::DocsFile,
            subject(&dictionary_path),
            "missing: run `dbops docs generate`",
        )]);
    };
    let documented = match dictionary::parse(&text) {
        Ok(model) => model,
        Err(e) => {
            return Ok(vec![Finding::new(
                FindingKind::DocsFile,
                subject(&dictionary_path),
                format!("{}; run `dbops docs generate`", with_cause(&e)),
            )]);
        }
    };
    let mut findings = compare::compare(live, &documented);
    let expected = render(&documented);
    if text != expected.dictionary {
        findings.push(Finding::new(
            FindingKind::DocsFile,
            subject(&dictionary_path),
            "edited by hand: its text is not what its embedded model renders to; run `dbops docs generate`",
        ));
    }
    let erd_path = config.erd_path();
    match read_if_exists(&erd_path)? {
        None => findings.push(Finding::new(FindingKind::DocsFile, subject(&erd_path), "missing: run `dbops docs generate`")),
        Some(erd) if erd != expected.erd => findings.push(Finding::new(
            FindingKind::DocsFile,
            subject(&erd_path),
            "does not match the dictionary (edited by hand or not regenerated): run `dbops docs generate`",
        )),
        Some(_) => {}
    }
    Ok(findings)
}

fn classification_finding(gap: &ClassificationGap) -> Finding {
    let (subject, message) = match gap {
        ClassificationGap::UnclassifiedColumn { table, column } => (
            format!("column `{table}.{column}`"),
            "not in the data-classification map",
        ),
        ClassificationGap::UnknownTable { table } => (
            format!("table `{table}`"),
            "in the data-classification map but not in the database",
        ),
        ClassificationGap::UnknownColumn { table, column } => (
            format!("column `{table}.{column}`"),
            "in the data-classification map but not in the database",
        ),
    };
    Finding::new(FindingKind::Classification, subject, message)
}

/// An error with its cause, on one line.
fn with_cause(error: &Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

fn read_if_exists(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `contents` unless the file already holds exactly that; true when written.
fn write_if_changed(path: &Path, contents: &str) -> Result<bool, Error> {
    if read_if_exists(path)?.as_deref() == Some(contents) {
        return Ok(false);
    }
    let io = |source| Error::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, contents).map_err(io)?;
    Ok(true)
}
