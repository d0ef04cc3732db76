//! The bridge to refinery: refinery's runner drives each transactional up
//! migration through a connection type of ours, so that refinery keeps its
//! history table and verification while dbops adds timeouts, retries and the run log.

use refinery_core::traits::r#async::{AsyncMigrate, AsyncQuery, AsyncTransaction};
use time::OffsetDateTime;

use crate::error::Error;
use crate::session::{Applied, Session, Step};

/// An error crossing refinery's API; the typed [`Error`] is kept on the adapter.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct AdapterError(String);

/// refinery's view of a [`Session`] applying one [`Step`].
pub(crate) struct RefineryAdapter<'s, 'a> {
    session: &'s mut Session<'a>,
    step: Step<'s>,
    outcome: Option<Result<Applied, Error>>,
}

impl<'s, 'a> RefineryAdapter<'s, 'a> {
    pub fn new(session: &'s mut Session<'a>, step: Step<'s>) -> Self {
        RefineryAdapter {
            session,
            step,
            outcome: None,
        }
    }

    /// Applies the step through refinery's runner.
    pub async fn run(mut self) -> Result<Applied, Error> {
        let migration = self.step.migration.refinery()?;
        let mut runner = refinery_core::Runner::new(&[migration])
            .set_abort_divergent(false)
            .set_abort_missing(false);
        runner.set_migration_table_name(&self.session.target.history_table);
        let result = runner.run_async(&mut self).await;
        match (self.outcome.take(), result) {
            (Some(outcome), _) => outcome,
            (None, Err(e)) => Err(Error::Refinery(e.to_string())),
            (None, Ok(_)) => Err(Error::Refinery(format!(
                "refinery did not apply migration {}: it is not newer than the newest applied version",
                self.step.migration.version
            ))),
        }
    }
}

impl AsyncTransaction for RefineryAdapter<'_, '_> {
    type Error = AdapterError;

    async fn execute<'q, T: Iterator<Item = &'q str> + Send + 'q>(
        &mut self,
        queries: T,
    ) -> Result<usize, AdapterError> {
        let queries: Vec<&str> = queries.collect();
        match queries.as_slice() {
            // refinery applies a migration as its SQL followed by the history insert.
            [sql, record] if *sql == self.step.script().sql => {
                let outcome = self.session.apply_transactional(&self.step, record).await;
                let result = match &outcome {
                    Ok(_) => Ok(2),
                    Err(e) => Err(AdapterError(e.to_string())),
                };
                self.outcome = Some(outcome);
                result
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

impl AsyncQuery<Vec<refinery_core::Migration>> for RefineryAdapter<'_, '_> {
    async fn query(&mut self, query: &str) -> Result<Vec<refinery_core::Migration>, AdapterError> {
        let rows = self
            .session
            .client()
            .query(query, &[])
            .await
            .map_err(|e| AdapterError(e.to_string()))?;
        rows.into_iter()
            .map(|row| {
                let applied_on: String = row.get(2);
                let applied_on = OffsetDateTime::parse(
                    &applied_on,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| {
                    AdapterError(format!(
                        "history row {}: applied_on {applied_on:?}: {e}",
                        row.get::<_, i64>(0)
                    ))
                })?;
                let checksum: String = row.get(3);
                let checksum = checksum.parse().map_err(|e| {
                    AdapterError(format!(
                        "history row {}: checksum {checksum:?}: {e}",
                        row.get::<_, i64>(0)
                    ))
                })?;
                Ok(refinery_core::Migration::applied(
                    row.get(0),
                    row.get(1),
                    applied_on,
                    checksum,
                ))
            })
            .collect()
    }
}

impl AsyncMigrate for RefineryAdapter<'_, '_> {}
