//! Signed approvals, tried as an attacker would: every forgery is refused,
//! and two distinct approvers other than the actor let the run go. Keys are
//! made by `ssh-keygen` for each test run and never kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

mod support;

/// A folder of throwaway Ed25519 keys, one per name, and the environment's
/// allowed-signers file listing some of them.
struct Keys {
    folder: tempfile::TempDir,
}

impl Keys {
    fn new(names: &[&str]) -> Keys {
        let folder = tempfile::tempdir().unwrap();
        for name in names {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(folder.path().join(name))
                .status()
                .unwrap();
            assert!(status.success(), "ssh-keygen -t ed25519 for {name}");
        }
        Keys { folder }
    }

    fn private(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    fn public(&self, name: &str) -> String {
        std::fs::read_to_string(self.folder.path().join(format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `ssh-keygen -Y sign` of `message` with `name`'s key in `namespace`, into a file.
    fn sign(&self, name: &str, namespace: &str, message: &str, file: &str) -> PathBuf {
        let mut child = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(self.private(name))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(message.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let path = self.folder.path().join(file);
        std::fs::write(&path, output.stdout).unwrap();
        path
    }
}

/// A project: one migration, and a configuration whose production needs two
/// approvals verified against `signers`.
struct Project {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Project {
    fn new(signers: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let migrations = dir.path().join("migrations");
        std::fs::create_dir(&migrations).unwrap();
        std::fs::write(
            migrations.join("202501010000_widgets.up.sql"),
            "CREATE TABLE widgets (id bigint GENERATED ALWAYS AS IDENTITY, CONSTRAINT widgets_pkey PRIMARY KEY (id));",
        )
        .unwrap();
        std::fs::write(
            migrations.join("202501010000_widgets.down.sql"),
            "DROP TABLE widgets;",
        )
        .unwrap();
        std::fs::write(dir.path().join("allowed_signers"), signers).unwrap();
        let config = dir.path().join("migrate.toml");
        std::fs::write(
            &config,
            "[targets.operational]\ndir = \"migrations\"\nurl_env = \"DB_URL\"\n\n\
             [environments.staging]\napprovals = 0\n\n\
             [environments.production]\napprovals = 2\nconfirm = true\nallowed_signers = \"allowed_signers\"\n",
        )
        .unwrap();
        Project { dir, config }
    }

    fn run(&self, url: &str, args: &[&str]) -> (i32, String, String) {
        let output = Command::cargo_bin("dbops")
            .unwrap()
            .env_remove("ANALYTICS_URL")
            .env("DBOPS_CONFIG", &self.config)
            .env("DB_URL", url)
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap();
        support::outcome(output)
    }

    fn plan_hash(&self, url: &str) -> String {
        let (code, stdout, stderr) = self.run(url, &["migrate", "plan", "--json"]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["hash"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `dbops migrate approve --plan PLAN --env ENVIRONMENT` and `more`.
    fn approve_with(
        &self,
        url: &str,
        plan: &str,
        environment: &str,
        more: &[&str],
    ) -> (i32, String, String) {
        let mut args = vec!["migrate", "approve", "--plan", plan, "--env", environment];
        args.extend_from_slice(more);
        self.run(url, &args)
    }

    /// The text an approval of `plan` in `environment` signs, as dbops prints it.
    fn message(&self, url: &str, plan: &str, environment: &str) -> String {
        let (code, stdout, stderr) = self.approve_with(url, plan, environment, &["--message"]);
        assert_eq!(code, 0, "{stderr}");
        stdout
    }

    fn approve(&self, url: &str, plan: &str, signature: &Path) -> (i32, String, String) {
        let signature = signature.to_str().unwrap();
        self.approve_with(url, plan, "production", &["--signature", signature])
    }

    fn up(&self, url: &str, actor: &str, run_signature: Option<&Path>) -> (i32, String, String) {
        let mut args = vec![
            "migrate",
            "up",
            "--env",
            "production",
            "--yes",
            "--actor",
            actor,
        ];
        if let Some(signature) = run_signature {
            args.extend(["--run-signature", signature.to_str().unwrap()]);
        }
        self.run(url, &args)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Records an approval row directly, as a database user could, bypassing `approve`.
async fn insert_approval(db: &TestDb, plan: &str, approver: &str, signature: Option<&str>) {
    db.connect()
        .await
        .execute(
            "INSERT INTO dbops.approvals (target, environment, plan_hash, approver, signature) VALUES ('operational', 'production', $1, $2, $3)",
            &[&plan, &approver, &signature],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn forged_approvals_are_refused_and_two_distinct_approvers_are_accepted() {
    let db = TestDb::new().await;
    let url = db.url();
    let keys = Keys::new(&["ann", "bob", "carol", "eve", "mallory"]);
    // bob's key is listed twice, under two names; mallory is not listed.
    let signers = format!(
        "ann {}\nbob {}\nrobert {}\ncarol {}\neve {}\n",
        keys.public("ann"),
        keys.public("bob"),
        keys.public("bob"),
        keys.public("carol"),
        keys.public("eve")
    );
    let project = Project::new(&signers);
    let plan = project.plan_hash(url);
    let message = project.message(url, &plan, "production");
    assert!(
        message.contains(&format!("plan: {plan}\n"))
            && message.contains("environment: production\n")
            && message.contains("target: operational\n")
            && message.contains("direction: up\n"),
        "{message}"
    );

    // The actor must sign the run; without it the message says how.
    let (code, _, stderr) = project.up(url, "eve", None);
    assert_eq!(code, 12, "{stderr}");
    assert!(
        stderr.contains("is not signed by its actor")
            && stderr.contains("--message | ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n dbops-run"),
        "{stderr}"
    );
    let eve_runs = keys.sign("eve", "dbops-run", &message, "eve-run.sig");
    // A run signed by eve is not ann's run.
    let (code, _, stderr) = project.up(url, "ann", Some(&eve_runs));
    assert_eq!(code, 12, "{stderr}");
    assert!(stderr.contains("not by the actor \"ann\""), "{stderr}");
    // An approval is not a run signature: the namespaces differ.
    let ann_approves = keys.sign("ann", "dbops-approval", &message, "ann.sig");
    let (code, _, stderr) = project.up(url, "ann", Some(&ann_approves));
    assert_eq!(code, 12, "{stderr}");
    assert!(
        stderr.contains("signed in namespace \"dbops-approval\", not \"dbops-run\""),
        "{stderr}"
    );

    // Unsigned: a name typed on the command line is not an approval at all...
    let (code, _, stderr) =
        project.run(url, &["migrate", "approve", "--plan", &plan, "--as", "bob"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = project.run(url, &["migrate", "approve", "--plan", &plan]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--signature"), "{stderr}");
    // bob approves with his key (which is listed under two names).
    let bob = keys.sign("bob", "dbops-approval", &message, "bob.sig");
    let (code, stdout, stderr) = project.approve(url, &plan, &bob);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("bob,robert (key SHA256:"), "{stdout}");
    // A name written into the table without a signature does not count.
    insert_approval(&db, &plan, "bob", None).await;
    insert_approval(&db, &plan, "carol", Some("carol says yes")).await;

    // A key not in the list.
    let mallory = keys.sign("mallory", "dbops-approval", &message, "mallory.sig");
    let (code, _, stderr) = project.approve(url, &plan, &mallory);
    assert_eq!(code, 12, "{stderr}");
    assert!(stderr.contains("which is not in"), "{stderr}");
    // A signature over another environment, plan or target.
    let other_env = project.message(url, &plan, "staging");
    let other_plan = message.replace(&plan, &"0".repeat(64));
    let other_target = message.replace("target: operational", "target: analytics");
    for (i, text) in [other_env, other_plan, other_target].iter().enumerate() {
        let signature = keys.sign("carol", "dbops-approval", text, &format!("other{i}.sig"));
        let (code, _, stderr) = project.approve(url, &plan, &signature);
        assert_eq!(code, 12, "{stderr}");
        assert!(stderr.contains("is not over this plan"), "{stderr}");
        // Written into the table directly, it does not count at run time either.
        let text = std::fs::read_to_string(&signature).unwrap();
        insert_approval(&db, &plan, &format!("carol{i}"), Some(&text)).await;
    }
    let text = std::fs::read_to_string(&mallory).unwrap();
    insert_approval(&db, &plan, "mallory", Some(&text)).await;

    // The same key twice under two names: bob's signature copied under the
    // name robert; one person counts once.
    insert_approval(
        &db,
        &plan,
        "robert",
        Some(&std::fs::read_to_string(&bob).unwrap()),
    )
    .await;
    // The actor's own key.
    let eve = keys.sign("eve", "dbops-approval", &message, "eve.sig");
    let (code, _, stderr) = project.approve(url, &plan, &eve);
    assert_eq!(code, 0, "{stderr}");

    let (code, _, stderr) = project.up(url, "eve", Some(&eve_runs));
    assert_eq!(code, 12, "{stderr}");
    for expected in [
        "needs 2 signed approval(s) by distinct keys",
        "it has 1 (bob,robert)",
        "the approval as \"bob\" has no signature and does not count",
        "the approval as \"carol\" does not count: not an SSH signature",
        "the approval as \"carol0\" does not count: the signature by key",
        "the approval as \"mallory\" does not count: signed by key",
        "is the same person as bob,robert",
        "eve (key SHA256:",
        "nobody counts for their own run",
        "-n dbops-approval > approval.sig",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    let applied: bool = db
        .connect()
        .await
        .query_one("SELECT to_regclass('widgets') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!applied, "nothing ran");

    // A second, distinct approver: the run goes, and the audit trail records
    // the approval with the key's fingerprint.
    let (code, _, stderr) = project.approve(url, &plan, &ann_approves);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = project.up(url, "eve", Some(&eve_runs));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("applied 1 migration(s)"), "{stdout}");
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT key_fingerprint, signature LIKE '-----BEGIN SSH SIGNATURE-----%' FROM dbops.approvals WHERE approver = 'ann'",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, String>(0).starts_with("SHA256:"));
    assert!(row.get::<_, bool>(1));
    let approvals: i64 = client
        .query_one(
            "SELECT count(*) FROM dbops.audit_log WHERE action = 'migration.approve' AND metadata ? 'key_fingerprint'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(approvals, 3, "bob, eve and ann");
}

#[tokio::test]
async fn an_approval_of_a_changed_plan_no_longer_counts() {
    let db = TestDb::new().await;
    let url = db.url();
    let keys = Keys::new(&["ann", "bob", "eve"]);
    let signers = ["ann", "bob", "eve"]
        .iter()
        .map(|name| format!("{name} {}\n", keys.public(name)))
        .collect::<String>();
    let project = Project::new(&signers);
    let plan = project.plan_hash(url);
    let message = project.message(url, &plan, "production");
    for name in ["ann", "bob"] {
        let signature = keys.sign(name, "dbops-approval", &message, &format!("{name}.sig"));
        let (code, _, stderr) = project.approve(url, &plan, &signature);
        assert_eq!(code, 0, "{stderr}");
    }
    // A new migration changes the plan: the run signature and approvals are of the old one.
    std::fs::write(
        project.path().join("migrations/202501010100_gadgets.up.sql"),
        "CREATE TABLE gadgets (id bigint GENERATED ALWAYS AS IDENTITY, CONSTRAINT gadgets_pkey PRIMARY KEY (id));",
    )
    .unwrap();
    std::fs::write(
        project
            .path()
            .join("migrations/202501010100_gadgets.down.sql"),
        "DROP TABLE gadgets;",
    )
    .unwrap();
    let new_plan = project.plan_hash(url);
    let new_message = project.message(url, &new_plan, "production");
    let run = keys.sign("eve", "dbops-run", &new_message, "run.sig");
    let (code, _, stderr) = project.up(url, "eve", Some(&run));
    assert_eq!(code, 12, "{stderr}");
    assert!(
        stderr.contains("it has 0") && stderr.contains("the plan changed after it was approved"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unusable_allowed_signers_file_is_a_configuration_error_naming_the_line() {
    let db = TestDb::new().await;
    let keys = Keys::new(&["eve"]);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(keys.folder.path().join("ecdsa"))
        .status()
        .unwrap();
    assert!(status.success());
    let signers = format!("eve {}\nann {}\n", keys.public("eve"), keys.public("ecdsa"));
    let project = Project::new(&signers);
    let plan = project.plan_hash(db.url());
    let message = project.message(db.url(), &plan, "production");
    let run = keys.sign("eve", "dbops-run", &message, "run.sig");
    let (code, _, stderr) = project.up(db.url(), "eve", Some(&run));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(
            "allowed_signers:2: a ecdsa-sha2-nistp256 key: only Ed25519 keys are accepted"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn approvals_need_a_readable_signature_a_signers_file_and_an_allowed_namespace() {
    let db = TestDb::new().await;
    let url = db.url();
    let keys = Keys::new(&["ann", "eve"]);
    // ann's key may sign git commits only.
    let signers = format!(
        "ann namespaces=\"git\" {}\neve {}\n",
        keys.public("ann"),
        keys.public("eve")
    );
    let project = Project::new(&signers);
    let plan = project.plan_hash(url);
    let message = project.message(url, &plan, "production");
    let ann = keys.sign("ann", "dbops-approval", &message, "ann.sig");
    let (code, _, stderr) = project.approve(url, &plan, &ann);
    assert_eq!(code, 12, "{stderr}");
    assert!(
        stderr.contains("is not allowed to sign in namespace \"dbops-approval\""),
        "{stderr}"
    );

    // A rollback plan is another text: an approval of the apply does not fit it.
    let down = project.approve_with(
        url,
        &plan,
        "production",
        &["--direction", "down", "--message"],
    );
    assert_eq!(down.0, 0, "{}", down.2);
    assert_eq!(down.1, message.replace("direction: up", "direction: down"));

    let (code, _, stderr) = project.approve(url, &plan, &project.path().join("missing.sig"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("reading the signature"), "{stderr}");

    // An environment without allowed signers cannot take approvals.
    let signature = ann.to_str().unwrap();
    let (code, _, stderr) =
        project.approve_with(url, &plan, "staging", &["--signature", signature]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("environment staging names no allowed_signers"),
        "{stderr}"
    );

    // The signers file named by the policy is gone.
    std::fs::remove_file(project.path().join("allowed_signers")).unwrap();
    let (code, _, stderr) = project.approve(url, &plan, &ann);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot read the allowed signers"),
        "{stderr}"
    );
    let run = keys.sign("eve", "dbops-run", &message, "run.sig");
    let (code, _, stderr) = project.up(url, "eve", Some(&run));
    assert_eq!(code, 3, "{stderr}");
}
