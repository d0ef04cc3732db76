//! The history table of one target, in refinery's format: which migrations are applied.
//!
//! `dbops.<target>_schema_history` has refinery's columns (`version`, `name`,
//! `applied_on` as RFC 3339 text, `checksum` as the decimal text of
//! refinery's checksum), so a database migrated by refinery, or by any
//! earlier dbops, validates unchanged.

use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::error::Error;
use crate::source::{Direction, Migration};

/// The schema that holds dbops's own bookkeeping.
pub const BOOKKEEPING_SCHEMA: &str = "dbops";

/// A row of the history table.
#[derive(Debug, Clone)]
pub(crate) struct AppliedRow {
    pub version: i64,
    pub name: String,
    pub applied_on: Option<OffsetDateTime>,
    pub checksum: Option<u64>,
}

/// The names of one target's bookkeeping objects.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub name: String,
    pub history_table: String,
    pub lock_key: i64,
}

impl Target {
    pub fn new(name: &str) -> Result<Target, Error> {
        let valid = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && name.as_bytes()[0].is_ascii_lowercase();
        if !valid {
            return Err(Error::Config {
                origin: format!("target {name:?}"),
                message:
                    "target names are lowercase letters, digits and '_', starting with a letter"
                        .to_string(),
            });
        }
        let history_table = format!("{BOOKKEEPING_SCHEMA}.{name}_schema_history");
        let digest = <sha2::Sha256 as sha2::Digest>::digest(
            format!("dbops migrate {history_table}").as_bytes(),
        );
        let lock_key = i64::from_be_bytes(digest[..8].try_into().expect("eight bytes"));
        Ok(Target {
            name: name.to_string(),
            history_table,
            lock_key,
        })
    }

    /// The DDL of the history table, as refinery itself creates it.
    pub fn history_ddl(&self) -> String {
        <Client as refinery_core::AsyncMigrate>::assert_migrations_table_query(&self.history_table)
    }

    /// The statement that records `migration` as applied (up) or not (down).
    /// Every value in it is a number or a slug, which holds only `[a-z0-9_]`.
    pub fn record(&self, migration: &Migration, direction: Direction) -> String {
        let table = &self.history_table;
        let version = migration.version;
        match direction {
            Direction::Up => format!(
                "INSERT INTO {table} (version, name, applied_on, checksum) VALUES ({version}, '{}', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '{}')",
                migration.slug, migration.checksum
            ),
            Direction::Down => format!("DELETE FROM {table} WHERE version = {version}"),
        }
    }

    /// The applied migrations, oldest first; none when the table does not exist yet.
    pub async fn applied(&self, client: &Client) -> Result<Vec<AppliedRow>, Error> {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.history_table])
            .await
            .map_err(Error::db("looking for the history table"))?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT version, name, applied_on, checksum FROM {} ORDER BY version",
                    self.history_table
                ),
                &[],
            )
            .await
            .map_err(Error::db("reading the migration history"))?;
        Ok(rows
            .into_iter()
            .map(|row| AppliedRow {
                version: row.get(0),
                name: row.get::<_, Option<String>>(1).unwrap_or_default(),
                applied_on: row.get::<_, Option<String>>(2).and_then(|s| {
                    OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).ok()
                }),
                checksum: row.get::<_, Option<String>>(3).and_then(|s| s.parse().ok()),
            })
            .collect())
    }
}
