//! A client of a ClickHouse cluster's HTTP interface.
//!
//! Every statement is one `POST` whose body is the SQL; results come back in
//! ClickHouse's `TabSeparated` format. The user and password travel in a
//! basic `Authorization` header, never in the URL, so neither reaches an
//! error message. HTTPS uses rustls with the ring provider and the system's
//! root certificates, as the PostgreSQL connections do (crates/pgconn).

use std::sync::Arc;

use url::Url;

use crate::Error;

/// How to reach the cluster: the `[targets.clickhouse]` settings, with the
/// password already read from its environment variable.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// One HTTP(S) URL per server, each server holding one shard; the first
    /// one answers the queries over the `Distributed` tables. Schema
    /// migrations run on every one.
    pub urls: Vec<Url>,
    /// The ClickHouse user.
    pub user: String,
    /// The user's password, if it has one.
    pub password: Option<String>,
    /// The database that holds the rollup tables (created when missing).
    pub database: String,
    /// The `remote_servers` cluster the `Distributed` tables read.
    pub cluster: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("urls", &self.urls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// A connection to a cluster: see the module documentation.
#[derive(Debug, Clone)]
pub struct ClickHouse {
    settings: Settings,
    http: reqwest::Client,
}

/// Whether a statement runs in the target's database or outside any
/// (`CREATE DATABASE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Database,
    Server,
}

impl ClickHouse {
    /// Checks the settings and builds the HTTP client; connects to nothing.
    pub fn new(settings: Settings) -> Result<ClickHouse, Error> {
        if settings.urls.is_empty() {
            return Err(Error::InvalidSetting {
                setting: "urls",
                message: "name at least one server".into(),
            });
        }
        for url in &settings.urls {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(Error::InvalidSetting {
                    setting: "urls",
                    message: format!("{} is not an http:// or https:// URL", url.scheme()),
                });
            }
            if !url.username().is_empty() || url.password().is_some() {
                // Do not echo the URL: it holds the credentials.
                return Err(Error::InvalidSetting {
                    setting: "urls",
                    message: "a URL carries credentials; give the user and the password's \
                              environment variable in their own settings"
                        .into(),
                });
            }
        }
        for (setting, name) in [
            ("database", &settings.database),
            ("cluster", &settings.cluster),
        ] {
            if !is_identifier(name) {
                return Err(Error::InvalidSetting {
                    setting,
                    message: format!(
                        "{name:?} is not a plain identifier (letters, digits and _, not starting with a digit)"
                    ),
                });
            }
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(ClickHouse { settings, http })
    }

    /// The settings the client was built with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The number of servers.
    pub fn nodes(&self) -> usize {
        self.settings.urls.len()
    }

    /// The URL of server `node`, as messages name it.
    pub fn node_name(&self, node: usize) -> String {
        self.settings.urls[node]
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    }

    /// Runs `sql` on server `node` in the target's database and returns
    /// what it printed (`TabSeparated` for a query); `context` says what the
    /// statement is for, in errors.
    pub async fn query(&self, node: usize, sql: &str, context: &str) -> Result<String, Error> {
        self.send(node, Scope::Database, sql, context).await
    }

    pub(crate) async fn send(
        &self,
        node: usize,
        scope: Scope,
        sql: &str,
        context: &str,
    ) -> Result<String, Error> {
        let mut url = self.settings.urls[node].clone();
        if scope == Scope::Database {
            // Inserts into a Distributed table return once every shard has
            // its rows, not when they are queued on this server: a rollup
            // run moves on only after its rows are where readers see them.
            url.query_pairs_mut()
                .append_pair("database", &self.settings.database)
                .append_pair("insert_distributed_sync", "1");
        }
        let http_error = |source: reqwest::Error| Error::Http {
            node: self.node_name(node),
            context: context.to_owned(),
            source: source.without_url(),
        };
        let response = self
            .http
            .post(url)
            .basic_auth(&self.settings.user, self.settings.password.as_deref())
            .body(sql.to_owned())
            .send()
            .await
            .map_err(http_error)?;
        let status = response.status();
        let body = response.text().await.map_err(http_error)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(Error::Server {
                node: self.node_name(node),
                context: context.to_owned(),
                message: server_message(&body),
            })
        }
    }
}

/// ClickHouse's error text, on one line and at most 500 characters.
pub(crate) fn server_message(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(500) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line,
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn tls_config() -> Result<rustls::ClientConfig, Error> {
    // ring, as crates/pgconn: no cmake needed. rustls deprecates it for
    // lacking post-quantum key exchange; X25519 and P-256 remain.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // Certificates the store cannot parse are skipped, as pgconn does.
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn settings(urls: &[&str]) -> Settings {
        Settings {
            urls: urls.iter().map(|url| Url::parse(url).unwrap()).collect(),
            user: "default".into(),
            password: Some("s3cret".into()),
            database: "dbops_analytics".into(),
            cluster: "dbops".into(),
        }
    }

    fn invalid(settings: Settings) -> String {
        ClickHouse::new(settings).unwrap_err().to_string()
    }

    #[test]
    fn bad_settings_are_named_and_credentials_never_echoed() {
        assert_eq!(
            invalid(settings(&[])),
            "invalid ClickHouse setting urls: name at least one server"
        );
        assert_eq!(
            invalid(settings(&["ftp://127.0.0.1:8123"])),
            "invalid ClickHouse setting urls: ftp is not an http:// or https:// URL"
        );
        let message = invalid(settings(&["https://admin:hunter2@ch.example:8443"]));
        assert!(message.starts_with("invalid ClickHouse setting urls: a URL carries credentials"));
        assert!(!message.contains("hunter2"), "{message}");
        let mut bad = settings(&["http://127.0.0.1:8123"]);
        bad.database = "analytics; DROP".into();
        assert_eq!(
            invalid(bad),
            "invalid ClickHouse setting database: \"analytics; DROP\" is not a plain identifier \
             (letters, digits and _, not starting with a digit)"
        );
        let mut bad = settings(&["http://127.0.0.1:8123"]);
        bad.cluster = "1shard".into();
        assert!(invalid(bad).starts_with("invalid ClickHouse setting cluster:"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let text = format!("{:?}", settings(&["http://127.0.0.1:8123"]));
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn server_messages_are_one_bounded_line() {
        assert_eq!(
            server_message("Code: 60, e.displayText() = DB::Exception:\n Table x doesn't exist.\n"),
            "Code: 60, e.displayText() = DB::Exception: Table x doesn't exist."
        );
        assert_eq!(server_message(&"x".repeat(600)).len(), 503);
    }
}
