//! Smoke step: the committed docs match the migrated database and every
//! foreign key is enforced (`dbops docs validate`), and a column the docs do
//! not describe is caught with exit code 14.

use super::Context;
use crate::pg::psql;
use crate::{Result, cmd};

/// `DOCS_OUT_OF_DATE` in crates/dbops/src/exit_code.rs.
const DOCS_OUT_OF_DATE: i32 = 14;

pub fn run(ctx: &Context) -> Result {
    ctx.run_dbops(&["docs", "validate"])?;

    psql::query(
        &ctx.db,
        "ALTER TABLE api_keys ADD COLUMN smoke_undocumented text",
    )?;
    let mut validate = ctx.dbops();
    validate.args(["docs", "validate"]);
    eprintln!("$ dbops docs validate  (with an undocumented column)");
    let output = validate
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", cmd::display(&validate)))?;
    psql::query(
        &ctx.db,
        "ALTER TABLE api_keys DROP COLUMN smoke_undocumented",
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected =
        "column `api_keys.smoke_undocumented`: in the database but not in the dictionary";
    if output.status.code() != Some(DOCS_OUT_OF_DATE) || !stdout.contains(expected) {
        return Err(format!(
            "expected exit code {DOCS_OUT_OF_DATE} and `{expected}`; got:\n{}",
            cmd::failure(&validate, &output)
        )
        .into());
    }
    Ok(())
}
