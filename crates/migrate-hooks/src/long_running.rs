//! After a migration: its duration against the long-running threshold.
//!
//! The default threshold is the 10-minute maintenance window; a migration
//! that needs longer should be split, or run without a transaction in steps.

use std::time::Duration;

use migrate_core::hooks::{Finding, Outcome, Severity};

const NAME: &str = "long-running";

/// A warning when the migration ran longer than `threshold`.
pub(crate) fn findings(threshold: Duration, outcome: &Outcome) -> Vec<Finding> {
    if outcome.duration <= threshold {
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
            humantime::format_duration(threshold)
        ),
        data: serde_json::json!({
            "duration_ms": millis(outcome.duration),
            "threshold_ms": millis(threshold),
            "succeeded": outcome.succeeded,
        }),
    }]
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn round_to_millis(duration: Duration) -> Duration {
    Duration::from_millis(millis(duration))
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
        let threshold = Duration::from_secs(60);
        assert_eq!(findings(threshold, &outcome(59, true)), Vec::new());
        let findings = findings(threshold, &outcome(61, false));
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
