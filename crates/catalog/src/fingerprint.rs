//! A catalog fingerprint: the schema objects of a database as sorted text,
//! so that two databases (or two states of one) can be compared and their
//! difference named object by object.
//!
//! One query reads schemas, extensions, tables (and views, materialized
//! views, sequences, partitions), columns, constraints, indexes, triggers,
//! functions and types outside the system schemas. Objects that belong to an
//! extension are left out: they come and go with the extension. `cargo xtask
//! smoke` compares fingerprints through `psql` ([`Fingerprint::parse`]);
//! `migrate-core`'s verified baseline through a client ([`take`]).

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use crate::Error;

/// The sections of a fingerprint, in the order they are reported.
pub const SECTIONS: [&str; 9] = [
    "schemas",
    "extensions",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "triggers",
    "functions",
    "types",
];

/// Rows of `section|schema|text`; whitespace runs in the text become one
/// space so that every object is one line.
pub const QUERY: &str = r#"
WITH user_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_%'
), from_extension AS (
    SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
), objects (section, schema, text) AS (
    -- The first branch sets the column types: text, not name (63 bytes).
    SELECT 'schemas'::text, nspname::text, nspname::text FROM user_ns
  UNION ALL
    SELECT 'extensions', n.nspname, e.extname
    FROM pg_extension e JOIN user_ns n ON n.oid = e.extnamespace
  UNION ALL
    SELECT 'tables', n.nspname, c.relname || ' ' ||
        CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
            WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' ELSE 'sequence' END ||
        CASE WHEN c.relispartition THEN
            ' partition of ' || (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid)
            || ' ' || pg_get_expr(c.relpartbound, c.oid) ELSE '' END ||
        CASE WHEN c.relpersistence = 'u' THEN ' unlogged' ELSE '' END ||
        CASE WHEN c.relrowsecurity THEN ' row security' ELSE '' END ||
        CASE WHEN c.relkind IN ('v', 'm') THEN ' definition ' || md5(pg_get_viewdef(c.oid)) ELSE '' END
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND (c.tableoid, c.oid) NOT IN (SELECT classid, objid FROM from_extension)
  UNION ALL
    SELECT 'columns', n.nspname, c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
        CASE WHEN a.attnotnull THEN ' not null' ELSE ' null' END ||
        CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END ||
        CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END ||
        coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') ||
        ' #' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN user_ns n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND (c.tableoid, c.oid) NOT IN (SELECT classid, objid FROM from_extension)
  UNION ALL
    SELECT 'constraints', n.nspname,
        coalesce(c.relname, t.typname) || ' ' || co.conname || ': ' || pg_get_constraintdef(co.oid)
    FROM pg_constraint co
    JOIN user_ns n ON n.oid = co.connamespace
    LEFT JOIN pg_class c ON c.oid = co.conrelid
    LEFT JOIN pg_type t ON t.oid = co.contypid
  UNION ALL
    SELECT 'indexes', n.nspname,
        pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' (invalid)' END
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN user_ns n ON n.oid = c.relnamespace
  UNION ALL
    SELECT 'triggers', n.nspname,
        pg_get_triggerdef(t.oid) || CASE WHEN t.tgenabled = 'D' THEN ' (disabled)' ELSE '' END
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN user_ns n ON n.oid = c.relnamespace
    WHERE NOT t.tgisinternal
  UNION ALL
    SELECT 'functions', n.nspname,
        p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' ||
        CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
            ELSE 'window function' END ||
        coalesce(' returns ' || pg_get_function_result(p.oid), '') || ' body ' || md5(p.prosrc)
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
    WHERE (p.tableoid, p.oid) NOT IN (SELECT classid, objid FROM from_extension)
  UNION ALL
    SELECT 'types', n.nspname, t.typname || ' ' ||
        CASE t.typtype
            WHEN 'e' THEN 'enum (' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                                      FROM pg_enum e WHERE e.enumtypid = t.oid) || ')'
            WHEN 'd' THEN 'domain over ' || format_type(t.typbasetype, t.typtypmod)
            WHEN 'r' THEN 'range'
            WHEN 'm' THEN 'multirange'
            ELSE 'composite' END
    FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
    WHERE (t.typtype IN ('e', 'd', 'r', 'm')
           OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
      AND (t.tableoid, t.oid) NOT IN (SELECT classid, objid FROM from_extension)
)
SELECT section, schema, regexp_replace(text, '\s+', ' ', 'g') FROM objects ORDER BY 1, 2, 3
"#;

/// The schema objects of one database at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// Section name to its objects, as (schema, description).
    sections: BTreeMap<String, BTreeSet<(String, String)>>,
}

/// One object that only one of two fingerprints holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// The section, one of [`SECTIONS`].
    pub section: &'static str,
    /// The object, as `schema.description` (indexes and triggers: their definition).
    pub object: String,
    /// Whether the first fingerprint of the comparison holds it (the second does not).
    pub only_in_first: bool,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.only_in_first { '-' } else { '+' };
        write!(f, "{sign} {}: {}", self.section, self.object)
    }
}

/// Reads the fingerprint of the database `client` is connected to.
pub async fn take(client: &Client) -> Result<Fingerprint, Error> {
    let rows = client
        .query(QUERY, &[])
        .await
        .map_err(|source| Error::Query {
            what: "catalog fingerprint",
            source,
        })?;
    Ok(Fingerprint::from_rows(
        rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))),
    ))
}

impl Fingerprint {
    /// A fingerprint from rows of ([`QUERY`]'s) section, schema and text.
    pub fn from_rows(rows: impl IntoIterator<Item = (String, String, String)>) -> Fingerprint {
        let mut sections: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for (section, schema, text) in rows {
            sections.entry(section).or_default().insert((schema, text));
        }
        Fingerprint { sections }
    }

    /// A fingerprint from [`QUERY`]'s output as `psql -A -t` prints it: one
    /// `section|schema|text` line per object.
    pub fn parse(rows: &str) -> Fingerprint {
        Fingerprint::from_rows(rows.lines().filter_map(|row| {
            let mut fields = row.splitn(3, '|');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(section), Some(schema), Some(text)) => {
                    Some((section.to_owned(), schema.to_owned(), text.to_owned()))
                }
                _ => None,
            }
        }))
    }

    /// Counts per section, such as `3 schemas, 12 tables, 80 columns`.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = SECTIONS
            .iter()
            .map(|section| format!("{} {section}", self.objects(section).count()))
            .collect();
        counts.join(", ")
    }

    /// The objects only in `self` and only in `other`, by section.
    pub fn compare(&self, other: &Fingerprint) -> Vec<Difference> {
        let mut differences = Vec::new();
        for section in SECTIONS {
            let (ours, theirs) = (self.set(section), other.set(section));
            for (only_in_first, only) in [
                (true, ours.difference(&theirs)),
                (false, theirs.difference(&ours)),
            ] {
                differences.extend(only.map(|object| Difference {
                    section,
                    object: describe(section, object),
                    only_in_first,
                }));
            }
        }
        differences
    }

    /// The objects only in `self` (`- `) and only in `other` (`+ `), one per
    /// line, by section.
    pub fn diff(&self, other: &Fingerprint) -> Vec<String> {
        self.compare(other)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The same fingerprint with only the objects in `schemas`.
    pub fn within(&self, schemas: &[&str]) -> Fingerprint {
        Fingerprint::from_rows(self.sections.iter().flat_map(|(section, objects)| {
            objects
                .iter()
                .filter(|(schema, _)| schemas.contains(&schema.as_str()))
                .map(|(schema, text)| (section.clone(), schema.clone(), text.clone()))
        }))
    }

    /// The same fingerprint without the table `schema.name`: its row, its
    /// columns, constraints, indexes and triggers, and the sequences of its
    /// serial and identity columns (named `<table>_<column>_seq`).
    pub fn without_table(&self, schema: &str, name: &str) -> Fingerprint {
        let columns: Vec<String> = self
            .objects("columns")
            .filter(|(s, _)| s == schema)
            .filter_map(|(_, text)| text.strip_prefix(&format!("{name}.")))
            .filter_map(|rest| rest.split(' ').next())
            .map(|column| format!("{name}_{column}_seq sequence"))
            .collect();
        let on_table = format!(" ON {schema}.{name} ");
        let row = format!("{name} ");
        let column = format!("{name}.");
        Fingerprint::from_rows(self.sections.iter().flat_map(|(section, objects)| {
            objects
                .iter()
                .filter(|(s, text)| {
                    let ours = s == schema;
                    let gone = match section.as_str() {
                        "tables" => ours && (text.starts_with(&row) || columns.contains(text)),
                        "columns" => ours && text.starts_with(&column),
                        "constraints" => ours && text.starts_with(&row),
                        "indexes" | "triggers" => text.contains(&on_table),
                        _ => false,
                    };
                    !gone
                })
                .map(|(schema, text)| (section.clone(), schema.clone(), text.clone()))
        }))
    }

    /// The schemas that hold at least one object besides the schema itself,
    /// sorted.
    pub fn schemas_in_use(&self) -> Vec<String> {
        let used: BTreeSet<&String> = self
            .sections
            .iter()
            .filter(|(section, _)| section.as_str() != "schemas")
            .flat_map(|(_, objects)| objects.iter().map(|(schema, _)| schema))
            .collect();
        used.into_iter().cloned().collect()
    }

    /// The relations, functions and types (the objects people create;
    /// their columns, constraints, indexes and triggers come with them), one
    /// `kind schema.name` line per object, such as `table public.users`.
    pub fn user_objects(&self) -> Vec<String> {
        ["tables", "functions", "types"]
            .iter()
            .flat_map(|section| {
                self.objects(section)
                    .map(move |(schema, text)| object_name(section, schema, text))
            })
            .collect()
    }

    /// Objects outside `schemas`, leaving out extensions and the `public`
    /// schema itself (which every database has); one line per object.
    pub fn outside(&self, schemas: &[&str]) -> Vec<String> {
        SECTIONS
            .iter()
            .filter(|section| **section != "extensions")
            .flat_map(|section| {
                self.objects(section)
                    .filter(|(schema, text)| {
                        let kept = schemas.contains(&schema.as_str());
                        let public_schema = *section == "schemas" && text == "public";
                        !kept && !public_schema
                    })
                    .map(move |object| format!("{section}: {}", describe(section, object)))
            })
            .collect()
    }

    fn objects<'a>(&'a self, section: &str) -> impl Iterator<Item = &'a (String, String)> {
        self.sections.get(section).into_iter().flatten()
    }

    fn set<'a>(&'a self, section: &str) -> BTreeSet<&'a (String, String)> {
        self.objects(section).collect()
    }
}

fn describe(section: &str, (schema, text): &(String, String)) -> String {
    match section {
        // The text names the schema already.
        "schemas" | "indexes" | "triggers" => text.clone(),
        _ => format!("{schema}.{text}"),
    }
}

/// `table public.users`, `function public.touch(...)`, `type public.status`
/// from a fingerprint line of the tables, functions or types section.
fn object_name(section: &str, schema: &str, text: &str) -> String {
    match section {
        "tables" => {
            // `name kind...`: the kind follows the first space.
            let (name, kind) = text.split_once(' ').unwrap_or((text, "table"));
            let kind = kind
                .split(" partition of ")
                .next()
                .unwrap_or(kind)
                .split(" definition ")
                .next()
                .unwrap_or(kind)
                .trim_end_matches(" unlogged")
                .trim_end_matches(" row security");
            format!("{kind} {schema}.{name}")
        }
        "functions" => {
            let signature = text.split(") ").next().unwrap_or(text);
            format!("function {schema}.{signature})")
        }
        _ => {
            let name = text.split(' ').next().unwrap_or(text);
            format!("type {schema}.{name}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Fingerprint;

    const FIRST: &str = "\
schemas|dbops|dbops
schemas|public|public
tables|public|users table
columns|public|users.id bigint not null identity always #1
columns|public|users.email text not null #2
indexes|public|CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)
constraints|public|users users_email_check: CHECK ((email <> ''::text) OR (email || 'x' = 'x'))
tables|dbops|history table
";

    #[test]
    fn equal_states_have_no_difference() {
        let first = Fingerprint::parse(FIRST);
        assert_eq!(first.diff(&first), Vec::<String>::new());
        assert_eq!(
            first.summary(),
            "2 schemas, 0 extensions, 2 tables, 2 columns, 1 constraints, 1 indexes, \
             0 triggers, 0 functions, 0 types"
        );
    }

    #[test]
    fn diff_names_what_went_and_what_came_by_section() {
        let second = FIRST
            .replace("users.email text not null #2", "users.email text null #2")
            .replace(
                "indexes|public|CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)\n",
                "",
            );
        assert_eq!(
            Fingerprint::parse(FIRST).diff(&Fingerprint::parse(&second)),
            [
                "- columns: public.users.email text not null #2",
                "+ columns: public.users.email text null #2",
                "- indexes: CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)",
            ]
        );
    }

    #[test]
    fn outside_lists_objects_beyond_the_kept_schemas() {
        let rolled_back = "\
schemas|dbops|dbops
schemas|public|public
extensions|public|pgcrypto
tables|dbops|history table
types|public|key_status enum ('active', 'revoked')
";
        assert_eq!(
            Fingerprint::parse(rolled_back).outside(&["dbops"]),
            ["types: public.key_status enum ('active', 'revoked')"]
        );
        assert_eq!(
            Fingerprint::parse(FIRST).outside(&["dbops", "public"]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn without_table_leaves_out_the_table_and_what_belongs_to_it() {
        let more = format!(
            "{FIRST}tables|public|users_id_seq sequence\n\
             tables|public|users_archive table\n\
             columns|public|users_archive.id bigint null #1\n\
             triggers|public|CREATE TRIGGER t BEFORE INSERT ON public.users FOR EACH ROW EXECUTE FUNCTION f()\n"
        );
        let left = Fingerprint::parse(&more).without_table("public", "users");
        assert_eq!(
            left.outside(&[]),
            [
                "schemas: dbops",
                "tables: dbops.history table",
                "tables: public.users_archive table",
                "columns: public.users_archive.id bigint null #1",
            ]
        );
    }

    #[test]
    fn within_keeps_the_named_schemas_and_names_their_objects() {
        let more = format!(
            "{FIRST}tables|public|recent view definition 0cc175b9c0f1b6a831c399e269772661\n\
             tables|public|events_2026 table partition of public.events FOR VALUES IN (2026) unlogged\n\
             functions|public|touch(t text) function returns trigger body 0cc175b9c0f1b6a831c399e269772661\n\
             types|public|key_status enum ('active', 'revoked')\n\
             schemas|empty|empty\n"
        );
        let public = Fingerprint::parse(&more).within(&["public"]);
        assert_eq!(
            public.user_objects(),
            [
                "table public.events_2026",
                "view public.recent",
                "table public.users",
                "function public.touch(t text)",
                "type public.key_status",
            ]
        );
        assert_eq!(
            Fingerprint::parse(&more).schemas_in_use(),
            ["dbops", "public"]
        );
    }
}
