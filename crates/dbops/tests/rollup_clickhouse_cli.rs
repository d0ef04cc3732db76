//! The real `dbops` binary on the `clickhouse` rollup target and the two-shard cluster of
//! `cargo xtask clickhouse` (its URLs in `CLICKHOUSE_URLS`): migrate, run, check, status,
//! reconcile, and the exit codes of a corrupted row, a bad setting and an unreachable server.

use std::path::{Path, PathBuf};

mod support;

use rollup_clickhouse::{ClickHouse, Settings};
use testdb::TestDb;
use url::Url;

/// The environment variable `cargo xtask ci` sets from `cargo xtask clickhouse`.
const URLS_ENV: &str = "CLICKHOUSE_URLS";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cluster_urls() -> String {
    std::env::var(URLS_ENV).unwrap_or_else(|_| {
        panic!(
            "{URLS_ENV} is unset: start the two-shard cluster with `cargo xtask clickhouse` \
             and export {URLS_ENV}=<the URLs it printed>"
        )
    })
}

/// Runs dbops with DB_URL (and ANALYTICS_URL) at `db`, the shipped rollup
/// configuration without safety lag, its clickhouse target in the ClickHouse
/// database `database`, with `edit` applied to the configuration text and
/// `env` set.
fn dbops(
    db: &str,
    database: &str,
    edit: &Edit<'_>,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let config = edit(support::rollup_config_without_lag().replace(
        "database = \"dbops_analytics\"",
        &format!("database = \"{database}\""),
    ));
    let (mut command, _dir) = support::rollup_command(&config, db, db, args);
    command
        .env(URLS_ENV, cluster_urls())
        .envs(env.iter().copied());
    support::outcome(command.output().unwrap())
}

/// A change to the configuration text.
type Edit<'a> = dyn Fn(String) -> String + 'a;

/// A configuration change, the environment, and the message expected.
type BadSetting<'a> = (&'a Edit<'a>, &'a [(&'a str, &'a str)], &'a str);

fn unchanged(text: String) -> String {
    text
}

/// Operational and analytics schemas on a throwaway PostgreSQL database,
/// with 3,000 events over the last 30 hours.
async fn with_events() -> TestDb {
    let db = support::with_rollup_events().await;
    db.apply_up_files(&root().join("migrations/analytics"))
        .await;
    db
}

/// The ClickHouse target's audit entries of `action` in the platform's
/// audit log, each as "target_id node error outcome".
async fn audit_entries(db: &TestDb, action: &str) -> Vec<String> {
    db.connect()
        .await
        .query(
            "SELECT concat_ws(' ', target_id, metadata->>'node', metadata->>'error', metadata->>'outcome') \
             FROM public.audit_log WHERE action = $1 AND metadata->>'engine' = 'clickhouse' ORDER BY id",
            &[&action],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A client of the cluster, working in `database`.
fn cluster(database: &str) -> ClickHouse {
    ClickHouse::new(Settings {
        urls: cluster_urls()
            .split(',')
            .map(|url| Url::parse(url.trim()).unwrap())
            .collect(),
        user: "default".into(),
        password: None,
        database: database.to_owned(),
        cluster: "dbops".into(),
    })
    .unwrap()
}

#[tokio::test]
async fn migrate_run_check_status_reconcile_and_a_corrupted_row_exits_15() {
    let db = with_events().await;
    let database = db.name().to_owned();
    let run = |args: &[&str]| dbops(db.url(), &database, &unchanged, &[], args);

    let (code, stdout, stderr) = run(&["rollup", "status", "--target", "clickhouse"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("target clickhouse: watermark not set (no run yet)"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(&["rollup", "migrate", "--target", "clickhouse"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("on 2 server(s) of cluster dbops"),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("up ")), "{stdout}");
    let (code, stdout, _) = run(&["rollup", "migrate", "--target", "clickhouse"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("0 migration step(s)"),
        "applied once: {stdout}"
    );
    // Audited in the analytics database: one entry per server for the one migration.
    let audited = audit_entries(&db, "migration.apply").await;
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(
        audited.iter().all(|e| e.ends_with("succeeded")),
        "{audited:?}"
    );

    let (code, stdout, stderr) = run(&["rollup", "run", "--target", "clickhouse"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("(clickhouse, full rebuild): 30 (organization, hour) bucket(s)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&["rollup", "check", "--target", "clickhouse"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("13 assertion(s) from") && stdout.contains(", 0 failed"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&["rollup", "reconcile", "--target", "clickhouse"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("0 (organization, hour) bucket(s) differ"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&["rollup", "status", "--target", "clickhouse", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(status["watermark"].is_string(), "{stdout}");
    assert_eq!(status["runs"].as_array().unwrap().len(), 1, "{stdout}");
    assert_eq!(status["runs"][0]["status"], "succeeded", "{stdout}");
    assert_eq!(status["runs"][0]["hours_covered"], 30, "{stdout}");
    let (_, stdout, _) = run(&["rollup", "status", "--target", "clickhouse"]);
    assert!(stdout.contains("succeeded"), "{stdout}");

    // A newer version of one hourly row of organization 2 with a wrong cost.
    let ch = cluster(&database);
    ch.query(
        0,
        "INSERT INTO usage_hourly_rollups SELECT hour_at, organization_id, api_key_id, model_id, \
         request_count, error_count, input_tokens, output_tokens, cost_micros + 5, latency_ms_sum, \
         latency_ms_max, latency_bins, latency_bin_counts, version + 1000 \
         FROM usage_hourly_rollups FINAL WHERE organization_id = 2 \
         ORDER BY hour_at, api_key_id, model_id LIMIT 1",
        "corrupting one row",
    )
    .await
    .unwrap();
    let (code, stdout, _) = run(&["rollup", "reconcile", "--target", "clickhouse"]);
    assert_eq!(code, 15, "{stdout}");
    assert!(
        stdout.contains("organization 2: cost_micros: events"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 (organization, hour) bucket(s) differ"),
        "{stdout}"
    );
    // The daily row no longer adds up: the assertions see it too.
    let (code, stdout, _) = run(&["rollup", "check", "--target", "clickhouse"]);
    assert_eq!(code, 15, "{stdout}");
    assert!(
        stdout.contains("FAIL daily_counts_and_token_sums_match_hourly"),
        "{stdout}"
    );
    assert!(stdout.contains(", 1 failed"), "{stdout}");

    // A row of organization 3 copied onto the shard that does not hold the
    // organization: FINAL keeps one version per shard, so readers would
    // count the bucket twice. The unique assertion finds it.
    let holder = {
        let mut holder = None;
        for node in 0..ch.nodes() {
            let rows = ch
                .query(
                    node,
                    "SELECT count() FROM usage_hourly_rollups_local WHERE organization_id = 3 FORMAT TabSeparated",
                    "finding the shard",
                )
                .await
                .unwrap();
            if rows.trim() != "0" {
                holder = Some(node);
            }
        }
        holder.expect("a shard holds organization 3")
    };
    let (from, to) = (holder, 1 - holder);
    let row = ch
        .query(
            from,
            "SELECT * FROM usage_hourly_rollups_local WHERE organization_id = 3              ORDER BY hour_at LIMIT 1 FORMAT TabSeparated",
            "reading a row",
        )
        .await
        .unwrap();
    ch.query(
        to,
        &format!("INSERT INTO usage_hourly_rollups_local FORMAT TabSeparated\n{row}"),
        "copying a row to the other shard",
    )
    .await
    .unwrap();
    let (code, stdout, _) = run(&["rollup", "check", "--target", "clickhouse", "--json"]);
    assert_eq!(code, 15, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let unique = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["assertion"] == "hourly_buckets_unique")
        .unwrap();
    assert_eq!(unique["violations"], 1, "{stdout}");
    let sample = unique["sample"][0].as_str().unwrap();
    assert!(
        sample.contains("\"copies\":\"2\"") || sample.contains("\"copies\":2"),
        "{stdout}"
    );

    // A full run repairs both: every row written again, older versions
    // (the corrupted row, the copy on the wrong shard) deleted.
    let (code, stdout, stderr) = run(&["rollup", "run", "--target", "clickhouse", "--full"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(clickhouse, full rebuild)"), "{stdout}");
    for command in ["check", "reconcile"] {
        let (code, stdout, stderr) = run(&["rollup", command, "--target", "clickhouse"]);
        assert_eq!(code, 0, "{command}: {stdout}{stderr}");
    }

    let (code, stdout, stderr) = run(&[
        "rollup",
        "migrate",
        "--target",
        "clickhouse",
        "--down-to",
        "0",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("down ")), "{stdout}");
    assert_eq!(audit_entries(&db, "migration.rollback").await.len(), 2);
    for node in 0..ch.nodes() {
        ch.query(
            node,
            &format!("DROP DATABASE IF EXISTS {database}"),
            "dropping the test database",
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn bad_settings_exit_3_naming_the_key() {
    let db = TestDb::new().await;
    let database = db.name().to_owned();
    let status = ["rollup", "run", "--target", "clickhouse"];
    let cases: [BadSetting<'_>; 5] = [
        (
            &|c| c.replace("cluster = \"dbops\"", "cluster = \"1 shard\""),
            &[],
            "targets.clickhouse.cluster: \"1 shard\" is not a plain identifier",
        ),
        (
            &|c| c.replace("# password_env = ", "password_env = "),
            &[],
            "targets.clickhouse.password_env: the environment variable CLICKHOUSE_PASSWORD is unset",
        ),
        (
            &|c| {
                c.replace(
                    "urls_env = \"CLICKHOUSE_URLS\"",
                    "urls_env = \"DBOPS_NO_SUCH_URLS\"",
                )
            },
            &[],
            "targets.clickhouse.urls_env: the environment variable DBOPS_NO_SUCH_URLS is unset",
        ),
        (
            &unchanged,
            &[(URLS_ENV, "http://127.0.0.1:1,hunter2")],
            "targets.clickhouse.urls_env: URL 2 is not a URL: relative URL without a base",
        ),
        (
            &unchanged,
            &[(URLS_ENV, "https://admin:hunter2@ch.example:8443")],
            "targets.clickhouse.urls_env: a URL carries credentials",
        ),
    ];
    for (edit, env, expected) in cases {
        let (code, stdout, stderr) = dbops(db.url(), &database, edit, env, &status);
        assert_eq!(code, 3, "{expected}: {stdout}{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let (code, _, stderr) = dbops(
        db.url(),
        &database,
        &|c| c.replace(&format!("database = \"{database}\"\n"), ""),
        &[],
        &status,
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains(
            "targets.clickhouse.database: is required for rollups_database = \"clickhouse\""
        ),
        "{stderr}"
    );
    for (args, expected) in [
        (
            &[
                "rollup",
                "run",
                "--target",
                "clickhouse",
                "--full",
                "--recompute-from",
                "2025-11-16T00:00:00Z",
                "--recompute-to",
                "2025-11-16T01:00:00Z",
            ][..],
            "--recompute-from and --recompute-to go together, and not with --full",
        ),
        (
            &[
                "rollup",
                "check",
                "--target",
                "clickhouse",
                "--assertions",
                "a.toml",
            ][..],
            "cannot read a.toml",
        ),
    ] {
        let (code, _, stderr) = dbops(db.url(), &database, &unchanged, &[], args);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let (code, _, stderr) = dbops(
        db.url(),
        &database,
        &|c| {
            c.lines()
                .filter(|l| !l.starts_with("clickhouse_assertions"))
                .collect::<Vec<_>>()
                .join("\n")
        },
        &[],
        &["rollup", "check", "--target", "clickhouse"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("sets no [check] clickhouse_assertions"),
        "{stderr}"
    );
    let (code, _, stderr) = dbops(
        db.url(),
        &database,
        &unchanged,
        &[],
        &["rollup", "status", "--target", "clickhouse"],
    );
    assert_eq!(code, 13, "no analytics schema: {stderr}");
    assert!(
        stderr.contains("run `dbops migrate up --target analytics` first"),
        "{stderr}"
    );
    let (code, _, stderr) = dbops(db.url(), &database, &unchanged, &[], &["rollup", "migrate"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("rollup migrate applies to a clickhouse target"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_server_exits_5_naming_it_without_the_password() {
    let db = with_events().await;
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let urls = format!("http://127.0.0.1:{port}");
    let (code, stdout, stderr) = dbops(
        db.url(),
        db.name(),
        &|c| c.replace("# password_env = ", "password_env = "),
        &[(URLS_ENV, &urls), ("CLICKHOUSE_PASSWORD", "hunter2")],
        &["rollup", "migrate", "--target", "clickhouse"],
    );
    assert_eq!(code, 5, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach ClickHouse at http://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
    let audited = audit_entries(&db, "migration.apply").await;
    assert_eq!(audited.len(), 1, "the failed run is audited: {audited:?}");
    assert!(audited[0].contains("failed"), "{audited:?}");
    assert!(!audited[0].contains("hunter2"), "{audited:?}");
}
