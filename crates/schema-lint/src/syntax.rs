//! Small helpers over squawk's syntax tree: identifiers, qualified names, normalized text.

use squawk_syntax::ast::AstNode;
use squawk_syntax::{SyntaxKind, SyntaxNode, SyntaxToken};

/// An identifier as PostgreSQL folds it: unquoted names lowercased, quoted names verbatim.
pub(crate) fn ident(token: &SyntaxToken) -> String {
    let text = token.text();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

/// The first non-trivia token of a node.
fn first_token(node: &SyntaxNode) -> Option<SyntaxToken> {
    node.descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .find(|t| !t.kind().is_trivia())
}

/// The parts of a possibly qualified name (`public.users` gives `["public", "users"]`).
pub(crate) fn name_parts(node: &SyntaxNode) -> Vec<String> {
    node.descendants()
        .filter(|n| {
            matches!(
                n.kind(),
                SyntaxKind::PATH_SEGMENT | SyntaxKind::PATH_SEGMENT_REF
            )
        })
        .filter_map(|segment| first_token(&segment))
        .map(|token| ident(&token))
        .collect()
}

/// A qualified name split into schema (defaulting to `public`) and name.
pub(crate) fn qualified_name(node: &SyntaxNode) -> Option<(String, String)> {
    let mut parts = name_parts(node);
    let name = parts.pop()?;
    let schema = parts
        .pop()
        .unwrap_or_else(|| catalog::model::DEFAULT_SCHEMA.to_owned());
    Some((schema, name))
}

/// The single identifier of a name node (column name, constraint name).
pub(crate) fn simple_name(node: &impl AstNode) -> Option<String> {
    first_token(node.syntax()).map(|t| ident(&t))
}

/// Every column name listed in a column list node, in order.
pub(crate) fn column_list(node: &SyntaxNode) -> Vec<String> {
    node.children()
        .filter(|n| {
            matches!(
                n.kind(),
                SyntaxKind::COLUMN_NAME_REF | SyntaxKind::COLUMN_NAME | SyntaxKind::NAME_REF
            )
        })
        .filter_map(|n| first_token(&n))
        .map(|t| ident(&t))
        .collect()
}

/// The node's source text with runs of whitespace and comments collapsed to one space.
pub(crate) fn normalized_text(node: &SyntaxNode) -> String {
    let mut out = String::new();
    let mut pending_space = false;
    for token in node
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
    {
        if token.kind().is_trivia() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push_str(token.text());
    }
    out
}

/// Names referenced by an expression (`NAME_REF`s not called as functions), in order of first appearance.
pub(crate) fn referenced_names(node: &SyntaxNode) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name_ref in node
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::NAME_REF)
    {
        let called = name_ref
            .parent()
            .is_some_and(|p| p.kind() == SyntaxKind::CALL_EXPR)
            && name_ref
                .next_sibling()
                .is_some_and(|s| s.kind() == SyntaxKind::ARG_LIST);
        if called {
            continue;
        }
        if let Some(token) = first_token(&name_ref) {
            let name = ident(&token);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Columns passed to a call of one of `functions` within an expression, such as
/// `key_hash` in `octet_length(key_hash) = 32`.
pub(crate) fn columns_passed_to(node: &SyntaxNode, functions: &[&str]) -> Vec<String> {
    node.descendants()
        .filter(|n| n.kind() == SyntaxKind::CALL_EXPR)
        .filter(|call| {
            call.children()
                .find(|c| c.kind() == SyntaxKind::NAME_REF)
                .and_then(|n| first_token(&n))
                .is_some_and(|t| functions.contains(&ident(&t).as_str()))
        })
        .flat_map(|call| {
            call.children()
                .filter(|c| c.kind() == SyntaxKind::ARG_LIST)
                .flat_map(|args| referenced_names(&args))
        })
        .collect()
}

/// Parses one expression as PostgreSQL prints it (`lower(email)`,
/// `CHECK ((octet_length(key_hash) = 32))`) and returns its syntax tree.
pub(crate) fn parse_expression(text: &str) -> SyntaxNode {
    let text = text.trim();
    let expr = text.strip_prefix("CHECK ").unwrap_or(text);
    let expr = expr.strip_suffix(" NOT VALID").unwrap_or(expr);
    squawk_syntax::SourceFile::parse(&format!("SELECT {expr};")).syntax_node()
}

/// The type as PostgreSQL's `format_type` prints it, from the type as written
/// in a migration (`timestamptz` gives `timestamp with time zone`,
/// `varchar(64)` gives `character varying(64)`).
pub(crate) fn canonical_type(written: &str) -> String {
    let lower = written.trim().to_lowercase();
    let (base, array) = match lower.strip_suffix("[]") {
        Some(base) => (base.trim_end(), "[]"),
        None => (lower.as_str(), ""),
    };
    // `timestamp(3) with time zone`: the name goes on after the modifier.
    let (name, modifier) = match (base.find('('), base.find(')')) {
        (Some(open), Some(close)) if close > open => (
            format!("{} {}", &base[..open], &base[close + 1..]),
            &base[open..=close],
        ),
        _ => (base.to_owned(), ""),
    };
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let name = match name.as_str() {
        "int" | "int4" | "integer" | "serial" | "serial4" => "integer",
        "int8" | "bigint" | "bigserial" | "serial8" => "bigint",
        "int2" | "smallint" | "smallserial" | "serial2" => "smallint",
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone",
        "timestamp" | "timestamp without time zone" => "timestamp without time zone",
        "timetz" | "time with time zone" => "time with time zone",
        "time" | "time without time zone" => "time without time zone",
        "varchar" | "character varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "bool" | "boolean" => "boolean",
        "float8" | "double precision" => "double precision",
        "float4" | "real" => "real",
        "decimal" | "numeric" => "numeric",
        "varbit" | "bit varying" => "bit varying",
        other => other,
    };
    let modifier: String = modifier.chars().filter(|c| !c.is_whitespace()).collect();
    format!("{name}{modifier}{array}")
}

/// The type's name without modifiers or array brackets (`character varying(64)` gives `character varying`).
pub(crate) fn base_type(data_type: &str) -> &str {
    let end = data_type.find(['(', '[']).unwrap_or(data_type.len());
    data_type[..end].trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_types() {
        let check = |written: &str, expected: &str| {
            assert_eq!(canonical_type(written), expected, "{written}")
        };
        check("timestamptz", "timestamp with time zone");
        check("TIMESTAMP", "timestamp without time zone");
        check("varchar(64)", "character varying(64)");
        check("character  varying ( 10 )", "character varying(10)");
        check("text[]", "text[]");
        check("int4", "integer");
        check("bigserial", "bigint");
        check("bytea", "bytea");
        check("numeric(12, 2)", "numeric(12,2)");
        check("timestamp(3) with time zone", "timestamp with time zone(3)");
        check("varbit(64)", "bit varying(64)");
    }

    #[test]
    fn expressions() {
        let tree = parse_expression("CHECK ((octet_length(key_hash) = 32))");
        assert_eq!(
            columns_passed_to(&tree, &["octet_length", "length"]),
            ["key_hash"]
        );
        let tree =
            parse_expression("CHECK (num_nonnulls(user_id, api_key_id) <= 1 AND user_id > 0)");
        assert_eq!(referenced_names(&tree), ["user_id", "api_key_id"]);
        assert_eq!(base_type("character varying(64)"), "character varying");
        assert_eq!(base_type("text[]"), "text");
    }
}
