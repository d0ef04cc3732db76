//! What the tests of the standard checks share.

use migrate_core::Direction;
use migrate_core::hooks::{HookContext, Statements};
use tokio_postgres::Client;

/// The context the engine would give the checks around a migration running `sql`.
pub fn context<'a>(
    client: &'a Client,
    statements: &'a Statements,
    sql: &'a str,
) -> HookContext<'a> {
    HookContext {
        target: "operational",
        version: 202601010000,
        slug: "test",
        direction: Direction::Up,
        sql,
        client,
        statements,
    }
}
