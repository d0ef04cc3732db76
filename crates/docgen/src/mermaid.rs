//! The Mermaid `erDiagram` of the dictionary's overview, which renders wherever the Markdown is read.

use std::fmt::Write;

use catalog::model::ConstraintKind;

use crate::model::{DocModel, reference_is_one_to_one, reference_is_required};

/// Renders the diagram's body, from `erDiagram` on (without the code fence).
pub fn render(model: &DocModel) -> String {
    let mut out = String::from("erDiagram\n");
    for doc in &model.tables {
        let table = &doc.table;
        let _ = writeln!(out, "    {} {{", entity(&table.display_name()));
        for column in &table.columns {
            let mut keys = Vec::new();
            if table.is_primary_key_column(&column.name) {
                keys.push("PK");
            }
            if table.is_foreign_key_column(&column.name) {
                keys.push("FK");
            }
            let keys = if keys.is_empty() {
                String::new()
            } else {
                format!(" {}", keys.join(", "))
            };
            let _ = writeln!(
                out,
                "        {} {}{keys}",
                attribute_type(&column.data_type),
                column.name
            );
        }
        out.push_str("    }\n");
    }
    for doc in &model.tables {
        let table = &doc.table;
        for constraint in &table.constraints {
            let ConstraintKind::ForeignKey(fk) = &constraint.kind else {
                continue;
            };
            let parent = if reference_is_required(table, &constraint.columns) {
                "||"
            } else {
                "|o"
            };
            let child = if reference_is_one_to_one(table, &constraint.columns) {
                "o|"
            } else {
                "o{"
            };
            let _ = writeln!(
                out,
                "    {} {parent}--{child} {} : \"{}\"",
                entity(&fk.referenced_display_name()),
                entity(&table.display_name()),
                constraint.columns.join(", ")
            );
        }
    }
    out
}

/// Entity names allow letters, digits, `_` and `-`.
fn entity(display_name: &str) -> String {
    display_name.replace('.', "__")
}

/// Attribute types allow letters, digits, `_`, `-`, `()` and `[]`:
/// `timestamp with time zone` becomes `timestamp_with_time_zone`.
fn attribute_type(data_type: &str) -> String {
    data_type
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-()[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
