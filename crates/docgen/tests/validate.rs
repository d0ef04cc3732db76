//! Generation and validation against real databases: differences in words, hand edits, and unenforced foreign keys.

use std::path::{Path, PathBuf};

use catalog::introspect::IntrospectOptions;
use docgen::{Config, FindingKind, Source};
use testdb::TestDb;
use tokio_postgres::Client;

struct Setup {
    db: TestDb,
    client: Client,
    config: Config,
    docs: tempfile::TempDir,
}

static PUBLIC: std::sync::LazyLock<IntrospectOptions> =
    std::sync::LazyLock::new(IntrospectOptions::default);

impl Setup {
    fn sources(&self) -> [Source<'_>; 1] {
        [Source {
            client: &self.client,
            options: &PUBLIC,
        }]
    }
}

fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql")
}

/// A database with the test schema and freshly generated docs.
async fn setup() -> Setup {
    let db = TestDb::new().await;
    db.apply_up_files(&sql_dir()).await;
    let client = db.connect().await;
    let docs = tempfile::tempdir().unwrap();
    let config = Config {
        docs_dir: docs.path().to_owned(),
        classification_map: sql_dir().join("data-classification.toml"),
    };
    let generated = docgen::generate(
        &[Source {
            client: &client,
            options: &PUBLIC,
        }],
        &config,
    )
    .await
    .unwrap();
    assert_eq!(
        generated.written,
        [config.dictionary_path(), config.erd_path()]
    );
    assert_eq!(generated.classification_gaps, []);
    Setup {
        db,
        client,
        config,
        docs,
    }
}

async fn findings(setup: &Setup) -> Vec<String> {
    docgen::validate(&setup.sources(), &setup.config)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[tokio::test]
async fn freshly_generated_docs_validate_and_regenerate_identically() {
    let setup = setup().await;
    assert_eq!(findings(&setup).await, Vec::<String>::new());
    let again = docgen::generate(&setup.sources(), &setup.config)
        .await
        .unwrap();
    assert_eq!(
        again.written,
        Vec::<PathBuf>::new(),
        "same schema, byte-identical files"
    );
    // New daily partitions do not make the docs stale.
    setup
        .client
        .batch_execute(
            "CREATE TABLE usage_events_p20260102 PARTITION OF usage_events
                 FOR VALUES FROM ('2026-01-02 00:00:00+00') TO ('2026-01-03 00:00:00+00')",
        )
        .await
        .unwrap();
    assert_eq!(findings(&setup).await, Vec::<String>::new());
}

#[tokio::test]
async fn schema_changes_are_reported_object_by_object_in_words() {
    let setup = setup().await;
    setup
        .client
        .batch_execute(
            "UPDATE api_keys SET revoked_at = now();
             ALTER TABLE api_keys ALTER COLUMN revoked_at SET NOT NULL;
             ALTER TABLE api_keys ALTER COLUMN key_prefix TYPE varchar(16);
             ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
             ALTER TABLE organizations ALTER COLUMN created_at DROP DEFAULT;
             DROP INDEX api_keys_key_prefix_key;
             CREATE INDEX api_keys_organization_id_idx ON api_keys (organization_id);
             ALTER TABLE organizations ADD CONSTRAINT organizations_slug_check CHECK (slug <> '');
             COMMENT ON TABLE organizations IS 'Customers.';
             CREATE TABLE budgets (id bigint PRIMARY KEY);",
        )
        .await
        .unwrap();
    let found = docgen::validate(&setup.sources(), &setup.config)
        .await
        .unwrap();
    let texts: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "column `api_keys.last_used_at`: not in the data-classification map",
            "column `budgets.id`: not in the data-classification map",
            "column `api_keys.key_prefix`: type `character varying(16)` in the database, `text` in the dictionary",
            "column `api_keys.last_used_at`: in the database but not in the dictionary",
            "column `api_keys.revoked_at`: NOT NULL in the database, nullable in the dictionary",
            "index `api_keys.api_keys_organization_id_idx`: in the database but not in the dictionary",
            "index `api_keys.api_keys_key_prefix_key`: in the dictionary but not in the database",
            "table `budgets`: in the database but not in the dictionary",
            "table `organizations`: comment `Customers.` in the database, `Tenants of the platform.` in the dictionary",
            "column `organizations.created_at`: default none in the database, `now()` in the dictionary",
            "constraint `organizations.organizations_slug_check`: in the database but not in the dictionary",
        ]
    );
    assert!(
        found
            .iter()
            .all(|f| f.kind == FindingKind::Classification || f.kind.fixed_by_regenerating())
    );

    // `validate --fix` is `generate`: afterwards only the map's gaps remain.
    docgen::generate(&setup.sources(), &setup.config)
        .await
        .unwrap();
    let kinds: Vec<_> = docgen::validate(&setup.sources(), &setup.config)
        .await
        .unwrap()
        .iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(
        kinds,
        [FindingKind::Classification, FindingKind::Classification]
    );
}

#[tokio::test]
async fn hand_edits_and_missing_files_are_reported() {
    let setup = setup().await;
    let dictionary = setup.config.dictionary_path();
    let text = std::fs::read_to_string(&dictionary).unwrap();
    std::fs::write(
        &dictionary,
        text.replacen("Tenants of the platform.", "Our customers.", 1),
    )
    .unwrap();
    std::fs::remove_file(setup.config.erd_path()).unwrap();
    let found = findings(&setup).await;
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].ends_with("dictionary.md`: edited by hand: its text is not what its embedded model renders to; run `dbops docs generate`"), "{}", found[0]);
    assert!(
        found[1].ends_with("schema.puml`: missing: run `dbops docs generate`"),
        "{}",
        found[1]
    );

    std::fs::write(&dictionary, "# Data dictionary\n").unwrap();
    let found = findings(&setup).await;
    assert!(found[0].ends_with("dictionary.md`: the dictionary has no embedded model (a `<!-- dbops:model ... -->` block); run `dbops docs generate`"), "{found:#?}");
}

#[tokio::test]
async fn unenforced_foreign_keys_are_reported() {
    let setup = setup().await;
    setup
        .client
        .batch_execute(
            "ALTER TABLE api_keys DROP CONSTRAINT api_keys_organization_id_fkey;
             INSERT INTO api_keys (organization_id, key_prefix) VALUES (42, 'dbk_orphan'), (43, 'dbk_orphan2');
             ALTER TABLE api_keys ADD CONSTRAINT api_keys_organization_id_fkey FOREIGN KEY (organization_id)
                 REFERENCES organizations (id) ON DELETE CASCADE NOT VALID;
             ALTER TABLE usage_events_default DISABLE TRIGGER ALL;",
        )
        .await
        .unwrap();
    let found = docgen::validate(&setup.sources(), &setup.config)
        .await
        .unwrap();
    let texts: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "foreign key `api_keys.api_keys_organization_id_fkey`: NOT VALID: rows that existed when it was added \
             were never checked (ALTER TABLE \"public\".\"api_keys\" VALIDATE CONSTRAINT \"api_keys_organization_id_fkey\")",
            "foreign key `usage_events.usage_events_organization_id_fkey`: a trigger enforcing it is disabled, so new \
             rows are not checked (ALTER TABLE ... ENABLE TRIGGER ALL on `usage_events` or `organizations`, or a partition of them)",
            "foreign key `api_keys.api_keys_organization_id_fkey`: 2 row(s) of `api_keys` reference no row of `organizations`",
        ]
    );
    assert!(found.iter().all(|f| !f.kind.fixed_by_regenerating()));

    // A violating row slipped in while triggers were off is found too.
    setup
        .client
        .batch_execute(
            "INSERT INTO usage_events (organization_id, occurred_at) VALUES (7, '2030-01-01')",
        )
        .await
        .unwrap();
    let found = findings(&setup).await;
    assert!(
        found.contains(&"foreign key `usage_events.usage_events_organization_id_fkey`: 1 row(s) of `usage_events` reference no row of `organizations`".to_owned()),
        "{found:#?}"
    );
    drop(setup.db);
}

#[tokio::test]
async fn operational_and_analytics_databases_are_documented_together() {
    let operational = setup().await;
    let analytics_db = TestDb::new().await;
    let analytics = analytics_db.connect().await;
    analytics
        .batch_execute(
            "CREATE SCHEMA analytics;
             CREATE TABLE analytics.daily_usage (day date PRIMARY KEY, events bigint NOT NULL);
             CREATE TABLE public.stray (id int);",
        )
        .await
        .unwrap();
    let map = operational.docs.path().join("data-classification.toml");
    let mut text = std::fs::read_to_string(sql_dir().join("data-classification.toml")).unwrap();
    text.push_str(
        "\n[tables.\"analytics.daily_usage\"]\nretention = \"7y\"\n[tables.\"analytics.daily_usage\".columns]\n\
         day = { class = \"internal\", protection = \"none\" }\nevents = { class = \"confidential\", protection = \"none\" }\n",
    );
    std::fs::write(&map, text).unwrap();
    let config = Config {
        classification_map: map,
        ..operational.config.clone()
    };
    let analytics_schema = IntrospectOptions {
        schemas: vec!["analytics".into()],
    };
    let sources = [
        Source {
            client: &operational.client,
            options: &PUBLIC,
        },
        Source {
            client: &analytics,
            options: &analytics_schema,
        },
    ];

    docgen::generate(&sources, &config).await.unwrap();
    let dictionary = std::fs::read_to_string(config.dictionary_path()).unwrap();
    assert!(dictionary.contains("## `analytics.daily_usage`"));
    assert!(
        !dictionary.contains("stray"),
        "only the analytics schema is read from the analytics database"
    );
    assert_eq!(docgen::validate(&sources, &config).await.unwrap(), []);

    analytics
        .batch_execute("DROP TABLE analytics.daily_usage")
        .await
        .unwrap();
    let found: Vec<String> = docgen::validate(&sources, &config)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "table `analytics.daily_usage`: in the data-classification map but not in the database",
            "table `analytics.daily_usage`: in the dictionary but not in the database",
        ]
    );
}
