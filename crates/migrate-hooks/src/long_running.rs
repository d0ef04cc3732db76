//! After a migration: its duration against the long-running threshold.
//!
//! The default threshold is the 10-minute maintenance window; a migration
//! that needs longer should be split, or run without a transaction in steps.

use std::time::Duration;

use migrate_core::hooks::{
    Finding, Hook, HookContext, HookError, HookFuture, Outcome, Prepared, Severity,
};

const NAME: &str = "long-running";

/// The long-running check: see the module documentation.
#[derive(Debug, Clone)]
pub struct LongRunning {
    threshold: Duration,
}

impl LongRunning {
    /// The check with its threshold.
    pub fn new(threshold: Duration) -> LongRunning {
        LongRunning { threshold }
    }

    fn check(&self, outcome: &Outcome) -> Vec<Finding> {
        if outcome.duration <= self.threshold {
            return Vec::new();
        }
        let ended = if outcome.succeeded {
            "ran"
        } else {
            "failed after"
        };
        vec![Finding {
            hook: NAME.to_string(),
            severity: Severity::Warning,
            message: format!(
                "the migration {ended} {}, longer than the {} long-running threshold",
                humantime::format_duration(round_to_millis(outcome.duration)),
                humantime::format_duration(self.threshold)
            ),
            data: serde_json::json!({
                "duration_ms": millis(outcome.duration),
                "threshold_ms": millis(self.threshold),
                "succeeded": outcome.succeeded,
            }),
        }]
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(millis(duration))
}

impl Hook for LongRunning {
    fn name(&self) -> &str {
        NAME
    }

    fn before_reads_database(&self, _sql: &str) -> bool {
        false
    }

    fn before<'a>(
        &'a self,
        _ctx: &'a HookContext<'a>,
    ) -> HookFuture<'a, Result<Prepared, HookError>> {
        Box::pin(async { Ok(Prepared::default()) })
    }

    fn after<'a>(
        &'a self,
        _ctx: &'a HookContext<'a>,
        _prepared: &'a Prepared,
        outcome: &'a Outcome,
    ) -> HookFuture<'a, Result<Vec<Finding>, HookError>> {
        Box::pin(async move { Ok(self.check(outcome)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(seconds: u64, succeeded: bool) -> Outcome {
        Outcome {
            succeeded,
            duration: Duration::from_millis(seconds * 1000 + 250),
            error: None,
        }
    }

    #[test]
    fn reports_only_migrations_over_the_threshold() {
        let check = LongRunning::new(Duration::from_secs(60));
        assert_eq!(check.check(&outcome(59, true)), Vec::new());
        let findings = check.check(&outcome(61, false));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].message,
            "the migration failed after 1m 1s 250ms, longer than the 1m long-running threshold"
        );
        assert_eq!(findings[0].severity, Severity::Warning);
        assert_eq!(
            findings[0].data,
            serde_json::json!({"duration_ms": 61250, "threshold_ms": 60000, "succeeded": false})
        );
    }
}
