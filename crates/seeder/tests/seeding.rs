//! Seeding against real databases: determinism, idempotency, resumption, and the stored key hashes.

use std::path::Path;

use seeder::analytics::{AnalyticsConfig, seed_analytics};
use seeder::api_key::{self, Keyring, Pepper};
use seeder::operational::{OperationalConfig, seed_operational};
use testdb::TestDb;
use time::macros::datetime;
use tokio_postgres::Client;

const TABLES: &[&str] = &[
    "organizations",
    "users",
    "api_keys",
    "models",
    "budgets",
    "usage_events",
];

fn pepper() -> Pepper {
    Pepper::new(b"a test pepper that is long enough to be accepted".to_vec()).unwrap()
}

/// The keyring of [`pepper`] alone, with the default id.
fn keyring() -> Keyring {
    Keyring::single(api_key::DEFAULT_PEPPER_ID, pepper()).unwrap()
}

async fn migrated() -> TestDb {
    let db = TestDb::new().await;
    db.apply_up_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/operational"))
        .await;
    db
}

/// Row count and an MD5 of every row's text, in id order, per table.
async fn fingerprint(client: &Client) -> Vec<(String, i64, String)> {
    client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    let mut out = Vec::new();
    for table in TABLES {
        let row = client
            .query_one(
                &format!("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {table} t"),
                &[],
            )
            .await
            .unwrap();
        out.push(((*table).to_owned(), row.get(0), row.get(1)));
    }
    out
}

fn small(seed: u64) -> AnalyticsConfig {
    AnalyticsConfig {
        seed,
        events: 25_000,
        days: 3,
        organizations: 7,
        late_share: 0.2,
        until: Some(datetime!(2025-11-15 13:00 UTC)),
        streams: 2,
        progress: false,
    }
}

fn config_of(db: &TestDb) -> pgconn::ConnConfig {
    db.url().parse().unwrap()
}

#[tokio::test]
async fn operational_seeding_is_idempotent_and_shows_each_secret_once() {
    let db = migrated().await;
    let mut client = db.connect().await;
    let config = OperationalConfig {
        seed: 11,
        organizations: 3,
    };

    let first = seed_operational(&mut client, &config, &keyring())
        .await
        .unwrap();
    assert_eq!(
        (first.organizations, first.users, first.budgets),
        (3, 15, 6)
    );
    assert_eq!(first.keys.len(), 9);
    assert!(first.models > 0);
    let after_first = fingerprint(&client).await;

    let second = seed_operational(&mut client, &config, &keyring())
        .await
        .unwrap();
    assert_eq!(
        (
            second.organizations,
            second.users,
            second.models,
            second.budgets
        ),
        (0, 0, 0, 0)
    );
    assert!(
        second.keys.is_empty(),
        "a rerun must not show secrets again"
    );
    assert_eq!(fingerprint(&client).await, after_first);

    // The stored hash verifies the shown key, and only with the same pepper.
    let key = &first.keys[0];
    let row = client
        .query_one(
            "SELECT key_prefix, key_hash, pepper_id FROM api_keys WHERE id = $1",
            &[&key.id],
        )
        .await
        .unwrap();
    let prefix: String = row.get(0);
    let hash: Vec<u8> = row.get(1);
    assert_eq!(row.get::<_, String>(2), api_key::DEFAULT_PEPPER_ID);
    assert_eq!(
        api_key::parse_prefix(key.secret.expose()),
        Some(prefix.as_str())
    );
    assert!(api_key::verify(&pepper(), key.secret.expose(), &hash));
    let other = Pepper::new(b"some other pepper, equally long enough".to_vec()).unwrap();
    assert!(!api_key::verify(&other, key.secret.expose(), &hash));
    // The secret is stored nowhere.
    let leaked: i64 = client
        .query_one(
            "SELECT count(*) FROM api_keys k WHERE k::text LIKE '%' || $1 || '%'",
            &[&&key.secret.expose()[api_key::PREFIX_LEN + 1..]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn another_seed_is_refused_rather_than_mixed_in() {
    let db = migrated().await;
    let mut client = db.connect().await;
    seed_operational(
        &mut client,
        &OperationalConfig {
            seed: 1,
            organizations: 2,
        },
        &keyring(),
    )
    .await
    .unwrap();
    let refused = seed_operational(
        &mut client,
        &OperationalConfig {
            seed: 2,
            organizations: 2,
        },
        &keyring(),
    )
    .await;
    assert!(
        matches!(refused, Err(seeder::Error::SeededDifferently { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn analytics_seeding_is_deterministic_idempotent_and_resumable() {
    let (a, b, c) = (migrated().await, migrated().await, migrated().await);
    let config = small(5);

    let first = seed_analytics(&config_of(&a), &config, &keyring())
        .await
        .unwrap();
    assert_eq!((first.events_loaded, first.events_present), (25_000, 0));
    assert_eq!(first.organizations, 7);
    assert_eq!(
        first.partitions_created.len(),
        4,
        "{:?}",
        first.partitions_created
    );
    let client_a = a.connect().await;
    let after_first = fingerprint(&client_a).await;

    // Same seed and settings, another database: the same bytes.
    seed_analytics(&config_of(&b), &config, &keyring())
        .await
        .unwrap();
    assert_eq!(fingerprint(&b.connect().await).await, after_first);

    // Another seed: other data (the fingerprint can tell them apart).
    seed_analytics(&config_of(&c), &small(6), &keyring())
        .await
        .unwrap();
    assert_ne!(fingerprint(&c.connect().await).await, after_first);

    // A rerun changes nothing.
    let again = seed_analytics(
        &config_of(&a),
        &AnalyticsConfig {
            until: None,
            ..config.clone()
        },
        &keyring(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            again.events_loaded,
            again.events_present,
            again.organizations
        ),
        (0, 25_000, 0)
    );
    assert_eq!(fingerprint(&client_a).await, after_first);

    // A lost chunk (as after an interrupted run) is loaded again, identically.
    let deleted = client_a
        .execute("DELETE FROM usage_events WHERE id BETWEEN 1 AND 3000", &[])
        .await
        .unwrap();
    assert!(deleted > 0);
    let resumed = seed_analytics(&config_of(&a), &config, &keyring())
        .await
        .unwrap();
    assert!(
        resumed.events_loaded > 0 && resumed.events_loaded < 25_000,
        "{resumed:?}"
    );
    assert_eq!(fingerprint(&client_a).await, after_first);

    // Other settings on a seeded database are refused.
    let refused = seed_analytics(
        &config_of(&a),
        &AnalyticsConfig {
            events: 10,
            ..config
        },
        &keyring(),
    )
    .await;
    assert!(
        matches!(refused, Err(seeder::Error::SeededDifferently { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn analytics_events_look_like_traffic() {
    let db = migrated().await;
    let config = small(9);
    seed_analytics(&config_of(&db), &config, &keyring())
        .await
        .unwrap();
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE ingested_at - occurred_at >= interval '1 hour')::float8 / count(*),
                    count(*) FILTER (WHERE status <> 'ok')::float8 / count(*),
                    min(occurred_at) >= timestamptz '2025-11-12 13:00+00',
                    max(occurred_at) < timestamptz '2025-11-15 13:00+00',
                    max(ingested_at) <= timestamptz '2025-11-15 13:00+00',
                    count(DISTINCT organization_id),
                    (SELECT count(*) FROM usage_events_default)
             FROM usage_events",
            &[],
        )
        .await
        .unwrap();
    let late: f64 = row.get(0);
    let errors: f64 = row.get(1);
    // Events of the last hours cannot be more than an hour late, so a little under 0.2.
    assert!((0.17..0.21).contains(&late), "late share {late}");
    assert!((0.03..0.07).contains(&errors), "error share {errors}");
    assert!(row.get::<_, bool>(2) && row.get::<_, bool>(3) && row.get::<_, bool>(4));
    assert_eq!(row.get::<_, i64>(5), 7);
    assert_eq!(
        row.get::<_, i64>(6),
        0,
        "every event goes to its day's partition"
    );
    // Events reference rows that exist and agree with each other.
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM usage_events e
             LEFT JOIN api_keys k ON k.id = e.api_key_id
             LEFT JOIN users u ON u.id = e.user_id
             WHERE (e.api_key_id IS NOT NULL AND (k.id IS NULL OR k.organization_id <> e.organization_id))
                OR (e.user_id IS NOT NULL AND (u.id IS NULL OR u.organization_id <> e.organization_id))
                OR NOT EXISTS (SELECT FROM models m WHERE m.id = e.model_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
}

/// Every stored key: (prefix, hash, pepper id), by prefix.
async fn stored_keys(client: &Client) -> Vec<(String, Vec<u8>, String)> {
    client
        .query(
            "SELECT key_prefix, key_hash, pepper_id FROM api_keys ORDER BY key_prefix",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

#[tokio::test]
async fn different_peppers_give_different_keys_that_verify_only_where_they_were_issued() {
    let (a, b) = (migrated().await, migrated().await);
    let config = OperationalConfig {
        seed: 5,
        organizations: 2,
    };
    let other = Keyring::single(
        "1",
        Pepper::new(b"some other pepper, equally long enough".to_vec()).unwrap(),
    )
    .unwrap();
    let mut a_client = a.connect().await;
    let mut b_client = b.connect().await;
    let from_a = seed_operational(&mut a_client, &config, &keyring())
        .await
        .unwrap();
    let from_b = seed_operational(&mut b_client, &config, &other)
        .await
        .unwrap();
    assert_eq!(from_a.keys.len(), from_b.keys.len());
    let (stored_a, stored_b) = (stored_keys(&a_client).await, stored_keys(&b_client).await);
    for (key_a, key_b) in from_a.keys.iter().zip(&from_b.keys) {
        // The seed fixes the public prefix; the pepper, the secret.
        assert_eq!(key_a.secret.prefix(), key_b.secret.prefix());
        assert_ne!(key_a.secret.expose(), key_b.secret.expose());
        let hash_of = |stored: &[(String, Vec<u8>, String)]| {
            stored
                .iter()
                .find(|(prefix, _, _)| prefix == key_a.secret.prefix())
                .unwrap()
                .1
                .clone()
        };
        let (hash_a, hash_b) = (hash_of(&stored_a), hash_of(&stored_b));
        assert!(
            keyring()
                .verify(key_a.secret.expose(), &hash_a, "1")
                .unwrap()
        );
        assert!(other.verify(key_b.secret.expose(), &hash_b, "1").unwrap());
        // A key printed by one does not open the other, whatever the pepper.
        for ring in [keyring(), other.clone()] {
            assert!(!ring.verify(key_a.secret.expose(), &hash_b, "1").unwrap());
            assert!(!ring.verify(key_b.secret.expose(), &hash_a, "1").unwrap());
        }
    }
    // The same pepper and seed print the same keys again.
    let again = migrated().await;
    let repeated = seed_operational(&mut again.connect().await, &config, &keyring())
        .await
        .unwrap();
    let secrets = |keys: &[api_key::IssuedKey]| -> Vec<String> {
        keys.iter().map(|k| k.secret.expose().to_owned()).collect()
    };
    assert_eq!(secrets(&repeated.keys), secrets(&from_a.keys));
}

#[tokio::test]
async fn after_a_pepper_rotation_old_keys_keep_verifying_and_new_ones_use_the_new_pepper() {
    const OLD: &str = "1=the-old-pepper-of-32-bytes-or-more";
    const NEW: &str = "2=the-new-pepper-of-32-bytes-or-more";
    let db = migrated().await;
    let mut client = db.connect().await;
    let config = |organizations| OperationalConfig {
        seed: 8,
        organizations,
    };
    let before = Keyring::parse(OLD, api_key::PEPPERS_ENV).unwrap();
    let old = seed_operational(&mut client, &config(1), &before)
        .await
        .unwrap();
    // The new pepper first (for new keys), the old one still listed.
    let rotated = Keyring::parse(&format!("{NEW}\n{OLD}"), api_key::PEPPERS_ENV).unwrap();
    let new = seed_operational(&mut client, &config(2), &rotated)
        .await
        .unwrap();
    assert!(!old.keys.is_empty() && !new.keys.is_empty());
    let stored = stored_keys(&client).await;
    let verify = |ring: &Keyring, key: &api_key::IssuedKey| {
        let (_, hash, id) = stored
            .iter()
            .find(|(prefix, _, _)| prefix == key.secret.prefix())
            .unwrap();
        ring.verify(key.secret.expose(), hash, id)
    };
    for key in &old.keys {
        assert!(
            verify(&rotated, key).unwrap(),
            "an old key after the rotation"
        );
    }
    for key in &new.keys {
        assert!(verify(&rotated, key).unwrap());
        // Hashed with pepper 2: the old keyring cannot verify it.
        assert!(matches!(
            verify(&before, key),
            Err(seeder::Error::PepperUnknown { id }) if id == "2"
        ));
    }
    let ids: std::collections::BTreeSet<&str> =
        stored.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(ids, ["1", "2"].into());
}
