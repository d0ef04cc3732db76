//! Snapshot tests of the generated files, rendered from the hand-built fixture schema.

mod fixture;

use docgen::dictionary;
use docgen::model::DocModel;
use expect_test::expect_file;

#[test]
fn dictionary_snapshot() {
    let model = DocModel::from_schema(&fixture::classified_schema());
    expect_file!["snapshots/dictionary.md"].assert_eq(&dictionary::render(&model));
}

#[test]
fn erd_snapshot() {
    let model = DocModel::from_schema(&fixture::classified_schema());
    expect_file!["snapshots/schema.puml"].assert_eq(&docgen::erd::render(&model));
}

#[test]
fn rendering_is_deterministic_and_reads_back() {
    let model = DocModel::from_schema(&fixture::classified_schema());
    let first = docgen::render(&model);
    let mut shuffled = fixture::classified_schema();
    shuffled.tables.reverse();
    shuffled.sort();
    assert_eq!(
        docgen::render(&DocModel::from_schema(&shuffled)),
        first,
        "byte-identical output"
    );
    assert_eq!(
        dictionary::parse(&first.dictionary).unwrap(),
        model,
        "the embedded model reads back"
    );
}

#[test]
fn comments_cannot_close_the_embedded_model_early() {
    let mut schema = fixture::classified_schema();
    schema.tables[0].comment = Some("tricky --> comment <!-- dbops:model".into());
    let model = DocModel::from_schema(&schema);
    assert_eq!(
        dictionary::parse(&dictionary::render(&model)).unwrap(),
        model
    );
}

#[test]
fn partitions_are_folded_by_pattern_and_independent_of_which_days_exist() {
    let mut schema = fixture::classified_schema();
    let before = docgen::render(&DocModel::from_schema(&schema));
    let events = schema.table_mut("events").unwrap();
    events
        .partitioning
        .as_mut()
        .unwrap()
        .partitions
        .retain(|p| p.name != "events_p20260101");
    assert_eq!(docgen::render(&DocModel::from_schema(&schema)), before);
}

#[test]
fn svg_is_rendered_when_plantuml_is_installed_and_skipped_otherwise() {
    use docgen::erd::{SvgOutcome, render_svg};
    let dir = tempfile::tempdir().unwrap();
    let puml = dir.path().join("schema.puml");
    std::fs::write(
        &puml,
        docgen::erd::render(&DocModel::from_schema(&fixture::classified_schema())),
    )
    .unwrap();
    match render_svg(&puml) {
        SvgOutcome::Rendered(svg) => {
            let svg = std::fs::read_to_string(svg).unwrap();
            assert!(
                svg.contains("organizations") && svg.contains("events_pYYYYMMDD"),
                "{svg}"
            );
        }
        SvgOutcome::Skipped { reason } => {
            assert!(reason.contains("no `plantuml` executable"), "{reason}");
            assert!(!dir.path().join("schema.svg").exists());
        }
        other => panic!("{other:?}"),
    }
}
