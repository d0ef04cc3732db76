//! Adopting a database built without dbops, against a real PostgreSQL: the
//! verified baseline and the guard of a history's first run.

use std::path::Path;

use migrate_core::{
    AuditSettings, BaselineOptions, Database, Error, Migrator, Settings, Source, UpOptions,
};
use testdb::TestDb;

fn write(dir: &Path, version: i64, slug: &str, up: &str, down: &str) {
    std::fs::write(dir.join(format!("{version}_{slug}.up.sql")), up).unwrap();
    std::fs::write(dir.join(format!("{version}_{slug}.down.sql")), down).unwrap();
}

const ORGS: &str = "CREATE TABLE orgs (id bigint PRIMARY KEY, name text NOT NULL);";
const USERS: &str = "CREATE TABLE users (id bigint PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs);\n\
                     CREATE INDEX users_org_id_idx ON users (org_id);";
const STATUS: &str = "CREATE TYPE status AS ENUM ('active', 'gone');\n\
                      ALTER TABLE users ADD COLUMN status status NOT NULL DEFAULT 'active';";

/// Three migrations: orgs, users (with an index), a status enum and column.
fn three_migrations(dir: &Path) {
    write(dir, 202501010000, "orgs", ORGS, "DROP TABLE orgs;");
    write(dir, 202501010100, "users", USERS, "DROP TABLE users;");
    write(
        dir,
        202501010200,
        "status",
        STATUS,
        "ALTER TABLE users DROP COLUMN status; DROP TYPE status;",
    );
}

/// A migrator for `target`: tests that count scratch databases, which are
/// named after the target, use a target of their own.
fn migrator(db: &TestDb, dir: &Path, target: &str) -> Migrator {
    Migrator::new(
        target,
        Source::load(dir).unwrap(),
        Database::from_url(db.url()).unwrap(),
        Settings::default(),
    )
    .unwrap()
    .with_audit(AuditSettings {
        actor: "adopter".into(),
        metadata: serde_json::Map::new(),
    })
}

fn options(to: i64) -> BaselineOptions {
    BaselineOptions {
        to,
        scratch: None,
        accept_differences: false,
        ignore_tables: Vec::new(),
    }
}

async fn run_sql(db: &TestDb, sql: &str) {
    db.connect().await.batch_execute(sql).await.unwrap();
}

async fn history(db: &TestDb, target: &str) -> Vec<(i64, String, String)> {
    db.connect()
        .await
        .query(
            &format!(
                "SELECT version, name, checksum FROM dbops.{target}_schema_history ORDER BY version"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

async fn scratch_databases(db: &TestDb, target: &str) -> i64 {
    db.connect()
        .await
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'dbops\\_scratch\\_' || $1 || '\\_%'",
            &[&target],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_matching_database_is_baselined_with_the_checksums_a_run_writes() {
    let (built_by_hand, built_by_dbops) = (TestDb::new().await, TestDb::new().await);
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    // The database another tool built: the same SQL, the first two files.
    run_sql(&built_by_hand, &format!("{ORGS}\n{USERS}")).await;
    let before = scratch_databases(&built_by_hand, "matching").await;

    let report = migrator(&built_by_hand, dir.path(), "matching")
        .baseline(&options(202501010100))
        .await
        .unwrap();
    assert_eq!(report.recorded, [202501010000, 202501010100]);
    assert_eq!(report.schemas, ["public"]);
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    assert_eq!(scratch_databases(&built_by_hand, "matching").await, before);

    // The rows are exactly those `up` writes.
    migrator(&built_by_dbops, dir.path(), "matching")
        .up(&UpOptions {
            to: Some(202501010100),
            ..UpOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(
        history(&built_by_hand, "matching").await,
        history(&built_by_dbops, "matching").await
    );

    // One audit entry says what was recorded, by whom.
    let entry = built_by_hand
        .connect()
        .await
        .query_one(
            "SELECT actor, metadata FROM dbops.audit_log WHERE action = 'migration.baseline'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(entry.get::<_, String>(0), "adopter");
    let metadata: serde_json::Value = entry.get(1);
    assert_eq!(metadata["migrations"], 2);
    assert_eq!(metadata["differences"], 0);

    // The rest applies on top, and a second baseline is refused.
    let adopted = migrator(&built_by_hand, dir.path(), "matching");
    let run = adopted.up(&UpOptions::default()).await.unwrap();
    assert_eq!(run.completed.len(), 1);
    let error = adopted.baseline(&options(202501010100)).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::HistoryNotEmpty {
                applied: 3,
                newest: 202501010200,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn differences_are_listed_object_by_object_and_refuse_unless_accepted() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    // Built by hand, with a wider name, no index, and a table of its own.
    run_sql(
        &db,
        "CREATE TABLE orgs (id bigint PRIMARY KEY, name varchar(200) NOT NULL);
             CREATE TABLE users (id bigint PRIMARY KEY, org_id bigint NOT NULL REFERENCES orgs);
             CREATE TABLE legacy_notes (body text);",
    )
    .await;
    let before = scratch_databases(&db, "differing").await;
    let error = migrator(&db, dir.path(), "differing")
        .baseline(&options(202501010100))
        .await
        .unwrap_err();
    let Error::BaselineDiffers { differences, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(
        differences,
        &[
            "tables: public.legacy_notes table -- only in the database (the migrations do not build it)",
            "columns: public.orgs.name text not null #2 -- missing from the database (the migrations build it)",
            "columns: public.legacy_notes.body text null #1 -- only in the database (the migrations do not build it)",
            "columns: public.orgs.name character varying(200) not null #2 -- only in the database (the migrations do not build it)",
            "indexes: CREATE INDEX users_org_id_idx ON public.users USING btree (org_id) -- missing from the database (the migrations build it)",
        ]
    );
    assert!(
        error
            .to_string()
            .contains("\n  indexes: CREATE INDEX users_org_id_idx")
    );
    assert!(history(&db, "differing").await.is_empty());
    assert_eq!(scratch_databases(&db, "differing").await, before);

    // Accepted: recorded, and the differences are in the audit entry.
    let report = migrator(&db, dir.path(), "differing")
        .baseline(&BaselineOptions {
            accept_differences: true,
            ..options(202501010100)
        })
        .await
        .unwrap();
    assert_eq!(report.differences.len(), 5);
    assert_eq!(history(&db, "differing").await.len(), 2);
    let accepted: serde_json::Value = db
        .connect()
        .await
        .query_one(
            "SELECT metadata -> 'accepted_differences' FROM dbops.audit_log WHERE action = 'migration.baseline'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(accepted.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_baseline_needs_a_known_version_and_a_scratch_build_that_works() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    let error = migrator(&db, dir.path(), "operational")
        .baseline(&options(202501010101))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::UnknownVersion {
                version: 202501010101,
                ..
            }
        ),
        "{error}"
    );

    // A given scratch database that is not empty is refused by the guard,
    // inside the scratch build.
    let scratch = TestDb::new().await;
    run_sql(&scratch, "CREATE TABLE leftover (id int)").await;
    let error = migrator(&db, dir.path(), "operational")
        .baseline(&BaselineOptions {
            scratch: Some(Database::from_url(scratch.url()).unwrap()),
            ..options(202501010000)
        })
        .await
        .unwrap_err();
    let Error::Scratch { source, .. } = &error else {
        panic!("{error}");
    };
    assert!(matches!(**source, Error::NotAdopted { .. }), "{source}");

    // A migration that fails in the scratch build names it; nothing is recorded.
    write(
        dir.path(),
        202501010300,
        "broken",
        "ALTER TABLE nowhere ADD COLUMN x int;",
        "SELECT 1;",
    );
    let error = migrator(&db, dir.path(), "operational")
        .baseline(&options(202501010300))
        .await
        .unwrap_err();
    let Error::Scratch { source, .. } = &error else {
        panic!("{error}");
    };
    assert!(
        matches!(
            **source,
            Error::MigrationFailed {
                version: 202501010300,
                ..
            }
        ),
        "{source}"
    );
    assert!(history(&db, "operational").await.is_empty());
}

#[tokio::test]
async fn up_refuses_to_start_a_history_over_objects_built_without_it() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    run_sql(
        &db,
        &format!(
            "{ORGS}\n{USERS}\nCREATE VIEW recent AS SELECT * FROM users;
             CREATE FUNCTION touch() RETURNS int LANGUAGE sql AS 'SELECT 1';
             CREATE TABLE a1 (); CREATE TABLE a2 (); CREATE TABLE a3 ();
             CREATE SCHEMA elsewhere; CREATE TABLE elsewhere.ignored ();"
        ),
    )
    .await;
    let migrator = migrator(&db, dir.path(), "operational");
    for error in [
        migrator.up(&UpOptions::default()).await.unwrap_err(),
        migrator.plan_up(&UpOptions::default()).await.unwrap_err(),
    ] {
        let Error::NotAdopted {
            schemas,
            objects,
            total,
            ..
        } = &error
        else {
            panic!("{error}");
        };
        assert_eq!(schemas, &["public"]);
        assert_eq!(*total, 7, "{error}");
        assert_eq!(
            objects,
            &[
                "table public.a1",
                "table public.a2",
                "table public.a3",
                "table public.orgs",
                "view public.recent",
            ]
        );
        assert!(error.to_string().contains("verified baseline"), "{error}");
    }
    assert!(history(&db, "operational").await.is_empty());
}

#[tokio::test]
async fn the_guard_looks_only_at_the_schemas_the_target_creates() {
    let db = TestDb::new().await;
    let (reports, extra) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write(
        reports.path(),
        202501010000,
        "reports",
        "CREATE SCHEMA IF NOT EXISTS reports;\nCREATE TABLE reports.daily (day date PRIMARY KEY);",
        "DROP SCHEMA reports CASCADE;",
    );
    write(
        extra.path(),
        202501010000,
        "extra",
        "CREATE TABLE extra (id int);",
        "DROP TABLE extra;",
    );
    let target = |name: &str, dir: &Path| {
        Migrator::new(
            name,
            Source::load(dir).unwrap(),
            Database::from_url(db.url()).unwrap(),
            Settings::default(),
        )
        .unwrap()
    };
    run_sql(&db, ORGS).await;
    // Nothing in this database has a dbops history: public is looked at.
    let error = target("extra", extra.path())
        .up(&UpOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotAdopted { .. }), "{error}");
    // A target that creates its own schema looks only there.
    let report = target("reports", reports.path())
        .up(&UpOptions::default())
        .await
        .unwrap();
    assert_eq!(report.completed.len(), 1);
    // Once another target has a history, public may hold its objects.
    let report = target("extra", extra.path())
        .up(&UpOptions::default())
        .await
        .unwrap();
    assert_eq!(report.completed.len(), 1);
}

/// A history that creates a schema of its own for a few helpers and builds
/// everything else without naming a schema (Lemmy's has `utils`) is looked
/// for in `public` too: a database another tool built is refused, not run over.
#[tokio::test]
async fn a_target_that_creates_a_schema_and_builds_in_public_is_looked_for_in_both() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 202501010000, "orgs", ORGS, "DROP TABLE orgs;");
    write(
        dir.path(),
        202501010100,
        "utils",
        "CREATE SCHEMA utils;\nCREATE FUNCTION utils.noop() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        "DROP SCHEMA utils CASCADE;",
    );
    // Built by another tool up to before the schema's migration.
    run_sql(&db, ORGS).await;
    let migrator = migrator(&db, dir.path(), "operational");
    let error = migrator.up(&UpOptions::default()).await.unwrap_err();
    let Error::NotAdopted {
        schemas, objects, ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(schemas, &["public", "utils"]);
    assert_eq!(objects, &["table public.orgs"]);
    assert!(history(&db, "operational").await.is_empty());
}

#[tokio::test]
async fn a_baseline_whose_audit_entry_fails_records_nothing() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    run_sql(&db, ORGS).await;
    let migrator = migrator(&db, dir.path(), "operational");
    migrator.prepare_database().await.unwrap();
    run_sql(
        &db,
        "CREATE FUNCTION dbops.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no baseline entry'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON dbops.audit_log FOR EACH ROW
             WHEN (NEW.action = 'migration.baseline') EXECUTE FUNCTION dbops.refuse();",
    )
    .await;
    let error = migrator.baseline(&options(202501010000)).await.unwrap_err();
    assert!(
        migrate_core::error_chain(&error).contains("no baseline entry"),
        "{error}"
    );
    assert!(history(&db, "operational").await.is_empty());
}

#[tokio::test]
async fn a_scratch_database_needs_createdb_or_a_url() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    three_migrations(dir.path());
    // A role that owns the database but may not create databases.
    let role = format!("{}_owner", db.name());
    run_sql(
        &db,
        &format!(
            "CREATE ROLE {role} LOGIN NOCREATEDB; ALTER DATABASE {} OWNER TO {role};",
            db.name()
        ),
    )
    .await;
    let url = db.url().replacen("postgres@", &format!("{role}@"), 1);
    let as_owner = Migrator::new(
        "operational",
        Source::load(dir.path()).unwrap(),
        Database::from_url(&url).unwrap(),
        Settings::default(),
    )
    .unwrap();
    let error = as_owner.baseline(&options(202501010000)).await.unwrap_err();
    let chain = migrate_core::error_chain(&error);
    assert!(
        chain.contains("the role needs CREATEDB, or give a scratch database"),
        "{chain}"
    );

    // A service's pool has no URL to create one beside it.
    let config = pgconn::ConnConfig::parse(db.url()).unwrap();
    let manager = deadpool_postgres::Manager::new(
        config.tokio_postgres_config("baseline test"),
        config.tls_connector().unwrap(),
    );
    let pool = deadpool_postgres::Pool::builder(manager).build().unwrap();
    let pooled = Migrator::new(
        "operational",
        Source::load(dir.path()).unwrap(),
        Database::from_pool(pool),
        Settings::default(),
    )
    .unwrap();
    let error = pooled.baseline(&options(202501010000)).await.unwrap_err();
    assert!(
        error.to_string().contains("give a scratch database"),
        "{error}"
    );
    drop((as_owner, pooled));
    run_sql(
        &db,
        &format!("ALTER DATABASE {} OWNER TO postgres", db.name()),
    )
    .await;
    let admin = db.connect().await;
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
}
