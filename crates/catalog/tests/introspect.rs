//! Introspection of real databases: what the model holds for each kind of object.

use std::path::Path;

use catalog::Error;
use catalog::introspect::{IntrospectOptions, introspect};
use catalog::model::{ConstraintKind, Schema};
use expect_test::{Expect, expect};
use testdb::TestDb;

async fn fixture_schema(options: &IntrospectOptions) -> (TestDb, Schema) {
    let db = TestDb::new().await;
    db.apply_up_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .await;
    let client = utc(&db).await;
    let schema = introspect(&client, options).await.expect("introspection");
    (db, schema)
}

/// A connection printing timestamps (partition bounds) in UTC, whatever the server's time zone.
async fn utc(db: &TestDb) -> tokio_postgres::Client {
    let client = db.connect().await;
    client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    client
}

fn check_json(value: &impl serde::Serialize, expected: Expect) {
    expected.assert_eq(&serde_json::to_string_pretty(value).unwrap());
}

#[tokio::test]
async fn reads_tables_columns_constraints_indexes_and_partitions() {
    let (_db, schema) = fixture_schema(&IntrospectOptions::default()).await;
    let names: Vec<_> = schema.tables.iter().map(|t| t.display_name()).collect();
    assert_eq!(
        names,
        ["events", "organizations", "users"],
        "partitions, extension and other-schema tables left out"
    );
    check_json(
        schema.table("organizations").unwrap(),
        expect![[r#"
        {
          "schema": "public",
          "name": "organizations",
          "comment": "Tenants of the platform.",
          "columns": [
            {
              "name": "id",
              "data_type": "bigint",
              "nullable": false,
              "default": null,
              "identity": "always",
              "generated": null,
              "comment": null,
              "classification": null
            },
            {
              "name": "slug",
              "data_type": "text",
              "nullable": false,
              "default": null,
              "identity": null,
              "generated": null,
              "comment": "URL-safe identifier.",
              "classification": null
            },
            {
              "name": "name",
              "data_type": "text",
              "nullable": false,
              "default": null,
              "identity": null,
              "generated": null,
              "comment": null,
              "classification": null
            },
            {
              "name": "status",
              "data_type": "text",
              "nullable": false,
              "default": "'active'::text",
              "identity": null,
              "generated": null,
              "comment": null,
              "classification": null
            },
            {
              "name": "created_at",
              "data_type": "timestamp with time zone",
              "nullable": false,
              "default": "now()",
              "identity": null,
              "generated": null,
              "comment": null,
              "classification": null
            }
          ],
          "constraints": [
            {
              "name": "organizations_pkey",
              "kind": "primary_key",
              "columns": [
                "id"
              ],
              "definition": "PRIMARY KEY (id)",
              "validated": true,
              "comment": null
            },
            {
              "name": "organizations_slug_key",
              "kind": "unique",
              "columns": [
                "slug"
              ],
              "definition": "UNIQUE (slug)",
              "validated": true,
              "comment": null
            },
            {
              "name": "organizations_status_check",
              "kind": "check",
              "columns": [
                "status"
              ],
              "definition": "CHECK (status = ANY (ARRAY['active'::text, 'suspended'::text]))",
              "validated": true,
              "comment": null
            }
          ],
          "indexes": [
            {
              "name": "organizations_pkey",
              "definition": "CREATE UNIQUE INDEX organizations_pkey ON public.organizations USING btree (id)",
              "columns": [
                "id"
              ],
              "method": "btree",
              "unique": true,
              "primary": true,
              "valid": true,
              "predicate": null,
              "constraint": "organizations_pkey"
            },
            {
              "name": "organizations_slug_key",
              "definition": "CREATE UNIQUE INDEX organizations_slug_key ON public.organizations USING btree (slug)",
              "columns": [
                "slug"
              ],
              "method": "btree",
              "unique": true,
              "primary": false,
              "valid": true,
              "predicate": null,
              "constraint": "organizations_slug_key"
            }
          ],
          "partitioning": null
        }"#]],
    );
    check_json(
        schema.table("users").unwrap(),
        expect![[r#"
        {
          "schema": "public",
          "name": "users",
          "comment": null,
          "columns": [
            {
              "name": "id",
              "data_type": "bigint",
              "nullable": false,
              "default": null,
              "identity": "by_default",
              "generated": null,
              "comment": null,
              "classification": null
            },
            {
              "name": "organization_id",
              "data_type": "bigint",
              "nullable": false,
              "default": null,
              "identity": null,
              "generated": null,
              "comment": null,
              "classification": null
            },
            {
              "name": "email",
              "data_type": "text",
              "nullable": false,
              "default": null,
              "identity": null,
              "generated": null,
              "comment": null,
              "classification": null
            },
            {
              "name": "email_domain",
              "data_type": "text",
              "nullable": true,
              "default": null,
              "identity": null,
              "generated": "split_part(email, '@'::text, 2)",
              "comment": null,
              "classification": null
            },
            {
              "name": "deleted_at",
              "data_type": "timestamp with time zone",
              "nullable": true,
              "default": null,
              "identity": null,
              "generated": null,
              "comment": null,
              "classification": null
            }
          ],
          "constraints": [
            {
              "name": "users_organization_id_fkey",
              "kind": {
                "foreign_key": {
                  "referenced_schema": "public",
                  "referenced_table": "organizations",
                  "referenced_columns": [
                    "id"
                  ],
                  "on_delete": "cascade",
                  "on_update": "restrict",
                  "match_full": false,
                  "triggers_enabled": true
                }
              },
              "columns": [
                "organization_id"
              ],
              "definition": "FOREIGN KEY (organization_id) REFERENCES organizations(id) ON UPDATE RESTRICT ON DELETE CASCADE",
              "validated": true,
              "comment": null
            },
            {
              "name": "users_pkey",
              "kind": "primary_key",
              "columns": [
                "id"
              ],
              "definition": "PRIMARY KEY (id)",
              "validated": true,
              "comment": null
            }
          ],
          "indexes": [
            {
              "name": "users_organization_id_email_key",
              "definition": "CREATE UNIQUE INDEX users_organization_id_email_key ON public.users USING btree (organization_id, lower(email)) WHERE (deleted_at IS NULL)",
              "columns": [
                "organization_id",
                "lower(email)"
              ],
              "method": "btree",
              "unique": true,
              "primary": false,
              "valid": true,
              "predicate": "deleted_at IS NULL",
              "constraint": null
            },
            {
              "name": "users_pkey",
              "definition": "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)",
              "columns": [
                "id"
              ],
              "method": "btree",
              "unique": true,
              "primary": true,
              "valid": true,
              "predicate": null,
              "constraint": "users_pkey"
            }
          ],
          "partitioning": null
        }"#]],
    );
    check_json(
        schema.table("events").unwrap(),
        expect![[r#"
        {
          "schema": "public",
          "name": "events",
          "comment": null,
          "columns": [
            {
              "name": "id",
              "data_type": "bigint",
              "nullable": false,
              "default": null,
              "identity": "always",
              "generated": null,
              "comment": null,
              "classification": null
            },
            {
              "name": "organization_id",
              "data_type": "bigint",
              "nullable": false,
              "default": null,
              "identity": null,
              "generated": null,
              "comment": null,
              "classification": null
            },
            {
              "name": "occurred_at",
              "data_type": "timestamp with time zone",
              "nullable": false,
              "default": null,
              "identity": null,
              "generated": null,
              "comment": null,
              "classification": null
            }
          ],
          "constraints": [
            {
              "name": "events_organization_id_fkey",
              "kind": {
                "foreign_key": {
                  "referenced_schema": "public",
                  "referenced_table": "organizations",
                  "referenced_columns": [
                    "id"
                  ],
                  "on_delete": "no_action",
                  "on_update": "no_action",
                  "match_full": false,
                  "triggers_enabled": true
                }
              },
              "columns": [
                "organization_id"
              ],
              "definition": "FOREIGN KEY (organization_id) REFERENCES organizations(id)",
              "validated": true,
              "comment": null
            },
            {
              "name": "events_pkey",
              "kind": "primary_key",
              "columns": [
                "id",
                "occurred_at"
              ],
              "definition": "PRIMARY KEY (id, occurred_at)",
              "validated": true,
              "comment": null
            }
          ],
          "indexes": [
            {
              "name": "events_occurred_at_idx",
              "definition": "CREATE INDEX events_occurred_at_idx ON ONLY public.events USING brin (occurred_at)",
              "columns": [
                "occurred_at"
              ],
              "method": "brin",
              "unique": false,
              "primary": false,
              "valid": true,
              "predicate": null,
              "constraint": null
            },
            {
              "name": "events_pkey",
              "definition": "CREATE UNIQUE INDEX events_pkey ON ONLY public.events USING btree (id, occurred_at)",
              "columns": [
                "id",
                "occurred_at"
              ],
              "method": "btree",
              "unique": true,
              "primary": true,
              "valid": true,
              "predicate": null,
              "constraint": "events_pkey"
            }
          ],
          "partitioning": {
            "key": "RANGE (occurred_at)",
            "partitions": [
              {
                "schema": "public",
                "name": "events_default",
                "bound": "DEFAULT",
                "parent": null,
                "subpartition_key": null
              },
              {
                "schema": "public",
                "name": "events_p20260101",
                "bound": "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00')",
                "parent": null,
                "subpartition_key": null
              }
            ]
          }
        }"#]],
    );
}

#[tokio::test]
async fn reads_other_schemas_on_request_and_refuses_reserved_ones() {
    let options = IntrospectOptions {
        schemas: vec!["public".into(), "other".into()],
    };
    let (db, schema) = fixture_schema(&options).await;
    let things = schema.table("other.things").expect("other.things is read");
    let (_, fk) = things
        .constraints
        .iter()
        .find_map(|c| match &c.kind {
            ConstraintKind::ForeignKey(fk) => Some((c, fk)),
            _ => None,
        })
        .expect("a foreign key");
    assert_eq!(fk.referenced_display_name(), "organizations");
    let referencing: Vec<_> = schema
        .references_to(schema.table("organizations").unwrap())
        .map(|(table, constraint, _)| format!("{}.{}", table.display_name(), constraint.name))
        .collect();
    assert_eq!(
        referencing,
        [
            "other.things.things_organization_id_fkey",
            "events.events_organization_id_fkey",
            "users.users_organization_id_fkey"
        ],
        "sorted by schema, then table"
    );

    let client = db.connect().await;
    for reserved in ["dbops", "pg_catalog", "information_schema", "pg_toast"] {
        let options = IntrospectOptions {
            schemas: vec![reserved.into()],
        };
        let err = introspect(&client, &options).await.unwrap_err();
        assert!(
            matches!(err, Error::ReservedSchema { .. }),
            "{reserved}: {err}"
        );
    }
}

#[tokio::test]
async fn sees_not_valid_foreign_keys_disabled_triggers_and_invalid_indexes() {
    let (db, schema) = fixture_schema(&IntrospectOptions::default()).await;
    let fk = |schema: &Schema, table: &str, name: &str| {
        let constraint = schema
            .table(table)
            .unwrap()
            .constraint(name)
            .unwrap()
            .clone();
        match constraint.kind {
            ConstraintKind::ForeignKey(ref fk) => (constraint.validated, fk.triggers_enabled),
            _ => panic!("{name} is not a foreign key"),
        }
    };
    assert_eq!(
        fk(&schema, "users", "users_organization_id_fkey"),
        (true, true)
    );
    assert_eq!(
        fk(&schema, "events", "events_organization_id_fkey"),
        (true, true)
    );

    let client = db.connect().await;
    client
        .batch_execute(
            "ALTER TABLE users DROP CONSTRAINT users_organization_id_fkey;
             ALTER TABLE users ADD CONSTRAINT users_organization_id_fkey FOREIGN KEY (organization_id)
                 REFERENCES organizations (id) NOT VALID;
             ALTER TABLE events_default DISABLE TRIGGER ALL;
             CREATE TABLE dup (v int); INSERT INTO dup VALUES (1), (1);",
        )
        .await
        .unwrap();
    // A unique index that fails to build concurrently stays behind, invalid.
    assert!(
        client
            .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY dup_v_key ON dup (v)")
            .await
            .is_err()
    );
    let schema = introspect(&client, &IntrospectOptions::default())
        .await
        .unwrap();
    assert_eq!(
        fk(&schema, "users", "users_organization_id_fkey"),
        (false, true)
    );
    assert_eq!(
        fk(&schema, "events", "events_organization_id_fkey"),
        (true, false),
        "a partition's disabled triggers make the parent's key unenforced"
    );
    let index = schema.table("dup").unwrap().index("dup_v_key").unwrap();
    assert!(!index.valid && index.unique);
}

#[tokio::test]
async fn same_schema_gives_equal_models() {
    let (db, first) = fixture_schema(&IntrospectOptions::default()).await;
    let second = introspect(&db.connect().await, &IntrospectOptions::default())
        .await
        .unwrap();
    assert_eq!(first, second);
    let json = serde_json::to_string(&first).unwrap();
    assert_eq!(
        serde_json::from_str::<Schema>(&json).unwrap(),
        first,
        "the model round-trips through serde"
    );
}

#[tokio::test]
async fn classification_map_joins_onto_the_live_schema_and_reports_gaps() {
    use catalog::classification::{ClassificationGap, ClassificationMap, DataClass};
    let (_db, mut schema) = fixture_schema(&IntrospectOptions::default()).await;
    let map = ClassificationMap::parse(
        r#"
[tables.organizations]
retention = "forever"
[tables.organizations.columns]
id = { class = "internal", protection = "none" }
slug = { class = "public", protection = "none" }
name = { class = "confidential", protection = "none" }
status = { class = "internal", protection = "none" }
created_at = { class = "internal", protection = "none" }
[tables.users]
retention = "400d"
[tables.users.columns]
id = { class = "internal", protection = "none" }
organization_id = { class = "internal", protection = "none" }
email = { class = "pii", protection = "none", retention = "730d" }
email_domain = { class = "pii", protection = "none" }
phone = { class = "pii", protection = "encrypt" }
[tables.sessions]
retention = "30d"
"#,
        Path::new("data-classification.toml"),
    )
    .unwrap();
    let gaps = map.apply(&mut schema);
    let users = schema.table("users").unwrap();
    let email = users
        .column("email")
        .unwrap()
        .classification
        .as_ref()
        .unwrap();
    assert_eq!(
        (email.class, email.retention.to_string().as_str()),
        (DataClass::Pii, "730d")
    );
    let domain = users
        .column("email_domain")
        .unwrap()
        .classification
        .as_ref()
        .unwrap();
    assert_eq!(
        domain.retention.to_string(),
        "400d",
        "inherited from the table"
    );
    assert_eq!(users.column("deleted_at").unwrap().classification, None);
    let gaps: Vec<String> = gaps.iter().map(ClassificationGap::to_string).collect();
    assert_eq!(
        gaps,
        [
            "column `events.id` is not in the data-classification map",
            "column `events.organization_id` is not in the data-classification map",
            "column `events.occurred_at` is not in the data-classification map",
            "column `users.deleted_at` is not in the data-classification map",
            "table `sessions` is in the data-classification map but not in the database",
            "column `users.phone` is in the data-classification map but not in the database",
        ]
    );
}

#[tokio::test]
async fn folds_partitions_of_partitions_and_reads_exclusion_constraints() {
    let db = TestDb::new().await;
    let client = utc(&db).await;
    client
        .batch_execute(
            "CREATE TABLE readings (region text NOT NULL, taken_at timestamptz NOT NULL, value numeric(10, 2))
                 PARTITION BY LIST (region);
             CREATE TABLE readings_eu PARTITION OF readings FOR VALUES IN ('eu') PARTITION BY RANGE (taken_at);
             CREATE TABLE readings_eu_2026 PARTITION OF readings_eu
                 FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2027-01-01 00:00:00+00');
             CREATE TABLE readings_us PARTITION OF readings FOR VALUES IN ('us');
             CREATE TABLE bookings (room int NOT NULL, during tstzrange NOT NULL,
                 CONSTRAINT bookings_during_excl EXCLUDE USING gist (during WITH &&));",
        )
        .await
        .unwrap();
    let schema = introspect(&client, &IntrospectOptions::default())
        .await
        .unwrap();
    assert_eq!(
        schema
            .tables
            .iter()
            .map(|t| t.display_name())
            .collect::<Vec<_>>(),
        ["bookings", "readings"]
    );
    let readings = schema.table("readings").unwrap();
    assert_eq!(readings.column("value").unwrap().data_type, "numeric(10,2)");
    let partitioning = readings.partitioning.as_ref().unwrap();
    assert_eq!(partitioning.key, "LIST (region)");
    let partitions: Vec<_> = partitioning
        .partitions
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.parent.as_deref(),
                p.subpartition_key.as_deref(),
                p.bound.as_str(),
            )
        })
        .collect();
    assert_eq!(
        partitions,
        [
            (
                "readings_eu",
                None,
                Some("RANGE (taken_at)"),
                "FOR VALUES IN ('eu')"
            ),
            (
                "readings_eu_2026",
                Some("readings_eu"),
                None,
                "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')"
            ),
            ("readings_us", None, None, "FOR VALUES IN ('us')"),
        ]
    );
    assert_eq!(partitioning.default_partition(), None);

    let exclusion = schema
        .table("bookings")
        .unwrap()
        .constraint("bookings_during_excl")
        .unwrap();
    assert_eq!(exclusion.kind, ConstraintKind::Exclusion);
    assert_eq!(exclusion.columns, ["during"]);
    assert_eq!(exclusion.definition, "EXCLUDE USING gist (during WITH &&)");
    let index = schema
        .table("bookings")
        .unwrap()
        .index("bookings_during_excl")
        .unwrap();
    assert_eq!(
        (index.method.as_str(), index.constraint.as_deref()),
        ("gist", Some("bookings_during_excl"))
    );
}
