//! After a migration: how many rows each existing touched table gained or lost.
//!
//! Tables estimated at no more than `exact_max_rows` rows are counted with
//! `count(*)` before and after; larger ones are estimated from the
//! statistics (`pg_stat_all_tables.n_live_tup` with the writes of the
//! migration's session not yet in it, else `pg_class.reltuples`), and the
//! finding says so. So is a table that another session holds or waits for
//! an `ACCESS EXCLUSIVE` lock on when the check looks (counting it would
//! queue behind that session), and one the migration's role may not read.
//! The method chosen before is used after too, so the two figures compare.
//! Writes of other sessions in between are counted as well: the figure is
//! what changed, not only what the migration did.

use migrate_core::hooks::{Finding, Severity};

use crate::catalog::{Counted, Recounted};

const NAME: &str = "row-counts";

/// One finding per table counted before: its rows now, or that it was dropped.
pub(crate) fn findings(before: &[Counted], after: &[Recounted]) -> Vec<Finding> {
    before
        .iter()
        .map(|before| {
            let now = after.iter().find(|after| after.oid == before.oid);
            match now {
                Some(Recounted {
                    table: Some(table),
                    rows: Some(rows),
                    ..
                }) => difference(before, table, *rows),
                _ => dropped(before),
            }
        })
        .collect()
}

fn method(exact: bool) -> &'static str {
    if exact {
        "exact count"
    } else {
        "estimated from statistics"
    }
}

fn difference(before: &Counted, table: &str, after: i64) -> Finding {
    let change = after - before.rows;
    let severity = if change < 0 {
        Severity::Warning
    } else {
        Severity::Info
    };
    let change_text = match change {
        0 => "unchanged".to_string(),
        c if c > 0 => format!("+{c}"),
        c => c.to_string(),
    };
    Finding {
        hook: NAME.to_string(),
        severity,
        message: format!(
            "{table}: {} → {after} rows ({change_text}, {})",
            before.rows,
            method(before.exact)
        ),
        data: serde_json::json!({
            "table": table,
            "before": before.rows,
            "after": after,
            "difference": change,
            "exact": before.exact,
        }),
    }
}

fn dropped(before: &Counted) -> Finding {
    Finding {
        hook: NAME.to_string(),
        severity: if before.rows > 0 {
            Severity::Warning
        } else {
            Severity::Info
        },
        message: format!(
            "{}: dropped with {} rows ({})",
            before.table,
            before.rows,
            method(before.exact)
        ),
        data: serde_json::json!({
            "table": before.table,
            "before": before.rows,
            "after": null,
            "difference": -before.rows,
            "exact": before.exact,
            "dropped": true,
        }),
    }
}
