//! The checksums recorded in history tables never change: a database that any earlier dbops
//! migrated must validate unchanged. These snapshots pin them, for the project's own migrations
//! and for a fixture of the shapes that matter (CRLF line endings, a byte-order mark, a
//! no-transaction file, non-ASCII text).

use std::fmt::Write;
use std::path::Path;

use expect_test::{Expect, expect};
use migrate_core::Source;

fn check(dir: &Path, expected: Expect) {
    let source = Source::load(dir).unwrap();
    let mut listing = String::new();
    for migration in source.migrations() {
        writeln!(
            listing,
            "{} {} {}",
            migration.version, migration.slug, migration.checksum
        )
        .unwrap();
    }
    expected.assert_eq(&listing);
}

fn repository(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn the_projects_own_migrations_keep_their_checksums() {
    check(
        &repository("migrations/operational"),
        expect![[r#"
        202511150001 core_entities 3267264642367209973
        202511150002 usage_events 8760098611697052378
        202512060001 usage_events_bounds 9259593646840160532
        202512060002 api_keys_pepper_id 16996110416738781184
    "#]],
    );
    check(
        &repository("migrations/analytics"),
        expect![[r#"
        202511160001 rollups 17307347391010873487
        202512060001 rollup_quarantine 8392039988018476556
    "#]],
    );
}

#[test]
fn a_fixture_keeps_its_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, &str); 6] = [
        (
            "202401010000_orgs.up.sql",
            "CREATE TABLE orgs (id bigint PRIMARY KEY);\n",
        ),
        ("202401010000_orgs.down.sql", "DROP TABLE orgs;\n"),
        (
            "202401021230_crlf_bom.up.sql",
            "\u{feff}ALTER TABLE orgs ADD COLUMN name text;\r\nCOMMENT ON COLUMN orgs.name IS 'Größe';\r\n",
        ),
        (
            "202401021230_crlf_bom.down.sql",
            "ALTER TABLE orgs DROP COLUMN name;\n",
        ),
        (
            "202402290000_orgs_idx.up.sql",
            "-- dbops:no-transaction\nCREATE INDEX CONCURRENTLY orgs_name_idx ON orgs (name);\n",
        ),
        (
            "202402290000_orgs_idx.down.sql",
            "-- dbops:no-transaction\nDROP INDEX CONCURRENTLY orgs_name_idx;\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    check(
        dir.path(),
        expect![[r#"
        202401010000 orgs 563176049152639336
        202401021230 crlf_bom 4733711581126546790
        202402290000 orgs_idx 13266201278913749272
    "#]],
    );
}
