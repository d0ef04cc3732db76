//! Shared by the CLI tests that migrate throwaway folders (`--dir`).
// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's `configs/migrate.toml` copied into a folder of its own,
/// for `DBOPS_CONFIG`. The tests run from crates/dbops, where dbops would
/// find the repository's configuration walking up, and with it
/// configs/lint.toml, whose data-classification map rightly refuses the
/// tests' made-up tables. This copy keeps the repository's settings,
/// environments and hooks, and lints with the rules' defaults.
pub fn standalone_config() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let folder = tempfile::tempdir().unwrap().keep();
        let path = folder.join("migrate.toml");
        std::fs::write(&path, include_str!("../../../../configs/migrate.toml")).unwrap();
        path
    })
}

/// A finished dbops process as (exit code, stdout, stderr).
pub fn outcome(output: std::process::Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The shipped rollup configuration (analytics/transforms/config.toml)
/// without safety lag, so that events inserted a moment ago are rolled up
/// at once, and with its assertions file as an absolute path, so that the
/// text works from any folder.
pub fn rollup_config_without_lag() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shipped = std::fs::read_to_string(root.join("analytics/transforms/config.toml")).unwrap();
    shipped
        .replace("safety_lag = \"1m\"", "safety_lag = \"0s\"")
        .replace(
            "assertions = \"../tests/hourly_rollup.toml\"",
            &format!(
                "assertions = {:?}",
                root.join("analytics/tests/hourly_rollup.toml")
                    .display()
                    .to_string()
            ),
        )
        .replace(
            "clickhouse_assertions = \"../tests/clickhouse/hourly_rollup.toml\"",
            &format!(
                "clickhouse_assertions = {:?}",
                root.join("analytics/tests/clickhouse/hourly_rollup.toml")
                    .display()
                    .to_string()
            ),
        )
}

/// 3,000 usage events of organizations 1 to 5 over the 30 hours before the
/// current one (30 (organization, hour) buckets), one in nine failed.
const THIRTY_HOURS_OF_EVENTS: &str = "\
INSERT INTO usage_events (organization_id, api_key_id, model_id, request_id, status, input_tokens,
                          output_tokens, cost_micros, latency_ms, occurred_at)
SELECT 1 + i % 5, nullif(i % 3, 0), 1 + i % 4, gen_random_uuid(),
       CASE WHEN i % 9 = 0 THEN 'timeout' ELSE 'ok' END, 100 + i, 10 + i % 50, 1000 + i, 50 + i % 400,
       date_trunc('hour', now()) - (i % 30) * interval '1 hour' - interval '1 minute'
FROM generate_series(1, 3000) AS i";

/// dbops in the repository's root with DB_URL at `db`, ANALYTICS_URL at
/// `analytics` and the rollup configuration `config` in a folder of its
/// own, which must outlive the command.
pub fn rollup_command(
    config: &str,
    db: &str,
    analytics: &str,
    args: &[&str],
) -> (std::process::Command, tempfile::TempDir) {
    use assert_cmd::cargo::CommandCargoExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollup.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = std::process::Command::cargo_bin("dbops").unwrap();
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("DB_URL", db)
        .env("ANALYTICS_URL", analytics)
        .env("DBOPS_ROLLUP_CONFIG", &path)
        .env("NO_COLOR", "1")
        .args(args);
    (command, dir)
}

/// A throwaway database with the operational schema and
/// [`THIRTY_HOURS_OF_EVENTS`].
pub async fn with_rollup_events() -> testdb::TestDb {
    let db = testdb::TestDb::new().await;
    db.apply_up_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/operational"))
        .await;
    db.connect()
        .await
        .batch_execute(THIRTY_HOURS_OF_EVENTS)
        .await
        .unwrap();
    db
}
