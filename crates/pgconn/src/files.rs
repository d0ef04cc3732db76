//! libpq's files: the password file (`.pgpass`) and the service file (`pg_service.conf`).

use std::path::Path;

use crate::error::Error;
use crate::parse::{Options, keyword};

/// The settings of service `name` in the service file at `path`, `None`
/// when the file has no such section.
///
/// The format is libpq's: `[name]` sections of `keyword=value` lines, `#`
/// comments, blanks around names and values ignored.
pub(crate) fn service_options(
    text: &str,
    path: &Path,
    name: &str,
) -> Result<Option<Options>, Error> {
    let mut found = None::<Options>;
    let mut in_section = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            in_section = section.strip_suffix(']').map(str::trim) == Some(name);
            if in_section {
                found = Some(Options::new());
            }
            continue;
        }
        if !in_section {
            continue;
        }
        let invalid = |message: String| Error::InvalidSetting {
            origin: format!("service file {} line {}", path.display(), index + 1),
            message,
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| invalid("expected keyword=value".to_string()))?;
        let key = key.trim();
        let keyword =
            keyword(key).ok_or_else(|| invalid("not a known connection option".to_string()))?;
        if keyword == "service" {
            return Err(invalid("a service cannot name another service".to_string()));
        }
        if let Some(options) = found.as_mut() {
            options.insert(keyword, value.trim().to_string());
        }
    }
    Ok(found)
}

/// What `.pgpass` is matched against.
#[derive(Debug)]
pub(crate) struct PassKey<'a> {
    pub(crate) host: &'a str,
    pub(crate) port: &'a str,
    pub(crate) dbname: &'a str,
    pub(crate) user: &'a str,
}

/// The password of the first line of a `.pgpass` file that matches `key`.
///
/// Each line is `host:port:database:user:password`; `*` matches anything in
/// the first four fields, `\` escapes `:` and `\`, `#` starts a comment line.
pub(crate) fn pgpass_password(text: &str, key: &PassKey<'_>) -> Option<String> {
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        let [host, port, dbname, user, password] = fields.as_slice() else {
            continue;
        };
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(host, key.host)
            && matches(port, key.port)
            && matches(dbname, key.dbname)
            && matches(user, key.user)
        {
            return Some(password.clone());
        }
    }
    None
}

/// Splits a `.pgpass` line at unescaped colons, the password being the rest.
fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("never empty").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
}

/// Whether a password file is private enough to be read, as libpq requires.
#[cfg(unix)]
pub(crate) fn private_enough(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
}

#[cfg(not(unix))]
pub(crate) fn private_enough(_path: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{PassKey, pgpass_password, service_options};

    #[test]
    fn pgpass_wildcards_escapes_and_order() {
        let text = "\
# comment
db.example:5432:app:app:first
*:*:other:*:wild\\:card\\\\pw
localhost:5432:*:postgres:pa:ss:with:colons
";
        let key = |host, port, dbname, user| PassKey {
            host,
            port,
            dbname,
            user,
        };
        assert_eq!(
            pgpass_password(text, &key("db.example", "5432", "app", "app")).as_deref(),
            Some("first")
        );
        assert_eq!(
            pgpass_password(text, &key("x", "1", "other", "anyone")).as_deref(),
            Some("wild:card\\pw")
        );
        assert_eq!(
            pgpass_password(text, &key("localhost", "5432", "db", "postgres")).as_deref(),
            Some("pa:ss:with:colons")
        );
        assert_eq!(
            pgpass_password(text, &key("db.example", "5433", "app", "app")),
            None
        );
    }

    #[test]
    fn service_sections() {
        let text = "\
# services
[other]
host=nowhere

[prod]
host = db.example
 port=6432
dbname=app
sslmode=verify-full
[after]
host=later
";
        let options = service_options(text, Path::new("pg_service.conf"), "prod")
            .unwrap()
            .unwrap();
        let got: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("dbname", "app"),
                ("host", "db.example"),
                ("port", "6432"),
                ("sslmode", "verify-full")
            ]
        );
        assert!(
            service_options(text, Path::new("x"), "missing")
                .unwrap()
                .is_none()
        );
        let error = service_options("[s]\nbogus=Canary\n", Path::new("f"), "s").unwrap_err();
        assert!(!error.to_string().contains("Canary"), "{error}");
    }
}
