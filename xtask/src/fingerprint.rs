//! A catalog fingerprint: the schema objects of a database as sorted text,
//! so that two states of a database can be compared and their difference
//! printed.
//!
//! One `psql` query reads schemas, extensions, tables (and views, sequences,
//! partitions), columns, constraints, indexes, triggers, functions and types
//! outside the system schemas. Objects that belong to an extension are left
//! out: they come and go with the extension.

use std::collections::{BTreeMap, BTreeSet};

use url::Url;

use crate::Result;
use crate::pg::psql;

/// The sections of a fingerprint, in the order they are reported.
const SECTIONS: [&str; 9] = [
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
const QUERY: &str = r#"
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Section name to its objects, as (schema, description).
    sections: BTreeMap<String, BTreeSet<(String, String)>>,
}

/// Reads the fingerprint of the database at `db`.
pub fn take(db: &Url) -> Result<Fingerprint> {
    Ok(parse(&psql::query(db, QUERY)?))
}

fn parse(rows: &str) -> Fingerprint {
    let mut sections: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for row in rows.lines().filter(|row| !row.is_empty()) {
        let mut fields = row.splitn(3, '|');
        let (Some(section), Some(schema), Some(text)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        sections
            .entry(section.to_owned())
            .or_default()
            .insert((schema.to_owned(), text.to_owned()));
    }
    Fingerprint { sections }
}

impl Fingerprint {
    /// Counts per section, such as `3 schemas, 12 tables, 80 columns`.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = SECTIONS
            .iter()
            .map(|section| format!("{} {section}", self.objects(section).count()))
            .collect();
        counts.join(", ")
    }

    /// The objects only in `self` (`- `) and only in `other` (`+ `), one per
    /// line, by section.
    pub fn diff(&self, other: &Fingerprint) -> Vec<String> {
        let mut lines = Vec::new();
        for section in SECTIONS {
            let (ours, theirs) = (self.set(section), other.set(section));
            for (sign, only) in [
                ('-', ours.difference(&theirs)),
                ('+', theirs.difference(&ours)),
            ] {
                lines.extend(
                    only.map(|object| format!("{sign} {section}: {}", describe(section, object))),
                );
            }
        }
        lines
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

#[cfg(test)]
mod tests {
    use super::parse;

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
        assert_eq!(parse(FIRST).diff(&parse(FIRST)), Vec::<String>::new());
        assert_eq!(
            parse(FIRST).summary(),
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
            parse(FIRST).diff(&parse(&second)),
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
            parse(rolled_back).outside(&["dbops"]),
            ["types: public.key_status enum ('active', 'revoked')"]
        );
        assert_eq!(
            parse(FIRST).outside(&["dbops", "public"]),
            Vec::<String>::new()
        );
    }
}
