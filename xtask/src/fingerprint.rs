//! The catalog fingerprint of a database, read through `psql` with the
//! `catalog` crate's query, so that smoke and the benchmarks compare schemas
//! exactly as `dbops migrate baseline` does.

use catalog::fingerprint::{Fingerprint, QUERY};
use url::Url;

use crate::Result;
use crate::pg::psql;

/// Reads the fingerprint of the database at `db`.
pub fn take(db: &Url) -> Result<Fingerprint> {
    Ok(Fingerprint::parse(&psql::query(db, QUERY)?))
}
