//! What the invalid-index and NOT VALID checks share: look before only when
//! the script can leave the state, look after, and tell what this migration
//! left from what was there already.

use std::future::Future;

use migrate_core::hooks::Prepared;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::tables::Touched;

/// A half-done catalog object, told apart by its oid.
pub(crate) trait Leftover: Serialize + DeserializeOwned {
    /// The object's oid.
    fn oid(&self) -> u32;
}

/// The before-phase: the objects found now, when `can_leave` says the script
/// can add some; nothing (and no query) otherwise.
pub(crate) async fn before<T, F>(can_leave: bool, find: F) -> Result<Prepared, Error>
where
    T: Leftover,
    F: Future<Output = Result<Vec<T>, Error>>,
{
    if !can_leave {
        // Nothing in the script can change this state: `after` reports what
        // it finds as it was, without a query before.
        return Ok(Prepared::default());
    }
    let found = find.await?;
    Ok(Prepared {
        findings: Vec::new(),
        memo: serde_json::to_value(found).map_err(Error::Memo)?,
    })
}

/// The after-phase: each object found now, with whether it was there before
/// the migration (always true when the script cannot leave such objects).
pub(crate) async fn after<T, F>(
    touched: &Touched,
    prepared: &Prepared,
    can_leave: bool,
    find: F,
) -> Result<Vec<(T, bool)>, Error>
where
    T: Leftover,
    F: Future<Output = Result<Vec<T>, Error>>,
{
    if !can_leave && touched.no_existing() {
        // Only new tables, and no statement that can leave this state.
        return Ok(Vec::new());
    }
    let before: Vec<T> = if prepared.memo.is_null() {
        Vec::new()
    } else {
        serde_json::from_value(prepared.memo.clone()).map_err(Error::Memo)?
    };
    let found = find.await?;
    Ok(found
        .into_iter()
        .map(|object| {
            let already = !can_leave || before.iter().any(|b| b.oid() == object.oid());
            (object, already)
        })
        .collect())
}
