//! The standard checks as one [`Hook`]: one catalog read before each
//! migration and one after it, shared by every enabled check, and none when
//! the migration touches no table that existed before it.

use std::sync::atomic::{AtomicBool, Ordering};

use migrate_core::hooks::{Finding, Hook, HookContext, HookError, HookFuture, Outcome, Prepared};

use crate::catalog::{self, After, AfterQuestions, Before, BeforeQuestions};
use crate::config::HooksConfig;
use crate::error::Error;
use crate::script::{LastScript, Reading};
use crate::tables::TableName;
use crate::{
    blocking_sessions, invalid_indexes, long_running, not_valid_constraints, row_counts,
    table_rewrites,
};

const NAME: &str = "standard-checks";

/// Every check the configuration enables, around each migration.
#[derive(Debug)]
pub(crate) struct StandardChecks {
    config: HooksConfig,
    last_script: LastScript,
    /// Whether the role was told, this run, that it cannot see other roles'
    /// transactions.
    told_of_hidden_transactions: AtomicBool,
}

impl StandardChecks {
    /// The checks `config` enables; `None` when it enables none.
    pub fn new(config: &HooksConfig) -> Option<StandardChecks> {
        let any = config.blocking_sessions.enabled
            || config.row_counts.enabled
            || config.table_rewrites
            || config.invalid_indexes
            || config.not_valid_constraints
            || config.long_running.enabled;
        (config.enabled && any).then(|| StandardChecks {
            config: config.clone(),
            last_script: LastScript::default(),
            told_of_hidden_transactions: AtomicBool::new(false),
        })
    }

    /// What to read before the migration; `None` when nothing, as the
    /// script touches no existing table or no enabled check looks at one.
    fn before_questions(&self, reading: &Reading) -> Option<BeforeQuestions> {
        let config = &self.config;
        let tables: Vec<String> = reading.touched.existing().map(TableName::quoted).collect();
        let questions = BeforeQuestions {
            tables,
            // Only a script that can leave such objects needs them listed
            // before, to tell the new ones from the old.
            invalid_indexes: config.invalid_indexes && reading.leftovers.invalid_indexes,
            not_valid_constraints: config.not_valid_constraints
                && reading.leftovers.not_valid_constraints,
            count_rows_up_to: (config.row_counts.enabled && reading.changes_rows)
                .then_some(config.row_counts.exact_max_rows),
            sessions: config
                .blocking_sessions
                .enabled
                .then_some(config.blocking_sessions.long_transaction),
        };
        let wanted = config.table_rewrites
            || questions.invalid_indexes
            || questions.not_valid_constraints
            || questions.count_rows_up_to.is_some()
            || questions.sessions.is_some();
        (wanted && !questions.tables.is_empty()).then_some(questions)
    }

    async fn before(&self, ctx: &HookContext<'_>) -> Result<Prepared, Error> {
        let reading = self.last_script.read(ctx.sql);
        let Some(questions) = self.before_questions(&reading) else {
            return Ok(Prepared::default());
        };
        let blocking = &self.config.blocking_sessions;
        let (mut before, mut findings) = if blocking.enabled {
            blocking_sessions::check(blocking, || catalog::before(ctx, &questions)).await?
        } else {
            (catalog::before(ctx, &questions).await?, Vec::new())
        };
        if blocking.enabled
            && !before.sees_all_sessions
            && !self
                .told_of_hidden_transactions
                .swap(true, Ordering::Relaxed)
        {
            findings.insert(
                0,
                blocking_sessions::hidden_transactions(&before.role, blocking),
            );
        }
        // The after-check needs the rest.
        before.sessions.clear();
        Ok(Prepared {
            findings,
            memo: serde_json::to_value(before).map_err(Error::Memo)?,
        })
    }

    async fn after(
        &self,
        ctx: &HookContext<'_>,
        prepared: &Prepared,
        outcome: &Outcome,
    ) -> Result<Vec<Finding>, Error> {
        let config = &self.config;
        let reading = self.last_script.read(ctx.sql);
        let before: Before = if prepared.memo.is_null() {
            Before::default()
        } else {
            serde_json::from_value(prepared.memo.clone()).map_err(Error::Memo)?
        };
        let touched = &reading.touched;
        let leftovers = &reading.leftovers;
        // Invalid indexes and NOT VALID constraints are looked for on every
        // touched table, created ones included when the script can leave
        // them there; on tables that existed, whatever the script.
        let questions = AfterQuestions {
            tables: touched.tables.iter().map(TableName::quoted).collect(),
            invalid_indexes: config.invalid_indexes
                && (leftovers.invalid_indexes || !touched.no_existing()),
            not_valid_constraints: config.not_valid_constraints
                && (leftovers.not_valid_constraints || !touched.no_existing()),
            counted: before.rows.clone(),
            relations: if config.table_rewrites {
                table_rewrites::to_compare(&before.relations)
            } else {
                Vec::new()
            },
        };
        if !outcome.succeeded && questions.counted.iter().any(|c| !c.exact) {
            catalog::flush_statistics(ctx).await?;
        }
        let after = if questions.is_empty() {
            After::default()
        } else if outcome.succeeded && touched.only_dropped() {
            // Nothing of the touched tables is left to read: the counted
            // ones are gone, and so are their indexes and constraints.
            After::all_dropped(&questions.counted)
        } else {
            catalog::after(ctx, &questions).await?
        };
        let mut findings = row_counts::findings(&questions.counted, &after.rows);
        findings.extend(table_rewrites::findings(
            &questions.relations,
            &after.rewritten,
        ));
        findings.extend(invalid_indexes::findings(
            leftovers
                .invalid_indexes
                .then_some(before.invalid_indexes.as_slice()),
            &after.invalid_indexes,
        ));
        findings.extend(not_valid_constraints::findings(
            leftovers
                .not_valid_constraints
                .then_some(before.not_valid_constraints.as_slice()),
            &after.not_valid_constraints,
        ));
        if config.long_running.enabled {
            findings.extend(long_running::findings(
                config.long_running.threshold,
                outcome,
            ));
        }
        Ok(findings)
    }
}

impl Hook for StandardChecks {
    fn name(&self) -> &str {
        NAME
    }

    fn before<'a>(
        &'a self,
        ctx: &'a HookContext<'a>,
    ) -> HookFuture<'a, Result<Prepared, HookError>> {
        Box::pin(async move { self.before(ctx).await.map_err(|e| e.into_hook_error(NAME)) })
    }

    fn after<'a>(
        &'a self,
        ctx: &'a HookContext<'a>,
        prepared: &'a Prepared,
        outcome: &'a Outcome,
    ) -> HookFuture<'a, Result<Vec<Finding>, HookError>> {
        Box::pin(async move {
            self.after(ctx, prepared, outcome)
                .await
                .map_err(|e| e.into_hook_error(NAME))
        })
    }
}
