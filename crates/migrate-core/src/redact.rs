//! Removing passwords from connection strings before they reach a log or an error.

/// Returns `url` with any password replaced by `***`.
///
/// Handles `postgres://user:pass@host/db` URLs and libpq key/value strings
/// (`host=... password=...`). Anything it cannot parse is returned with
/// everything before the last `@` masked, so that a malformed URL cannot leak
/// a password either.
pub fn redact_url(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return match url::Url::parse(url) {
            Ok(mut parsed) => {
                if parsed.password().is_some() {
                    // Setting a password only fails for URLs that cannot have one.
                    let _ = parsed.set_password(Some("***"));
                }
                let mut text = parsed.to_string();
                if let Some((base, query)) = text.split_once('?') {
                    let cleaned: Vec<String> = query
                        .split('&')
                        .map(|pair| match pair.split_once('=') {
                            Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                                format!("{key}=***")
                            }
                            _ => pair.to_string(),
                        })
                        .collect();
                    text = format!("{base}?{}", cleaned.join("&"));
                }
                text
            }
            Err(_) => match url.rfind('@') {
                Some(at) => format!("postgres://***{}", &url[at..]),
                None => url.to_string(),
            },
        };
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn masks_passwords_in_every_form() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/app",
                "postgres://app:***@db:5432/app",
            ),
            ("postgres://app@db/app", "postgres://app@db/app"),
            (
                "postgresql://db/app?user=a&password=hunter2",
                "postgresql://db/app?user=a&password=***",
            ),
            (
                "host=db user=app password=hunter2 dbname=app",
                "host=db user=app password=*** dbname=app",
            ),
            (
                "postgres://app:p@ss:w@rd@db/app",
                "postgres://app:***@db/app",
            ),
        ];
        for (input, expected) in cases {
            let got = redact_url(input);
            assert_eq!(got, expected, "redacting {input}");
            assert!(!got.contains("s3cret") && !got.contains("hunter2"));
        }
    }
}
