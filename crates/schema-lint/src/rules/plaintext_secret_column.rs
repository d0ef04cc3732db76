//! `plaintext-secret-column`: no column named like a secret (`password`, `secret`, `token`, `api_key`) holds text.

use crate::rules::{Family, Findings, Rule, RuleInfo, SchemaView};
use crate::syntax::base_type;
use crate::violation::Severity;

pub(crate) struct PlaintextSecretColumn;

static INFO: RuleInfo = RuleInfo {
    id: "plaintext-secret-column",
    family: Family::SensitiveFields,
    severity: Severity::Error,
    summary: "No column named like a secret (password, secret, token, api_key) holds text: store a keyed digest.",
};

const TEXT_TYPES: [&str; 5] = ["text", "character varying", "character", "citext", "name"];

/// The configured secret word this column name contains, as whole `_`-separated words
/// (`api_key_secret` contains `secret`; `input_tokens` does not contain `token`).
fn secret_word<'w>(column: &str, words: &'w [String]) -> Option<&'w str> {
    let parts: Vec<&str> = column.split('_').collect();
    words.iter().map(String::as_str).find(|word| {
        let needle: Vec<&str> = word.split('_').collect();
        parts
            .windows(needle.len())
            .any(|window| window == needle.as_slice())
    })
}

impl Rule for PlaintextSecretColumn {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn check_schema(&self, view: &SchemaView<'_>, out: &mut Findings) {
        for table in view.tables() {
            for column in &table.columns {
                if !TEXT_TYPES.contains(&base_type(&column.data_type)) {
                    continue;
                }
                let Some(word) = secret_word(&column.name, &view.config.secret_words) else {
                    continue;
                };
                out.report(
                    &INFO,
                    view.column_at(table, &column.name),
                    format!("`{}.{}` is named like a {word} but holds `{}`", table.name, column.name, column.data_type),
                )
                .help("never store secrets: keep an HMAC digest in a `bytea` column named `*_hash`, classified secret/hash");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::test_support::check;

    #[test]
    fn secret_names() {
        check(
            "plaintext-secret-column",
            "CREATE TABLE users (password text, reset_token varchar(64), input_tokens integer, api_key_id bigint,
                 api_key text, secret_hash bytea, key_prefix text, tokens text[]);",
            expect_test::expect![[r#"
                error[plaintext-secret-column]: `users.password` is named like a password but holds `text`
                  --> 202601010000_a.up.sql:1:21
                   |
                 1 | CREATE TABLE users (password text, reset_token varchar(64), input_tokens integer, api_key_id bigint,
                   |                     ^^^^^^^^^^^^^
                   = help: never store secrets: keep an HMAC digest in a `bytea` column named `*_hash`, classified secret/hash
                error[plaintext-secret-column]: `users.reset_token` is named like a token but holds `character varying(64)`
                  --> 202601010000_a.up.sql:1:36
                   |
                 1 | CREATE TABLE users (password text, reset_token varchar(64), input_tokens integer, api_key_id bigint,
                   |                                    ^^^^^^^^^^^^^^^^^^^^^^^
                   = help: never store secrets: keep an HMAC digest in a `bytea` column named `*_hash`, classified secret/hash
                error[plaintext-secret-column]: `users.api_key` is named like a api_key but holds `text`
                  --> 202601010000_a.up.sql:2:18
                   |
                 1 | CREATE TABLE users (password text, reset_token varchar(64), input_tokens integer, api_key_id bigint,
                 2 |                  api_key text, secret_hash bytea, key_prefix text, tokens text[]);
                   |                  ^^^^^^^^^^^^
                   = help: never store secrets: keep an HMAC digest in a `bytea` column named `*_hash`, classified secret/hash
            "#]],
        );
    }
}
