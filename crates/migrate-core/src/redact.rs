//! Showing a connection string in a log or an error without its password.

/// The target `url` names, for messages: read as libpq reads it and shown
/// from the parsed fields (user, hosts, ports, database, sslmode), so no
/// password in any shape can appear. A string that cannot be read is not
/// shown at all.
///
/// Accepts what [`crate::Database::from_url`] accepts: `postgres://` URLs
/// and libpq key/value strings, completed from the `PG*` variables.
pub fn redact_url(url: &str) -> String {
    match pgconn::ConnConfig::parse(url) {
        Ok(config) => config.redacted(),
        Err(_) => "(a connection string that is not valid; not shown)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn masks_passwords_in_every_form() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/app",
                "postgres://app@db:5432/app?sslmode=prefer",
            ),
            (
                "postgresql://db/app?user=a&password=hunter2",
                "postgres://a@db:5432/app?sslmode=prefer",
            ),
            (
                "host=db user=app password=hunter2 dbname=app sslmode=require",
                "postgres://app@db:5432/app?sslmode=require",
            ),
            (
                "postgres://app:p@ss:w@rd@db/app",
                "postgres://app@db:5432/app?sslmode=prefer",
            ),
            (
                "postgres://app:2024/hunter2@db/app",
                "(a connection string that is not valid; not shown)",
            ),
            (
                "host=db password=x hunter2",
                "(a connection string that is not valid; not shown)",
            ),
        ];
        for (input, expected) in cases {
            let got = redact_url(input);
            assert_eq!(got, expected, "redacting {input}");
        }
    }
}
