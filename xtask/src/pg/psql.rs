//! Talking to PostgreSQL through `psql`, and the URL handling that needs.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use url::Url;

use super::bin;
use crate::{Result, cmd};

/// A `psql` command connected to `url`, quiet, stopping at the first error,
/// ignoring `~/.psqlrc`. A password in the URL travels in `PGPASSWORD`, never
/// on the command line.
pub fn psql(url: &Url) -> Command {
    let mut cmd = Command::new(bin::client("psql"));
    let mut url = url.clone();
    if let Some(password) = url.password() {
        cmd.env("PGPASSWORD", percent_decode(password));
        url.set_password(None)
            .expect("a URL with a password can have none");
    }
    cmd.env("PGCONNECT_TIMEOUT", "10");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url.as_str()]);
    cmd
}

/// Runs `sql` and returns the rows, one per line, columns separated by `|`.
pub fn query(url: &Url, sql: &str) -> Result<String> {
    cmd::read(psql(url).args(["-A", "-t", "-c", sql]))
}

/// The server's version, as `SHOW server_version` prints it; also tells that
/// the server answers and lets us in.
pub fn server_version(url: &Url) -> Result<String> {
    Ok(query(url, "SHOW server_version")?.trim().to_owned())
}

/// The URL of database `name` on the server of `url`.
pub fn database_url(url: &Url, name: &str) -> Url {
    let mut url = url.clone();
    url.set_path(&format!("/{name}"));
    url
}

/// Creates a database with a fresh name starting with `prefix` and returns
/// its URL.
pub fn create_fresh_database(server: &Url, prefix: &str) -> Result<Url> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("{prefix}_{}_{nanos}", std::process::id());
    recreate_database(server, &name)
}

/// Drops database `name` if it exists and creates it anew, empty.
pub fn recreate_database(server: &Url, name: &str) -> Result<Url> {
    drop_database(server, name)?;
    cmd::output(psql(server).args(["-c", &format!("CREATE DATABASE \"{name}\"")]))?;
    Ok(database_url(server, name))
}

/// Drops database `name` if it exists, disconnecting its sessions.
pub fn drop_database(server: &Url, name: &str) -> Result {
    cmd::output(psql(server).args([
        "-c",
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    ]))?;
    Ok(())
}

/// The name of the database a URL points at.
pub fn database_name(url: &Url) -> &str {
    url.path().trim_start_matches('/')
}

/// The URL for messages: the password replaced by `***`.
pub fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        url.set_password(Some("***"))
            .expect("a URL with a password can have another");
    }
    // A password may also be a query parameter, its name percent-encoded.
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| {
            let value = if key.eq_ignore_ascii_case("password") {
                "***".to_string()
            } else {
                value.into_owned()
            };
            (key.into_owned(), value)
        })
        .collect();
    if pairs
        .iter()
        .any(|(key, _)| key.eq_ignore_ascii_case("password"))
    {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok());
        match (
            bytes[i],
            hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use url::Url;

    #[test]
    fn passwords_go_to_the_environment_not_the_command_line() {
        let url = Url::parse("postgres://app:s%40cr%3At@db.example:5433/ops").unwrap();
        let cmd = super::psql(&url);
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"postgres://app@db.example:5433/ops".to_owned()),
            "{args:?}"
        );
        assert!(!args.iter().any(|a| a.contains("cr")), "{args:?}");
        let password = cmd
            .get_envs()
            .find(|(k, _)| *k == "PGPASSWORD")
            .and_then(|(_, v)| v);
        assert_eq!(password, Some("s@cr:t".as_ref()));
    }

    #[test]
    fn redacts_passwords_and_switches_databases() {
        let url = Url::parse("postgresql://app:secret@db:5432/postgres?sslmode=require").unwrap();
        assert_eq!(
            super::redacted(&url),
            "postgresql://app:***@db:5432/postgres?sslmode=require"
        );
        let other = super::database_url(&url, "smoke_1");
        assert_eq!(
            super::redacted(&other),
            "postgresql://app:***@db:5432/smoke_1?sslmode=require"
        );
        assert_eq!(super::database_name(&other), "smoke_1");
        let query =
            Url::parse("postgres://db/ops?user=a&pass%77ord=Canary&sslmode=require").unwrap();
        assert_eq!(
            super::redacted(&query),
            "postgres://db/ops?user=a&password=***&sslmode=require"
        );
        let plain = Url::parse("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
        assert_eq!(
            super::redacted(&plain),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }
}
