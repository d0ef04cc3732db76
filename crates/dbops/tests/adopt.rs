//! Adopting a database built without dbops, through the real binary: `up`
//! refuses it (exit 19) and says how to adopt it; `migrate baseline` lists
//! differences (exit 20) and records once accepted, where the environment
//! allows; `migrate import` converts another tool's folder and records what
//! its history table says is applied, or refuses a dirty one (exit 21).

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

mod support;

fn dbops(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let output = Command::cargo_bin("dbops")
        .unwrap()
        .env("DBOPS_CONFIG", support::standalone_config())
        .args(args)
        .args(["--database-url", db.url()])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

async fn run_sql(db: &TestDb, sql: &str) {
    db.connect().await.batch_execute(sql).await.unwrap();
}

#[tokio::test]
async fn an_unadopted_database_is_refused_then_baselined() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    write(
        dir.path(),
        &[
            (
                "202501010000_orgs.up.sql",
                "CREATE TABLE orgs (id bigint PRIMARY KEY, name text NOT NULL);",
            ),
            ("202501010000_orgs.down.sql", "DROP TABLE orgs;"),
            (
                "202501010100_orgs_slug.up.sql",
                "ALTER TABLE orgs ADD COLUMN slug text;",
            ),
            (
                "202501010100_orgs_slug.down.sql",
                "ALTER TABLE orgs DROP COLUMN slug;",
            ),
        ],
    );
    // Built by hand, with a column type of its own.
    run_sql(
        &db,
        "CREATE TABLE orgs (id integer PRIMARY KEY, name text NOT NULL);",
    )
    .await;

    let (code, _, stderr) = dbops(&db, &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 19, "{stderr}");
    assert!(stderr.contains("such as table public.orgs"), "{stderr}");
    assert!(
        stderr.contains(
            "hint: adopt it with `dbops migrate baseline --target operational --to VERSION`"
        ),
        "{stderr}"
    );

    let baseline = [
        "migrate",
        "baseline",
        "--dir",
        dir_arg,
        "--to",
        "202501010000",
    ];
    let (code, _, stderr) = dbops(&db, &baseline);
    assert_eq!(code, 20, "{stderr}");
    assert!(
        stderr.contains("columns: public.orgs.id bigint not null #1 -- missing from the database"),
        "{stderr}"
    );
    assert!(
        stderr.contains("columns: public.orgs.id integer not null #1 -- only in the database"),
        "{stderr}"
    );

    let accepted: Vec<&str> = baseline
        .iter()
        .copied()
        .chain(["--accept-differences", "--env", "production"])
        .collect();
    let (code, _, stderr) = dbops(&db, &accepted);
    assert_eq!(code, 12, "{stderr}");
    assert!(
        stderr.contains("environment production does not allow --accept-differences"),
        "{stderr}"
    );

    let (code, stdout, stderr) = dbops(&db, &accepted[..accepted.len() - 2]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("operational: baseline at 202501010000: recorded 1 migration(s) as applied; 2 difference(s) accepted (audited)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: accepted difference: columns: public.orgs.id"),
        "{stderr}"
    );

    let (code, stdout, stderr) = dbops(&db, &["migrate", "up", "--dir", dir_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("applied 1 migration(s)"), "{stdout}");
    let (code, _, stderr) = dbops(&db, &baseline);
    assert_eq!(code, 12, "a second baseline is refused: {stderr}");
}

#[tokio::test]
async fn another_tools_folder_and_history_are_imported() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("goose");
    let target = dir.path().join("dbops");
    std::fs::create_dir_all(&source).unwrap();
    write(
        &source,
        &[
            (
                "00001_create_orgs.sql",
                "-- +goose Up\nCREATE TABLE orgs (id bigint PRIMARY KEY);\n-- +goose Down\nDROP TABLE orgs;\n",
            ),
            (
                "00002_orgs_name.sql",
                "-- +goose Up\nALTER TABLE orgs ADD COLUMN name text;\n-- +goose Down\nALTER TABLE orgs DROP COLUMN name;\n",
            ),
        ],
    );
    // goose's postgres dialect table, one migration applied.
    run_sql(
        &db,
        "CREATE TABLE orgs (id bigint PRIMARY KEY);
         CREATE TABLE goose_db_version (
             id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
             version_id bigint NOT NULL,
             is_applied boolean NOT NULL,
             tstamp timestamp NOT NULL DEFAULT now()
         );
         INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (1, true);",
    )
    .await;
    let import = [
        "migrate",
        "import",
        "--from",
        "goose",
        source.to_str().unwrap(),
        "--dir",
        target.to_str().unwrap(),
    ];
    // Without a database: the files only.
    let output = Command::cargo_bin("dbops")
        .unwrap()
        .env("DBOPS_CONFIG", support::standalone_config())
        .args(import)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("no database given (--database-url): nothing recorded"),
        "{stdout}"
    );
    let (code, stdout, stderr) = dbops(&db, &import);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("(0 file(s) new, 5 already there)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("operational: 2 goose migration(s) written to"),
        "{stdout}"
    );
    assert!(
        stdout.contains("operational: baseline at 200001010001: recorded 1 migration(s) as applied; the database matches what they build"),
        "{stdout}"
    );
    let mapping = std::fs::read_to_string(target.join("imported-from-goose.md")).unwrap();
    assert!(
        mapping.contains("| 2 | orgs_name | 200001010002 | orgs_name | sequence |"),
        "{mapping}"
    );
    let (code, stdout, stderr) = dbops(&db, &["migrate", "up", "--dir", target.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("applied 1 migration(s)"), "{stdout}");

    // A golang-migrate history left dirty is refused, and nothing is recorded.
    let other = TestDb::new().await;
    let golang = dir.path().join("golang");
    std::fs::create_dir_all(&golang).unwrap();
    write(
        &golang,
        &[
            (
                "1_orgs.up.sql",
                "CREATE TABLE orgs (id bigint PRIMARY KEY);",
            ),
            ("1_orgs.down.sql", "DROP TABLE orgs;"),
        ],
    );
    run_sql(
        &other,
        "CREATE TABLE orgs (id bigint PRIMARY KEY);
         CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null);
         INSERT INTO schema_migrations VALUES (1, true);",
    )
    .await;
    let golang_target = dir.path().join("from-golang");
    let import_golang = |extra: &[&str]| {
        let mut args = vec![
            "migrate",
            "import",
            "--from",
            "golang-migrate",
            golang.to_str().unwrap(),
            "--dir",
            golang_target.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        dbops(&other, &args)
    };
    run_sql(
        &other,
        "UPDATE schema_migrations SET version = -1, dirty = false",
    )
    .await;
    let (code, stdout, stderr) = import_golang(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("schema_migrations records no applied migration; nothing to record"),
        "{stdout}"
    );
    run_sql(
        &other,
        "UPDATE schema_migrations SET version = 1, dirty = true",
    )
    .await;
    let (code, _, stderr) = import_golang(&[]);
    assert_eq!(code, 21, "{stderr}");
    assert!(
        stderr.contains("schema_migrations records golang-migrate migration 1 as dirty"),
        "{stderr}"
    );
    // A history table named on the command line must be a table name: exit 3.
    let (code, _, stderr) =
        import_golang(&["--history-table", "schema_migrations; DROP TABLE orgs"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("is not a table name"), "{stderr}");
    // A file the tool would run that dbops cannot take over: exit 4.
    write(&golang, &[("2_seed.go", "package main")]);
    let (code, _, stderr) = import_golang(&[]);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("2_seed.go: cannot be imported from golang-migrate"),
        "{stderr}"
    );
}
