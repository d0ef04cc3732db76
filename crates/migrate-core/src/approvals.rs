//! Approvals of a plan hash, kept in `dbops.approvals`.
//!
//! An approval is an SSH signature (`ssh-keygen -Y sign`, namespace
//! [`APPROVAL_NAMESPACE`]) over [`Subject::message`]: the plan hash, target,
//! environment and direction. It counts only when it verifies, at run time,
//! against the allowed-signers file the environment's policy names
//! ([`crate::signers`]). A plan that changes after approval has a different
//! hash, so the approval no longer counts: there is nothing to invalidate.
//!
//! Who runs the plan (the actor) proves it the same way: a signature over the
//! same message in namespace [`RUN_NAMESPACE`] by a key in the same file.
//! That key, and every key listed under one of its principals, cannot
//! approve the run.

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::error::Error;
use crate::signers::{APPROVAL_NAMESPACE, AllowedSigners, RUN_NAMESPACE, Signer};
use crate::source::Direction;

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
ALTER TABLE dbops.approvals
    ADD COLUMN IF NOT EXISTS signature text,
    ADD COLUMN IF NOT EXISTS key_fingerprint text;
";

/// One recorded approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Who approved: the principals of the signing key (or, on rows written
    /// before approvals were signed, a typed name).
    pub approver: String,
    /// The plan approved.
    pub plan_hash: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: OffsetDateTime,
    /// The armored SSH signature; `None` on rows written before approvals were signed.
    pub signature: Option<String>,
    /// The signing key's fingerprint, as recorded when the approval was given.
    pub key_fingerprint: Option<String>,
}

/// What an approval (or the actor's run signature) is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    /// The migration target.
    pub target: &'a str,
    /// The deployment environment.
    pub environment: &'a str,
    /// Up or down.
    pub direction: Direction,
    /// The plan's hash.
    pub plan_hash: &'a str,
}

impl Subject<'_> {
    /// The exact text that is signed, one `name: value` line each, ending in a newline.
    pub fn message(&self) -> String {
        format!(
            "dbops plan approval v1\ntarget: {}\nenvironment: {}\ndirection: {}\nplan: {}\n",
            self.target,
            self.environment,
            self.direction.as_str(),
            self.plan_hash
        )
    }
}

/// Checks that `plan_hash` looks like a plan hash.
pub(crate) fn check_hash(plan_hash: &str) -> Result<(), Error> {
    let valid = plan_hash.len() == 64
        && plan_hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if valid {
        return Ok(());
    }
    Err(Error::Config {
        origin: "plan hash".into(),
        message: format!(
            "{plan_hash:?} is not a plan hash (64 lowercase hex digits, as a plan reports it)"
        ),
    })
}

/// Records a verified approval; approving the same plan again replaces the signature.
pub(crate) async fn record(
    client: &Client,
    subject: &Subject<'_>,
    signer: &Signer,
    signature: &str,
) -> Result<(), Error> {
    client
        .batch_execute(DDL)
        .await
        .map_err(Error::db("creating dbops.approvals"))?;
    client
        .execute(
            "INSERT INTO dbops.approvals (target, environment, plan_hash, approver, signature, key_fingerprint)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (target, environment, plan_hash, approver) DO UPDATE
             SET signature = excluded.signature, key_fingerprint = excluded.key_fingerprint, approved_at = now()",
            &[
                &subject.target,
                &subject.environment,
                &subject.plan_hash,
                &signer.names(),
                &signature.trim(),
                &signer.fingerprint,
            ],
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
    let row = client
        .query_one(
            "SELECT to_regclass('dbops.approvals') IS NOT NULL,
                    (SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('dbops.approvals')
                       AND attname IN ('signature', 'key_fingerprint') AND NOT attisdropped)",
            &[],
        )
        .await
        .map_err(Error::db("looking for dbops.approvals"))?;
    let (exists, columns): (bool, i64) = (row.get(0), row.get(1));
    if !exists {
        return Ok(Vec::new());
    }
    // A table from before approvals were signed has only names.
    let signed = if columns == 2 {
        "signature, key_fingerprint"
    } else {
        "NULL::text, NULL::text"
    };
    let rows = client
        .query(
            &format!("SELECT approver, plan_hash, approved_at, {signed} FROM dbops.approvals WHERE target = $1 AND environment = $2 ORDER BY approved_at DESC, id DESC"),
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
            signature: row.get(3),
            key_fingerprint: row.get(4),
        })
        .collect())
}

/// The actor of a run: the first of `signatures` that verifies as a
/// signature over `subject` in namespace [`RUN_NAMESPACE`].
///
/// # Errors
/// Why none does, signature by signature (or that there is none).
pub fn verify_actor(
    signers: &AllowedSigners,
    subject: &Subject<'_>,
    signatures: &[String],
) -> Result<Signer, String> {
    let message = subject.message();
    let mut reasons = Vec::new();
    for signature in signatures {
        match signers.verify(signature, RUN_NAMESPACE, message.as_bytes()) {
            Ok(signer) => return Ok(signer),
            Err(reason) => reasons.push(reason),
        }
    }
    if reasons.is_empty() {
        return Err(format!(
            "the run of plan {} is not signed by its actor (namespace {RUN_NAMESPACE})",
            subject.plan_hash
        ));
    }
    Err(format!(
        "no signature of the run verifies: {}",
        reasons.join("; ")
    ))
}

/// Whether `approvals` satisfy a policy of `required` approvals of
/// `subject` by distinct people in `signers`, none of them `actor`.
///
/// Every approval is verified here, at run time, against `signers`. People
/// are told apart by key and by principal: a key counts once whatever names
/// it was recorded under, and a principal counts once whatever keys it has.
///
/// Returns the signers that count, or why the plan is not approved.
pub fn check(
    approvals: &[Approval],
    signers: &AllowedSigners,
    subject: &Subject<'_>,
    actor: &Signer,
    required: u32,
) -> Result<Vec<Signer>, String> {
    let message = subject.message();
    let mut counted: Vec<Signer> = Vec::new();
    let mut notes = Vec::new();
    // Oldest first, so that what counts does not depend on later additions.
    for approval in approvals
        .iter()
        .rev()
        .filter(|a| a.plan_hash == subject.plan_hash)
    {
        let Some(signature) = &approval.signature else {
            notes.push(format!(
                "the approval as {:?} has no signature and does not count",
                approval.approver
            ));
            continue;
        };
        let signer = match signers.verify(signature, APPROVAL_NAMESPACE, message.as_bytes()) {
            Ok(signer) => signer,
            Err(reason) => {
                notes.push(format!(
                    "the approval as {:?} does not count: {reason}",
                    approval.approver
                ));
                continue;
            }
        };
        if signer.same_person(actor) {
            notes.push(format!(
                "{} (key {}) approved it, but nobody counts for their own run",
                signer.names(),
                signer.fingerprint
            ));
        } else if let Some(earlier) = counted.iter().find(|c| c.same_person(&signer)) {
            notes.push(format!(
                "{} (key {}) is the same person as {} (key {}) and counts once",
                signer.names(),
                signer.fingerprint,
                earlier.names(),
                earlier.fingerprint
            ));
        } else {
            counted.push(signer);
        }
    }
    if counted.len() >= required as usize {
        return Ok(counted);
    }
    let mut reason = format!(
        "plan {} needs {required} signed approval(s) by distinct keys in {} other than the actor's ({}, key {}); it has {}",
        subject.plan_hash,
        signers.origin(),
        actor.names(),
        actor.fingerprint,
        counted.len()
    );
    if !counted.is_empty() {
        let names: Vec<String> = counted.iter().map(Signer::names).collect();
        reason.push_str(&format!(" ({})", names.join(", ")));
    }
    for note in notes {
        reason.push_str("; ");
        reason.push_str(&note);
    }
    let mut stale: Vec<&str> = approvals
        .iter()
        .filter(|a| a.plan_hash != subject.plan_hash)
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

    #[test]
    fn the_signed_message_names_target_environment_direction_and_plan() {
        let subject = Subject {
            target: "operational",
            environment: "production",
            direction: Direction::Down,
            plan_hash: "ab",
        };
        expect_test::expect![[r#"
            dbops plan approval v1
            target: operational
            environment: production
            direction: down
            plan: ab
        "#]]
        .assert_eq(&subject.message());
    }

    #[test]
    fn unsigned_and_stale_approvals_do_not_count() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let approval = |approver: &str, plan: &str| Approval {
            approver: approver.into(),
            plan_hash: plan.into(),
            approved_at: OffsetDateTime::UNIX_EPOCH,
            signature: None,
            key_fingerprint: None,
        };
        let signers = AllowedSigners::parse("", "signers").unwrap();
        let subject = Subject {
            target: "operational",
            environment: "production",
            direction: Direction::Up,
            plan_hash: &a,
        };
        let actor = Signer {
            principals: vec!["eve".into()],
            fingerprint: "SHA256:eve".into(),
        };
        let reason = check(
            &[approval("ann", &a), approval("bob", &b)],
            &signers,
            &subject,
            &actor,
            1,
        )
        .unwrap_err();
        assert!(
            reason.contains("in signers other than the actor's (eve, key SHA256:eve); it has 0"),
            "{reason}"
        );
        assert!(
            reason.contains("the approval as \"ann\" has no signature"),
            "{reason}"
        );
        assert!(
            reason.contains("the plan changed after it was approved"),
            "{reason}"
        );
        assert!(check(&[], &signers, &subject, &actor, 0).is_ok());
        let err = verify_actor(&signers, &subject, &[]).unwrap_err();
        assert!(err.contains("is not signed by its actor"), "{err}");
    }
}
