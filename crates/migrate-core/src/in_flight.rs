//! Whether the statement an interrupted no-transaction migration was running finished on the
//! server anyway: PostgreSQL runs a statement to its end even when the client that sent it is
//! gone (a `CREATE INDEX CONCURRENTLY` of an hour goes on), so the run log's progress, written
//! by the client, can lag one statement behind. The catalog tells for the statements such
//! migrations are made of.

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::Error;

/// What the catalog says of the statement a partial migration was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InFlight {
    /// Its effect is there: it finished on the server after the run lost it.
    Finished,
    /// Its effect is not there (or is half there, such as an invalid index).
    NotFinished,
    /// The catalog cannot tell for this kind of statement.
    Unknown,
}

/// The catalog's word on `statement`, for the statements it can tell about:
/// `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name`,
/// `DROP INDEX [CONCURRENTLY] [IF EXISTS] name` and
/// `ALTER TABLE ... VALIDATE CONSTRAINT name`.
pub(crate) async fn outcome(client: &Client, statement: &str) -> Result<InFlight, Error> {
    let Some((kind, name)) = recognise(statement) else {
        return Ok(InFlight::Unknown);
    };
    let query = match kind {
        Kind::CreateIndex => {
            "SELECT coalesce((SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)), false)"
        }
        Kind::DropIndex => "SELECT to_regclass($1) IS NULL",
        Kind::Validate => {
            "SELECT coalesce(bool_and(convalidated), false) FROM pg_constraint WHERE conname = $1"
        }
    };
    // to_regclass folds and unquotes a name itself; conname is compared as stored.
    let name = match kind {
        Kind::Validate => fold(&name),
        _ => name,
    };
    let done: bool = client
        .query_one(query, &[&name])
        .await
        .map_err(Error::db("looking up what an interrupted statement left"))?
        .get(0);
    Ok(if done {
        InFlight::Finished
    } else {
        InFlight::NotFinished
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CreateIndex,
    DropIndex,
    Validate,
}

/// The kind of statement and the name of its object, as written.
fn recognise(statement: &str) -> Option<(Kind, String)> {
    let words: Vec<String> = statement
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .flat_map(str::split_whitespace)
        .map(|word| word.trim_end_matches(';').to_string())
        .filter(|word| !word.is_empty())
        .collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let skip = |mut at: usize, optional: &[&str]| {
        for word in optional {
            if upper.get(at).is_some_and(|w| w == word) {
                at += 1;
            }
        }
        at
    };
    let (kind, at) = match upper
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["CREATE", "INDEX", ..] => (Kind::CreateIndex, 2),
        ["CREATE", "UNIQUE", "INDEX", ..] => (Kind::CreateIndex, 3),
        ["DROP", "INDEX", ..] => (Kind::DropIndex, 2),
        ["ALTER", "TABLE", ..] => {
            let at = upper.iter().position(|w| w == "VALIDATE")?;
            (upper.get(at + 1) == Some(&"CONSTRAINT".to_string())).then_some(())?;
            return Some((Kind::Validate, words.get(at + 2)?.clone()));
        }
        _ => return None,
    };
    let at = skip(at, &["CONCURRENTLY"]);
    let at = match kind {
        Kind::CreateIndex if upper.get(at).is_some_and(|w| w == "IF") => at + 3,
        Kind::DropIndex if upper.get(at).is_some_and(|w| w == "IF") => at + 2,
        _ => at,
    };
    let name = words.get(at)?;
    // `CREATE INDEX ON t (...)` has no name, and `DROP INDEX a, b` more than
    // one: nothing to look up.
    if upper[at] == "ON" || name.ends_with(',') {
        return None;
    }
    Some((kind, name.clone()))
}

/// A name folded as PostgreSQL folds it: lower case unless quoted.
fn fold(name: &str) -> String {
    if name.contains('"') {
        name.replace('"', "")
    } else {
        name.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(statement: &str, expected: Option<(Kind, &str)>) {
        assert_eq!(
            recognise(statement),
            expected.map(|(kind, name)| (kind, name.to_string())),
            "{statement}"
        );
    }

    #[test]
    fn the_statements_whose_effect_the_catalog_shows_are_recognised() {
        check(
            "CREATE INDEX CONCURRENTLY t_id_idx ON t (id);",
            Some((Kind::CreateIndex, "t_id_idx")),
        );
        check(
            "create unique index concurrently if not exists Public.T_Key on t (id)",
            Some((Kind::CreateIndex, "Public.T_Key")),
        );
        check(
            "-- why\nDROP INDEX CONCURRENTLY IF EXISTS \"Odd\";",
            Some((Kind::DropIndex, "\"Odd\"")),
        );
        check(
            "ALTER TABLE t VALIDATE CONSTRAINT t_fk;",
            Some((Kind::Validate, "t_fk")),
        );
        check("CREATE INDEX ON t (id);", None);
        check("DROP INDEX a, b;", None);
        check("UPDATE t SET x = 1;", None);
    }
}
