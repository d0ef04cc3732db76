//! Reading a connection string, URL or key=value, into keyword/value pairs as libpq does.
//!
//! Nothing here ever puts a piece of the input into an error message: a
//! malformed string may hold a password anywhere, so reasons name positions
//! and rules, never text.

use std::collections::BTreeMap;

/// Keyword/value pairs, keyed by libpq's keyword names.
pub(crate) type Options = BTreeMap<&'static str, String>;

/// Every keyword libpq knows that dbops reads, with its environment variable.
pub(crate) const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("dbname", Some("PGDATABASE")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("sslmode", Some("PGSSLMODE")),
    ("requiressl", Some("PGREQUIRESSL")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("service", Some("PGSERVICE")),
    // Read and ignored: they change nothing dbops can honour or needs.
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("sslsni", Some("PGSSLSNI")),
    ("sslcompression", None),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("gsslib", Some("PGGSSLIB")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    // Known but refused when set: ignoring them would weaken security silently.
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("sslpassword", None),
    ("sslcertmode", None),
    ("require_auth", Some("PGREQUIREAUTH")),
];

/// The static keyword for `key`, if libpq knows it.
pub(crate) fn keyword(key: &str) -> Option<&'static str> {
    KEYWORDS.iter().map(|(k, _)| *k).find(|k| *k == key)
}

/// Parses a URL (`postgres://` or `postgresql://`) or a key=value string.
///
/// The error is a reason that never quotes the input.
pub(crate) fn parse(input: &str) -> Result<Options, String> {
    let input = input.trim();
    if let Some(rest) = strip_scheme(input) {
        return parse_url(rest);
    }
    if let Some(hint) = url_like_hint(input) {
        return Err(hint.to_string());
    }
    parse_key_values(input)
}

fn strip_scheme(input: &str) -> Option<&str> {
    ["postgresql://", "postgres://"].iter().find_map(|scheme| {
        let head = input.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &input[scheme.len()..])
    })
}

/// What is wrong with a string that looks like a URL of another kind.
fn url_like_hint(input: &str) -> Option<&'static str> {
    let lower = input.to_ascii_lowercase();
    if lower.starts_with("jdbc:") {
        return Some(
            "a JDBC URL is not a libpq connection string; use postgres://user@host:port/dbname",
        );
    }
    if let Some(at) = lower.find("://") {
        let scheme = &lower[..at];
        if scheme.starts_with("postgres") && scheme.contains('+') {
            return Some(
                "a driver-qualified URL (scheme with `+driver`) is not a libpq connection string; use postgres:// or postgresql://",
            );
        }
        return Some("a URL must start with postgres:// or postgresql://");
    }
    if lower.starts_with("postgres") && !lower.contains('=') {
        return Some("a URL must start with postgres:// or postgresql://");
    }
    None
}

fn parse_url(rest: &str) -> Result<Options, String> {
    let mut options = Options::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(slash) => (&before_query[..slash], Some(&before_query[slash + 1..])),
        None => (before_query, None),
    };
    if path.is_some_and(|path| path.contains('@')) {
        return Err(
            "the URL has an `@` after its first `/`: a `/` or `@` in a user name or password must be percent-encoded (%2F, %40)"
                .to_string(),
        );
    }
    let hosts = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                options.insert("user", decode(user, "the user name")?);
            }
            if let Some(password) = password {
                options.insert("password", decode(password, "the password")?);
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    if !hosts.is_empty() {
        let mut host_list = Vec::new();
        let mut port_list = Vec::new();
        for (index, spec) in hosts.split(',').enumerate() {
            let (host, port) = split_host_port(spec)
                .ok_or_else(|| format!("host {} of the URL is malformed", index + 1))?;
            host_list.push(decode(host, "a host name")?);
            port_list.push(decode(port.unwrap_or(""), "a port")?);
        }
        if host_list.iter().any(|h| !h.is_empty()) {
            options.insert("host", host_list.join(","));
        }
        if port_list.iter().any(|p| !p.is_empty()) {
            options.insert("port", port_list.join(","));
        }
    }
    if let Some(path) = path
        && !path.is_empty()
    {
        options.insert("dbname", decode(path, "the database name")?);
    }
    if let Some(query) = query {
        for (index, pair) in query.split('&').enumerate().filter(|(_, p)| !p.is_empty()) {
            let position = index + 1;
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("URL query parameter {position} has no `=`"))?;
            let key = decode(key, "a query parameter name")?;
            let value = decode(value, "a query parameter value")?;
            // JDBC's `ssl=true`, which libpq accepts too.
            if key == "ssl" && value == "true" {
                options.insert("sslmode", "require".to_string());
                continue;
            }
            let keyword = keyword(&key).ok_or_else(|| {
                format!("URL query parameter {position} is not a known connection option")
            })?;
            options.insert(keyword, value);
        }
    }
    Ok(options)
}

/// Splits `host:port` or `[v6]:port`; `None` when the brackets do not close.
fn split_host_port(spec: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = spec.strip_prefix('[') {
        let close = inner.find(']')?;
        let host = &inner[..close];
        let after = &inner[close + 1..];
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    Some(match spec.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (spec, None),
    })
}

/// Percent-decodes one URL component.
fn decode(text: &str, what: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{what} has an invalid percent-encoded byte"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{what} is not valid UTF-8 once percent-decoded"))
}

/// Parses libpq's `key = value` form: values may be single-quoted, and a
/// backslash escapes the next character.
fn parse_key_values(input: &str) -> Result<Options, String> {
    let mut options = Options::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut position = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= chars.len() {
            break;
        }
        position += 1;
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        skip_space(&mut i);
        if i >= chars.len() || chars[i] != '=' {
            return Err(format!(
                "expected key=value pairs or a postgres:// URL, but item {position} has no `=` after its name"
            ));
        }
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!("the quoted value of item {position} is not closed"));
                    }
                    Some('\\') => {
                        if let Some(c) = chars.get(i + 1) {
                            value.push(*c);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' {
                    i += 1;
                    if let Some(c) = chars.get(i) {
                        value.push(*c);
                    }
                } else {
                    value.push(chars[i]);
                }
                i += 1;
            }
        }
        let keyword = keyword(&key)
            .ok_or_else(|| format!("item {position} is not a known connection option"))?;
        options.insert(keyword, value);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn check(input: &str, expected: &[(&str, &str)]) {
        let options = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let got: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(got, expected, "parsing {input}");
    }

    #[test]
    fn urls() {
        check(
            "postgres://app:s%2Fcret@db.example:6432/app?sslmode=verify-full&application_name=x",
            &[
                ("user", "app"),
                ("password", "s/cret"),
                ("host", "db.example"),
                ("port", "6432"),
                ("dbname", "app"),
                ("sslmode", "verify-full"),
                ("application_name", "x"),
            ],
        );
        check(
            "postgresql:///app?host=%2Fvar%2Frun%2Fpostgresql",
            &[("dbname", "app"), ("host", "/var/run/postgresql")],
        );
        check(
            "postgresql://%2Ftmp/db",
            &[("host", "/tmp"), ("dbname", "db")],
        );
        check(
            "postgres://h1:5432,[::1]:5433/db?target_session_attrs=read-write",
            &[
                ("host", "h1,::1"),
                ("port", "5432,5433"),
                ("dbname", "db"),
                ("target_session_attrs", "read-write"),
            ],
        );
        check("postgres://", &[]);
        check("POSTGRES://u@h", &[("user", "u"), ("host", "h")]);
        check(" postgres://u@h ", &[("user", "u"), ("host", "h")]);
        check(
            "postgres://h?ssl=true",
            &[("host", "h"), ("sslmode", "require")],
        );
        check(
            "postgres://h?pass%77ord=x",
            &[("host", "h"), ("password", "x")],
        );
        check(
            "postgres://app:p@ss:w@rd@db/app",
            &[
                ("user", "app"),
                ("password", "p@ss:w@rd"),
                ("host", "db"),
                ("dbname", "app"),
            ],
        );
    }

    #[test]
    fn key_values() {
        check(
            "host=db port = 5433 user=app password='x \\'y\\' z' dbname=a\\ b",
            &[
                ("host", "db"),
                ("port", "5433"),
                ("user", "app"),
                ("password", "x 'y' z"),
                ("dbname", "a b"),
            ],
        );
        check("", &[]);
        check(
            "sslmode=require sslrootcert=system",
            &[("sslmode", "require"), ("sslrootcert", "system")],
        );
    }

    #[test]
    fn malformed_inputs_are_refused_without_quoting_them() {
        for input in [
            "postgres://u:2024/Canary@host/db",
            "postgresql+psycopg2://u:Canary@host/db",
            "jdbc:postgresql://host/db?user=u&password=Canary",
            "postgress://u:Canary@host/db",
            "postgres//u:Canary@host/db",
            "password=x Canary",
            "host=h Canary",
            "passwrd=Canary",
            "password='Canary",
            "postgres://u:Canary@h/db?nope=1",
            "postgres://u:Canary@h/db?Canary",
            "postgres://u:Can%ZZary@h/db",
        ] {
            let reason = parse(input).expect_err(input);
            assert!(
                !reason.contains("Canary") && !reason.contains("Can"),
                "{input}: {reason}"
            );
        }
    }
}
