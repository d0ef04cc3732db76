//! The rules: one per file, each checking migration files, a schema model, the live database, or several of these.
//!
//! A rule implements [`Rule`]. Migration-file rules see one directory of
//! migrations in version order ([`MigrationSet`]); schema rules see a
//! [`SchemaView`], whose model was either replayed from the files or read
//! from the live database, and report through it so that a finding points at
//! the defining statement or at the live object; live rules see what only the
//! database knows ([`LiveView`]). The lock and rewrite safety rules are
//! squawk's, mapped to our IDs in [`squawk`].

use std::path::PathBuf;

use catalog::model::{Constraint, Index, Schema, Table};
use time::OffsetDateTime;

use crate::config::Config;
use crate::model::{FileSpan, ObjectKey, Origins};
use crate::source::Source;
use crate::violation::Severity;

mod changing_column_type;
mod classification_missing;
mod concurrently_in_transaction;
mod duplicate_index;
mod foreign_key_without_index;
mod future_partitions;
mod migration_edited_after_apply;
mod migration_file_name;
mod migration_missing_down;
mod migration_version_future;
mod migration_version_order;
mod naming_constraint;
mod naming_foreign_key;
mod naming_identifier;
mod naming_index;
mod naming_partition;
mod naming_primary_key;
mod naming_table;
mod naming_timestamp_column;
mod no_transaction_rerun;
mod partition_key_in_unique;
mod partitioned_index_on_only;
mod pii_retention;
mod plaintext_secret_column;
mod secret_hash_column;
pub(crate) mod squawk;
mod syntax_error;

#[cfg(test)]
pub(crate) mod test_support;

/// The family a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// File names, pairs, versions, history.
    MigrationHygiene,
    /// Locks and table rewrites (squawk's rules, mapped).
    LockSafety,
    /// The naming conventions of `docs/conventions.md`.
    Naming,
    /// Foreign key coverage, duplicate and redundant indexes.
    Indexes,
    /// Partitioned tables.
    Partitions,
    /// Data classification, secrets and personal data.
    SensitiveFields,
    /// The linter's own ignore comments.
    Ignores,
}

/// A rule's identity and defaults.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleInfo {
    /// The stable ID used in findings, ignore comments and `configs/lint.toml`.
    pub id: &'static str,
    /// The rule's family.
    pub family: Family,
    /// The severity unless `configs/lint.toml` says otherwise.
    pub severity: Severity,
    /// One sentence saying what the rule wants.
    pub summary: &'static str,
}

/// Ignore comments with no reason.
pub(crate) const IGNORE_WITHOUT_REASON: RuleInfo = RuleInfo {
    id: "ignore-without-reason",
    family: Family::Ignores,
    severity: Severity::Error,
    summary: "An ignore comment says why the finding does not apply.",
};

/// Ignore comments that suppress nothing.
pub(crate) const UNUSED_IGNORE: RuleInfo = RuleInfo {
    id: "unused-ignore",
    family: Family::Ignores,
    severity: Severity::Error,
    summary: "An ignore comment names a known rule and suppresses a finding of it.",
};

/// Every rule except squawk's mapped ones, in the order they run.
pub(crate) const RULES: &[&dyn Rule] = &[
    &syntax_error::SyntaxError,
    &migration_file_name::MigrationFileName,
    &migration_missing_down::MigrationMissingDown,
    &migration_version_order::MigrationVersionOrder,
    &migration_version_future::MigrationVersionFuture,
    &migration_edited_after_apply::MigrationEditedAfterApply,
    &concurrently_in_transaction::ConcurrentlyInTransaction,
    &no_transaction_rerun::NoTransactionRerun,
    &changing_column_type::ChangingColumnType,
    &naming_identifier::NamingIdentifier,
    &naming_table::NamingTable,
    &naming_timestamp_column::NamingTimestampColumn,
    &naming_primary_key::NamingPrimaryKey,
    &naming_foreign_key::NamingForeignKey,
    &naming_constraint::NamingConstraint,
    &naming_index::NamingIndex,
    &naming_partition::NamingPartition,
    &foreign_key_without_index::ForeignKeyWithoutIndex,
    &duplicate_index::DuplicateIndex,
    &partition_key_in_unique::PartitionKeyInUnique,
    &partitioned_index_on_only::PartitionedIndexOnOnly,
    &future_partitions::FuturePartitions,
    &classification_missing::ClassificationMissing,
    &secret_hash_column::SecretHashColumn,
    &plaintext_secret_column::PlaintextSecretColumn,
    &pii_retention::PiiRetention,
];

/// Every rule's description, squawk's mapped rules included.
pub fn all() -> impl Iterator<Item = &'static RuleInfo> {
    RULES
        .iter()
        .map(|rule| rule.info())
        .chain(squawk::RULES.iter().map(|mapping| mapping.info))
        .chain([&IGNORE_WITHOUT_REASON, &UNUSED_IGNORE])
}

/// The rule with this ID.
pub fn find(id: &str) -> Option<&'static RuleInfo> {
    all().find(|rule| rule.id == id)
}

/// A rule. Each check has a default that finds nothing, so a rule implements
/// the sides it can check.
pub(crate) trait Rule: Sync {
    fn info(&self) -> &'static RuleInfo;

    /// Checks one directory of migration files.
    fn check_migrations(&self, _set: &MigrationSet<'_>, _out: &mut Findings) {}

    /// Checks a schema model, replayed from files or read from the database.
    fn check_schema(&self, _view: &SchemaView<'_>, _out: &mut Findings) {}

    /// Checks what only the live database knows.
    fn check_live(&self, _live: &LiveView<'_>, _out: &mut Findings) {}
}

/// Where a finding points, before line numbers are computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum At {
    /// A byte range of file number `file` of the set.
    Span(FileSpan),
    /// A file of the set as a whole.
    File(usize),
    /// A path outside any set (a missing file).
    Path(PathBuf),
    /// A live database object.
    Object(String),
}

/// One finding before severities and ignores are applied.
#[derive(Debug)]
pub(crate) struct Finding {
    pub(crate) rule: &'static RuleInfo,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
    pub(crate) at: At,
}

/// What the rules report into.
#[derive(Debug, Default)]
pub(crate) struct Findings(pub(crate) Vec<Finding>);

impl Findings {
    pub(crate) fn report(
        &mut self,
        rule: &'static RuleInfo,
        at: At,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.0.push(Finding {
            rule,
            message: message.into(),
            help: None,
            at,
        });
        self.0.last_mut().expect("just pushed")
    }
}

impl Finding {
    pub(crate) fn help(&mut self, help: impl Into<String>) {
        self.help = Some(help.into());
    }
}

/// One directory of migration files, sorted by file name.
#[derive(Debug)]
pub(crate) struct MigrationSet<'a> {
    pub(crate) sources: &'a [Source],
    pub(crate) config: &'a Config,
    pub(crate) now: OffsetDateTime,
    /// The live database's schema, when linting against it: the columns the files change but do not create.
    pub(crate) live: Option<&'a Schema>,
}

impl MigrationSet<'_> {
    /// The files that add to the schema (up files and unnamed SQL), with their indexes.
    pub(crate) fn forward(&self) -> impl Iterator<Item = (usize, &Source)> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_forward())
    }
}

/// A schema model and where to point for each of its objects.
#[derive(Debug)]
pub(crate) struct SchemaView<'a> {
    pub(crate) schema: &'a Schema,
    /// Set when the model was replayed from files; live objects are named instead.
    pub(crate) origins: Option<&'a Origins>,
    pub(crate) config: &'a Config,
    /// Where the data-classification map and the model disagree (empty without a map).
    pub(crate) classification_gaps: &'a [catalog::classification::ClassificationGap],
}

impl SchemaView<'_> {
    fn at(&self, key: ObjectKey, describe: impl FnOnce() -> String) -> At {
        match self.origins.and_then(|o| o.get(&key)) {
            Some(span) => At::Span(span),
            None => At::Object(describe()),
        }
    }

    /// Tables that are linted (not in an ignored schema).
    pub(crate) fn tables(&self) -> impl Iterator<Item = &Table> {
        self.schema
            .tables
            .iter()
            .filter(|t| !self.config.ignored_schemas.contains(&t.schema))
    }

    pub(crate) fn table_at(&self, table: &Table) -> At {
        let name = table.display_name();
        self.at(ObjectKey::Table(name.clone()), || format!("table {name}"))
    }

    pub(crate) fn column_at(&self, table: &Table, column: &str) -> At {
        let name = table.display_name();
        self.at(ObjectKey::Column(name.clone(), column.to_owned()), || {
            format!("column {name}.{column}")
        })
    }

    pub(crate) fn constraint_at(&self, table: &Table, constraint: &Constraint) -> At {
        let name = table.display_name();
        let key = ObjectKey::Constraint(name.clone(), constraint.name.clone());
        self.at(key, || format!("constraint {} on {name}", constraint.name))
    }

    pub(crate) fn index_at(&self, table: &Table, index: &Index) -> At {
        let name = table.display_name();
        self.at(ObjectKey::Index(name.clone(), index.name.clone()), || {
            format!("index {} on {name}", index.name)
        })
    }

    pub(crate) fn partition_at(&self, table: &Table, partition: &catalog::model::Partition) -> At {
        let name = table.display_name();
        let partition_name = catalog::model::display_name(&partition.schema, &partition.name);
        self.at(
            ObjectKey::Partition(name.clone(), partition_name.clone()),
            || format!("partition {partition_name} of {name}"),
        )
    }

    /// Whether PostgreSQL picked this constraint's or index's name because the file gave none.
    pub(crate) fn is_unnamed(&self, key: &ObjectKey) -> bool {
        self.origins.is_some_and(|o| o.unnamed.contains(key))
    }
}

/// What the live-only rules see.
#[derive(Debug)]
pub(crate) struct LiveView<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) history: &'a [crate::AppliedMigration],
    pub(crate) pending: &'a [crate::PendingMigration],
    pub(crate) config: &'a Config,
    pub(crate) now: OffsetDateTime,
}
