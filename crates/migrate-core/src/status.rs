//! What `status` reports: version, pending, partial and drifted migrations.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::source::Direction;

/// The state of one target, as `dbops migrate status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The target's name.
    pub target: String,
    /// The newest applied version, if any.
    pub schema_version: Option<i64>,
    /// When the newest applied migration was applied.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_migration_at: Option<OffsetDateTime>,
    /// How many migrations are applied.
    pub applied: usize,
    /// Migrations on disk that are not applied, oldest first.
    pub pending: Vec<PendingMigration>,
    /// Non-transactional migrations that stopped half-way and are not repaired.
    pub partial: Vec<PartialMigration>,
    /// Applied migrations whose file changed or disappeared.
    pub drifted: Vec<DriftedMigration>,
    /// The most recent run-log entry of the target.
    pub last_outcome: Option<RunLogEntry>,
}

impl Status {
    /// Whether `up` would run without refusing (pending migrations are fine).
    pub fn is_healthy(&self) -> bool {
        self.partial.is_empty() && self.drifted.is_empty()
    }
}

/// A migration waiting to be applied.
#[derive(Debug, Clone, Serialize)]
pub struct PendingMigration {
    /// Its version.
    pub version: i64,
    /// Its slug.
    pub slug: String,
    /// Its up file.
    pub file: PathBuf,
    /// Older than the newest applied migration: `up` needs `--allow-out-of-order`.
    pub out_of_order: bool,
}

/// A non-transactional migration that did not finish.
#[derive(Debug, Clone, Serialize)]
pub struct PartialMigration {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Which script was running.
    pub direction: Direction,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Statements that completed, of the script's total.
    pub statements_done: i32,
    /// Statements in the script.
    pub statements_total: i32,
    /// The error, when the run lived to record one; none when the process died.
    pub error: Option<String>,
    /// What the catalog shows that such a stop leaves behind, such as invalid indexes.
    pub findings: Vec<String>,
    /// Whether the statement after the last completed one finished on the
    /// server all the same (after the run lost its connection or died).
    pub in_flight: crate::in_flight::InFlight,
}

impl fmt::Display for PartialMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{} ({} stopped after {} of {} statements",
            self.version,
            self.name,
            self.direction.as_str(),
            self.statements_done,
            self.statements_total
        )?;
        match &self.error {
            Some(error) => write!(f, ", error: {error}")?,
            None => write!(f, ", the process died")?,
        }
        let next = self.statements_done + 1;
        match self.in_flight {
            crate::in_flight::InFlight::Finished => write!(
                f,
                "; statement {next} finished on the server after the run lost it"
            )?,
            crate::in_flight::InFlight::NotFinished
                if self.statements_done < self.statements_total =>
            {
                write!(f, "; statement {next} did not finish")?
            }
            _ => {}
        }
        for finding in &self.findings {
            write!(f, "; {finding}")?;
        }
        write!(f, ")")
    }
}

/// An applied migration that no longer matches its file.
#[derive(Debug, Clone, Serialize)]
pub struct DriftedMigration {
    /// Its version.
    pub version: i64,
    /// The name recorded when it was applied.
    pub name: String,
    /// The file now on disk, if there is one.
    pub file: Option<PathBuf>,
    /// What changed.
    pub kind: DriftKind,
}

/// How an applied migration drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The file's content (or slug) changed after it was applied.
    Changed,
    /// The file is gone.
    Missing,
}

impl fmt::Display for DriftedMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.file) {
            (DriftKind::Changed, Some(file)) => {
                write!(
                    f,
                    "{}_{}: {} changed after it was applied",
                    self.version,
                    self.name,
                    file.display()
                )
            }
            _ => write!(
                f,
                "{}_{}: applied, but its file is missing",
                self.version, self.name
            ),
        }
    }
}

/// One entry of the run log.
#[derive(Debug, Clone, Serialize)]
pub struct RunLogEntry {
    /// Version.
    pub version: i64,
    /// Name.
    pub name: String,
    /// Direction.
    pub direction: Direction,
    /// `running`, `succeeded`, `failed` or `resolved`.
    pub outcome: String,
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// End.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// The error, for failures.
    pub error: Option<String>,
}

/// Who ran a step, as the run log recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Runner {
    /// The server process of its connection.
    pub pid: i32,
    /// Its connection's `application_name`.
    pub application: String,
    /// When the step finished.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl fmt::Display for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}, application {:?}", self.pid, self.application)
    }
}
