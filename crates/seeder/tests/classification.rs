//! The data-classification map and the live operational schema name exactly the same columns.

use std::collections::BTreeSet;
use std::path::Path;

use testdb::TestDb;

const CLASSES: &[&str] = &["public", "internal", "confidential", "pii", "secret"];
const PROTECTIONS: &[&str] = &["none", "hash", "encrypt"];

fn workspace(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[tokio::test]
async fn every_live_column_is_classified_and_every_classified_column_exists() {
    let db = TestDb::new().await;
    db.apply_up_files(&workspace("migrations/operational"))
        .await;
    let client = db.connect().await;
    // Partitions are covered by their parent; dbops's own schema is not the platform's.
    let live: BTreeSet<(String, String)> = client
        .query(
            "SELECT c.relname::text, a.attname::text
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();

    let path = workspace("configs/data-classification.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let map: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut classified = BTreeSet::new();
    let mut bad_settings = Vec::new();
    for (table, entry) in map["tables"].as_table().expect("a [tables] table") {
        if table.contains('.') {
            continue; // Tables outside `public` belong to other migration sets.
        }
        for (column, setting) in entry["columns"].as_table().expect("a columns table") {
            classified.insert((table.clone(), column.clone()));
            let class = setting
                .get("class")
                .and_then(|v| v.as_str())
                .unwrap_or("(missing)");
            let protection = setting
                .get("protection")
                .and_then(|v| v.as_str())
                .unwrap_or("(missing)");
            if !CLASSES.contains(&class) || !PROTECTIONS.contains(&protection) {
                bad_settings.push(format!(
                    "{table}.{column}: class {class}, protection {protection}"
                ));
            }
        }
    }

    let unclassified: Vec<_> = live
        .difference(&classified)
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    let unknown: Vec<_> = classified
        .difference(&live)
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    assert!(
        unclassified.is_empty(),
        "live columns missing from {}: {unclassified:?}",
        path.display()
    );
    assert!(
        unknown.is_empty(),
        "{} names columns the schema does not have: {unknown:?}",
        path.display()
    );
    assert!(bad_settings.is_empty(), "{bad_settings:?}");

    // Partition maintenance needs a finite retention for usage events.
    let retention = map["tables"]["usage_events"]["retention"].as_str().unwrap();
    assert_ne!(retention, "forever");
    humantime_like(retention);
}

fn humantime_like(text: &str) {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    assert!(
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        "retention {text:?} is not a duration"
    );
}
