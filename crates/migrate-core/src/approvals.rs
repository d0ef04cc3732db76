//! Approvals of a plan hash, kept in `dbops.approvals`.
//!
//! An approval names one exact plan (its hash), target and environment. A
//! plan that changes after approval has a different hash, so the approval no
//! longer counts: there is nothing to invalidate.

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::error::Error;

const DDL: &str = "
CREATE SCHEMA IF NOT EXISTS dbops;
CREATE TABLE IF NOT EXISTS dbops.approvals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target text NOT NULL,
    environment text NOT NULL,
    plan_hash text NOT NULL CHECK (plan_hash ~ '^[0-9a-f]{64}$'),
    approver text NOT NULL CHECK (char_length(approver) BETWEEN 1 AND 200),
    approved_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (target, environment, plan_hash, approver)
);
";

/// One recorded approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Who approved.
    pub approver: String,
    /// The plan approved.
    pub plan_hash: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: OffsetDateTime,
}

/// Records an approval; approving the same plan twice is a no-op.
pub(crate) async fn record(
    client: &Client,
    target: &str,
    environment: &str,
    plan_hash: &str,
    approver: &str,
) -> Result<(), Error> {
    client
        .batch_execute(DDL)
        .await
        .map_err(Error::db("creating dbops.approvals"))?;
    client
        .execute(
            "INSERT INTO dbops.approvals (target, environment, plan_hash, approver) VALUES ($1, $2, $3, $4)
             ON CONFLICT (target, environment, plan_hash, approver) DO NOTHING",
            &[&target, &environment, &plan_hash, &approver],
        )
        .await
        .map_err(Error::db("recording the approval"))?;
    Ok(())
}

/// Every approval of a target in an environment, newest first.
pub(crate) async fn list(
    client: &Client,
    target: &str,
    environment: &str,
) -> Result<Vec<Approval>, Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('dbops.approvals') IS NOT NULL", &[])
        .await
        .map_err(Error::db("looking for dbops.approvals"))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT approver, plan_hash, approved_at FROM dbops.approvals WHERE target = $1 AND environment = $2 ORDER BY approved_at DESC, id DESC",
            &[&target, &environment],
        )
        .await
        .map_err(Error::db("reading approvals"))?;
    Ok(rows
        .into_iter()
        .map(|row| Approval {
            approver: row.get(0),
            plan_hash: row.get(1),
            approved_at: row.get(2),
        })
        .collect())
}

/// Whether `approvals` satisfy a policy of `required` distinct approvers other than `actor` for `plan_hash`.
///
/// Returns the approvers that count, or why the plan is not approved.
pub fn check(
    approvals: &[Approval],
    plan_hash: &str,
    actor: &str,
    required: u32,
) -> Result<Vec<String>, String> {
    let mut counted: Vec<String> = approvals
        .iter()
        .filter(|a| a.plan_hash == plan_hash && !a.approver.eq_ignore_ascii_case(actor))
        .map(|a| a.approver.clone())
        .collect();
    counted.sort_by_key(|approver| approver.to_lowercase());
    counted.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    if counted.len() >= required as usize {
        return Ok(counted);
    }
    let mut reason = format!(
        "plan {plan_hash} needs {required} approval(s) by people other than {actor:?}; it has {}",
        counted.len()
    );
    if !counted.is_empty() {
        reason.push_str(&format!(" ({})", counted.join(", ")));
    }
    if approvals
        .iter()
        .any(|a| a.plan_hash == plan_hash && a.approver.eq_ignore_ascii_case(actor))
    {
        reason.push_str(&format!(
            "; {actor:?} approved it, but nobody counts for their own run"
        ));
    }
    let mut stale: Vec<&str> = approvals
        .iter()
        .filter(|a| a.plan_hash != plan_hash)
        .map(|a| a.plan_hash.as_str())
        .collect();
    stale.dedup();
    if !stale.is_empty() {
        reason.push_str(&format!(
            "; approvals exist for other plan(s) {}: the plan changed after it was approved",
            stale
                .iter()
                .map(|h| &h[..12])
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Err(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(approver: &str, plan: &str) -> Approval {
        Approval {
            approver: approver.into(),
            plan_hash: plan.into(),
            approved_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn two_distinct_approvers_other_than_the_actor() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let approvals = [
            approval("ann", &a),
            approval("ANN", &a),
            approval("bob", &b),
            approval("eve", &a),
        ];
        let reason = check(&approvals, &a, "eve", 2).unwrap_err();
        let expected =
            format!("plan {a} needs 2 approval(s) by people other than \"eve\"; it has 1 (ann);");
        assert!(reason.starts_with(&expected), "{reason}");
        assert!(
            reason.contains("nobody counts for their own run"),
            "{reason}"
        );
        assert!(
            reason.contains("the plan changed after it was approved"),
            "{reason}"
        );
        assert_eq!(
            check(&[approval("ann", &a), approval("bob", &a)], &a, "eve", 2).unwrap(),
            ["ann", "bob"]
        );
        assert!(check(&[], &a, "eve", 0).is_ok());
    }
}
