//! The schemas a target's migrations build in, read from the first words of
//! their statements with squawk's lexer: the schemas they create, the
//! schemas they name when they create a table, view, sequence, function or
//! type, and `public` when they create one of those without naming a schema
//! (where it lands on PostgreSQL's default `search_path`).

use std::collections::BTreeSet;

use squawk_lexer::TokenKind;

use crate::history::BOOKKEEPING_SCHEMA;
use crate::source::Source;

/// Where unqualified names land on the default `search_path`.
pub(crate) const DEFAULT_SCHEMA: &str = "public";

/// What a target's up migrations say about where they build.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BuiltIn {
    /// Schemas they create with `CREATE SCHEMA`: the target's own.
    pub created: BTreeSet<String>,
    /// Other schemas they create objects in, [`DEFAULT_SCHEMA`] included
    /// when a name has no schema: possibly shared with other targets.
    pub named: BTreeSet<String>,
}

impl BuiltIn {
    /// Reads every up migration of `source`. dbops's own schema is left out.
    pub fn of(source: &Source) -> BuiltIn {
        let mut built = BuiltIn::default();
        for migration in source.migrations() {
            for statement in crate::split::split_statements(&migration.up.sql) {
                built.read(statement.text);
            }
        }
        built.created.remove(BOOKKEEPING_SCHEMA);
        built.named.remove(BOOKKEEPING_SCHEMA);
        built.named.retain(|schema| !built.created.contains(schema));
        built
    }

    fn read(&mut self, statement: &str) {
        if let Some(schema) = created_schema(statement) {
            self.created.insert(schema);
        } else if let Some(schema) = created_object_schema(statement) {
            self.named
                .insert(schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string()));
        }
    }

    /// Every schema they build in; [`DEFAULT_SCHEMA`] when they name none.
    pub fn all(&self) -> BTreeSet<String> {
        let all: BTreeSet<String> = self.created.union(&self.named).cloned().collect();
        if all.is_empty() {
            BTreeSet::from([DEFAULT_SCHEMA.to_string()])
        } else {
            all
        }
    }
}

/// A word of a statement's beginning.
#[derive(Debug, PartialEq)]
enum Word {
    /// An identifier or keyword, lowercased as PostgreSQL folds it.
    Plain(String),
    /// A double-quoted identifier, as written.
    Quoted(String),
    Dot,
    Other,
}

impl Word {
    fn is(&self, keyword: &str) -> bool {
        matches!(self, Word::Plain(word) if word == keyword)
    }

    fn name(&self) -> Option<String> {
        match self {
            Word::Plain(name) | Word::Quoted(name) => Some(name.clone()),
            Word::Dot | Word::Other => None,
        }
    }
}

/// The first `count` words of `statement`, comments and whitespace skipped.
fn first_words(statement: &str, count: usize) -> Vec<Word> {
    let mut words = Vec::with_capacity(count);
    let mut offset = 0;
    for token in squawk_lexer::tokenize(statement) {
        let text = &statement[offset..offset + token.len as usize];
        offset += token.len as usize;
        words.push(match token.kind {
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment { .. } => {
                continue;
            }
            TokenKind::Ident => Word::Plain(text.to_ascii_lowercase()),
            TokenKind::QuotedIdent { .. } => {
                let inner = text.strip_prefix('"').unwrap_or(text);
                let inner = inner.strip_suffix('"').unwrap_or(inner);
                Word::Quoted(inner.replace("\"\"", "\""))
            }
            TokenKind::Dot => Word::Dot,
            _ => Word::Other,
        });
        if words.len() == count {
            break;
        }
    }
    words
}

/// The schema a `CREATE SCHEMA [IF NOT EXISTS] name ...` statement creates.
fn created_schema(statement: &str) -> Option<String> {
    let words = first_words(statement, 6);
    if !(words.first()?.is("create") && words.get(1)?.is("schema")) {
        return None;
    }
    let at = if words.get(2)?.is("if") { 5 } else { 2 };
    let name = words.get(at)?;
    if name.is("authorization") {
        return None;
    }
    name.name()
}

/// For a statement that creates a table, view, sequence, function or type
/// (persistent, not temporary): the schema it names, `Some(None)` when it
/// names none. `None` for any other statement.
fn created_object_schema(statement: &str) -> Option<Option<String>> {
    const KINDS: [&str; 8] = [
        "table",
        "view",
        "sequence",
        "function",
        "procedure",
        "aggregate",
        "type",
        "domain",
    ];
    const MODIFIERS: [&str; 6] = [
        "unlogged",
        "materialized",
        "recursive",
        "foreign",
        "global",
        "local",
    ];
    let words = first_words(statement, 12);
    let mut at = 1;
    if !words.first()?.is("create") {
        return None;
    }
    if words.get(at)?.is("or") && words.get(at + 1)?.is("replace") {
        at += 2;
    }
    while let Some(word) = words.get(at) {
        if word.is("temp") || word.is("temporary") {
            return None;
        }
        if !MODIFIERS.iter().any(|modifier| word.is(modifier)) {
            break;
        }
        at += 1;
    }
    if !KINDS
        .iter()
        .any(|kind| words.get(at).is_some_and(|w| w.is(kind)))
    {
        return None;
    }
    at += 1;
    if words.get(at)?.is("if") {
        at += 3;
    }
    let first = words.get(at)?.name()?;
    Some(match words.get(at + 1) {
        Some(Word::Dot) => Some(first),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::{BuiltIn, created_object_schema, created_schema};

    #[test]
    fn created_schemas_are_read_from_their_statements() {
        for (statement, expected) in [
            ("CREATE SCHEMA analytics", Some("analytics")),
            ("create schema if not exists Reports;", Some("reports")),
            ("CREATE SCHEMA \"Mixed\" AUTHORIZATION joe", Some("Mixed")),
            (
                "-- note\nCREATE SCHEMA -- the name\n  billing",
                Some("billing"),
            ),
            ("CREATE /* a */ SCHEMA billing", Some("billing")),
            ("CREATE SCHEMA AUTHORIZATION joe", None),
            ("CREATE TABLE schema (id int)", None),
        ] {
            assert_eq!(
                created_schema(statement).as_deref(),
                expected,
                "{statement}"
            );
        }
    }

    #[test]
    fn created_objects_name_their_schema_or_land_in_the_default_one() {
        let unqualified = Some(None);
        let r#in = |schema: &str| Some(Some(schema.to_string()));
        for (statement, expected) in [
            ("CREATE TABLE orgs (id int)", unqualified.clone()),
            (
                "create table if not exists Orgs (id int)",
                unqualified.clone(),
            ),
            ("CREATE TABLE app.orgs (id int)", r#in("app")),
            ("CREATE TABLE \"App\" . \"Orgs\" (id int)", r#in("App")),
            ("CREATE TABLE \"a.b\" (id int)", unqualified.clone()),
            ("CREATE UNLOGGED TABLE cache (k text)", unqualified.clone()),
            ("CREATE OR REPLACE VIEW v AS SELECT 1", unqualified.clone()),
            ("CREATE MATERIALIZED VIEW app.m AS SELECT 1", r#in("app")),
            (
                "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                unqualified.clone(),
            ),
            (
                "CREATE FUNCTION analytics.q(bins int[]) RETURNS int",
                r#in("analytics"),
            ),
            ("CREATE TYPE status AS ENUM ('a')", unqualified.clone()),
            ("CREATE SEQUENCE public.s", r#in("public")),
            ("CREATE TEMP TABLE scratch (id int)", None),
            ("CREATE INDEX orgs_name_idx ON app.orgs (name)", None),
            (
                "CREATE TRIGGER t AFTER INSERT ON orgs FOR EACH ROW EXECUTE FUNCTION f()",
                None,
            ),
            ("ALTER TABLE orgs ADD COLUMN x int", None),
            ("CREATE SCHEMA app", None),
        ] {
            assert_eq!(created_object_schema(statement), expected, "{statement}");
        }
    }

    #[test]
    fn a_history_that_creates_a_schema_and_builds_in_public_builds_in_both() {
        let mut built = BuiltIn::default();
        for statement in [
            "CREATE SCHEMA utils",
            "CREATE FUNCTION utils.restore_views() RETURNS void LANGUAGE sql AS ''",
            "CREATE TABLE users (id int)",
        ] {
            built.read(statement);
        }
        assert_eq!(
            built.all().into_iter().collect::<Vec<_>>(),
            ["public", "utils"]
        );
        let only_own = BuiltIn {
            created: ["reports".to_string()].into(),
            named: Default::default(),
        };
        assert_eq!(only_own.all().into_iter().collect::<Vec<_>>(), ["reports"]);
        assert_eq!(
            BuiltIn::default().all().into_iter().collect::<Vec<_>>(),
            ["public"]
        );
    }
}
