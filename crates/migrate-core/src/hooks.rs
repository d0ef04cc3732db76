//! The extension point around each migration: checks that run before and after it.
//!
//! `migrate-hooks` provides the standard checks (blocking sessions, row-count
//! differences, table rewrites, invalid indexes, duration); a service adds its
//! own by implementing [`Hook`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::source::Direction;

/// A boxed future, as hooks are called through `dyn Hook`.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a hook sees of the migration it runs around.
#[derive(Debug)]
pub struct HookContext<'a> {
    /// The target's name.
    pub target: &'a str,
    /// The migration's version.
    pub version: i64,
    /// The migration's slug.
    pub slug: &'a str,
    /// Up or down.
    pub direction: Direction,
    /// The SQL about to run (or that ran).
    pub sql: &'a str,
    /// The run's connection. Hooks must leave no transaction open on it.
    pub client: &'a tokio_postgres::Client,
    /// The statements prepared on that connection, for [`HookContext::prepare`].
    pub statements: &'a Statements,
}

impl HookContext<'_> {
    /// Prepares `sql` on the run's connection once: later calls, for this
    /// migration or the next ones, reuse the statement until the engine
    /// replaces a lost connection.
    pub async fn prepare(
        &self,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement);
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// Statements prepared on one connection, by their text.
#[derive(Debug, Default)]
pub struct Statements {
    prepared: Mutex<HashMap<String, tokio_postgres::Statement>>,
}

impl Statements {
    fn get(&self, sql: &str) -> Option<tokio_postgres::Statement> {
        let prepared = self.prepared.lock().unwrap_or_else(PoisonError::into_inner);
        prepared.get(sql).cloned()
    }

    fn insert(&self, sql: &str, statement: tokio_postgres::Statement) {
        let mut prepared = self.prepared.lock().unwrap_or_else(PoisonError::into_inner);
        prepared.insert(sql.to_string(), statement);
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording.
    Info,
    /// Worth a human's attention.
    Warning,
    /// Stops the run before the migration executes (only meaningful before it).
    Refuse,
}

/// One observation of a hook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The hook that made it.
    pub hook: String,
    /// How serious it is.
    pub severity: Severity,
    /// What was observed, in words.
    pub message: String,
    /// Structured detail for the audit entry and span.
    pub data: serde_json::Value,
}

/// What a before-check hands to the after-check of the same migration.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Findings made before the migration.
    pub findings: Vec<Finding>,
    /// Anything the hook wants back after the migration, such as row counts.
    pub memo: serde_json::Value,
}

/// How a migration ended, for after-checks.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Whether it succeeded.
    pub succeeded: bool,
    /// How long it ran.
    pub duration: Duration,
    /// The error message, when it failed.
    pub error: Option<String>,
}

/// An error of a hook itself (not a finding): the run stops.
#[derive(Debug, thiserror::Error)]
#[error("hook {hook}: {message}")]
pub struct HookError {
    /// The hook.
    pub hook: String,
    /// What went wrong.
    pub message: String,
}

/// A check around each migration.
pub trait Hook: Send + Sync + std::fmt::Debug {
    /// The hook's name, used in findings and spans.
    fn name(&self) -> &str;

    /// Runs before the migration. A [`Severity::Refuse`] finding stops the run.
    fn before<'a>(
        &'a self,
        ctx: &'a HookContext<'a>,
    ) -> HookFuture<'a, Result<Prepared, HookError>>;

    /// Runs after the migration, with what `before` prepared.
    fn after<'a>(
        &'a self,
        ctx: &'a HookContext<'a>,
        prepared: &'a Prepared,
        outcome: &'a Outcome,
    ) -> HookFuture<'a, Result<Vec<Finding>, HookError>>;
}
