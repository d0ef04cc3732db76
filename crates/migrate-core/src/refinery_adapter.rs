//! The bridge to refinery: refinery's runner drives a stretch of
//! transactional up migrations through a connection type of ours. refinery
//! keeps its history table, its checksums and the order of application; each
//! migration it hands over is applied by [`Migrator::apply_step`], with the
//! lock, timeouts, retries, run log, hooks and audit entry that dbops adds.

use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use time::OffsetDateTime;

use crate::error::Error;
use crate::migrator::{CompletedStep, Migrator, Pending, Stepped};
use crate::session::{Session, Step};
use crate::source::{Direction, Migration};

/// An error crossing refinery's API; the typed [`Error`] is kept on the adapter.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct AdapterError(String);

/// refinery's view of a [`Session`] applying a stretch of migrations.
pub(crate) struct RefineryAdapter<'r, 's, 'a> {
    migrator: &'r Migrator,
    session: &'r mut Session<'a>,
    migrations: &'r [&'s Migration],
    completed: &'r mut Vec<CompletedStep>,
    next: usize,
    failure: Option<Error>,
    /// The step applied last, whose COMMIT goes out with the next one's batch.
    pending: Option<Pending<'s>>,
}

impl<'r, 's, 'a> RefineryAdapter<'r, 's, 'a> {
    pub fn new(
        migrator: &'r Migrator,
        session: &'r mut Session<'a>,
        migrations: &'r [&'s Migration],
        completed: &'r mut Vec<CompletedStep>,
    ) -> Self {
        RefineryAdapter {
            migrator,
            session,
            migrations,
            completed,
            next: 0,
            failure: None,
            pending: None,
        }
    }

    /// Applies the stretch through one call of refinery's runner.
    pub async fn run(mut self) -> Result<(), Error> {
        let migrations = self
            .migrations
            .iter()
            .map(|m| m.refinery())
            .collect::<Result<Vec<_>, _>>()?;
        let mut runner = refinery_core::Runner::new(&migrations)
            .set_abort_divergent(false)
            .set_abort_missing(false);
        runner.set_migration_table_name(&self.session.target.history_table);
        let result = runner.run_async(&mut self).await;
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        if let Some(pending) = self.pending.take() {
            let done = self.migrator.settle(self.session, pending).await?;
            self.completed.push(done);
        }
        let report = result.map_err(|e| Error::Refinery(e.to_string()))?;
        if report.applied_migrations().len() != self.migrations.len() {
            return Err(Error::Refinery(format!(
                "refinery applied {} of the {} migrations it was given",
                report.applied_migrations().len(),
                self.migrations.len()
            )));
        }
        Ok(())
    }
}

impl AsyncTransaction for RefineryAdapter<'_, '_, '_> {
    type Error = AdapterError;

    async fn execute<'q, T: Iterator<Item = &'q str> + Send + 'q>(
        &mut self,
        queries: T,
    ) -> Result<usize, AdapterError> {
        let queries: Vec<&str> = queries.collect();
        let expected = self.migrations.get(self.next).copied();
        match (queries.as_slice(), expected) {
            // refinery applies a migration as its SQL followed by the history insert.
            ([sql, record], Some(migration)) if *sql == migration.up.sql => {
                let step = Step {
                    migration,
                    direction: Direction::Up,
                };
                // Each step but the last leaves its COMMIT to the next one.
                let defer = self.next + 1 < self.migrations.len();
                let prev = self.pending.take();
                let stepped = self
                    .migrator
                    .apply_chained(self.session, step, record, prev, defer, self.completed)
                    .await;
                match stepped {
                    Ok(stepped) => {
                        match stepped {
                            Stepped::Done(done) => self.completed.push(done),
                            Stepped::Pending(pending) => self.pending = Some(pending),
                        }
                        self.next += 1;
                        Ok(2)
                    }
                    Err(error) => {
                        let message = error.to_string();
                        self.failure = Some(error);
                        Err(AdapterError(message))
                    }
                }
            }
            // Anything else is refinery's own bookkeeping (the history table's DDL).
            _ => {
                let sql = queries.join(";\n");
                self.session
                    .execute_in_transaction(&sql, "running refinery's bookkeeping")
                    .await
                    .map_err(|e| AdapterError(e.to_string()))?;
                Ok(queries.len())
            }
        }
    }
}

impl AsyncQuery<Vec<refinery_core::Migration>> for RefineryAdapter<'_, '_, '_> {
    async fn query(&mut self, query: &str) -> Result<Vec<refinery_core::Migration>, AdapterError> {
        let rows = self
            .session
            .client()
            .query(query, &[])
            .await
            .map_err(|e| AdapterError(e.to_string()))?;
        rows.into_iter()
            .map(|row| {
                let version: i64 = row.get(0);
                let applied_on: String = row.get(2);
                let applied_on = OffsetDateTime::parse(
                    &applied_on,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| {
                    AdapterError(format!(
                        "history row {version}: applied_on {applied_on:?}: {e}"
                    ))
                })?;
                let checksum: String = row.get(3);
                let checksum = checksum.parse().map_err(|e| {
                    AdapterError(format!("history row {version}: checksum {checksum:?}: {e}"))
                })?;
                Ok(refinery_core::Migration::applied(
                    version,
                    row.get(1),
                    applied_on,
                    checksum,
                ))
            })
            .collect()
    }
}

impl AsyncMigrate for RefineryAdapter<'_, '_, '_> {}
