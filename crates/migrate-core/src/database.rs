//! Where the engine's connections come from: a URL, or a service's own deadpool pool.

use std::ops::Deref;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::error::Error;
use crate::redact::redact_url;

/// A database to migrate.
///
/// Built from a URL (the CLI) or from a `deadpool_postgres::Pool` a service
/// already has. A run holds one connection for its whole duration, because
/// the migration lock is a session-level advisory lock.
#[derive(Clone)]
pub struct Database {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Url {
        config: Box<tokio_postgres::Config>,
        redacted: String,
    },
    Pool(deadpool_postgres::Pool),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.redacted_url())
            .finish()
    }
}

impl Database {
    /// A database reached through a `postgres://` URL or libpq key/value string.
    pub fn from_url(url: &str) -> Result<Database, Error> {
        let redacted = redact_url(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| Error::Config {
            origin: format!("database URL {redacted}"),
            message: format!("not a valid PostgreSQL connection string: {e}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(Database {
            inner: Inner::Url {
                config: Box::new(config),
                redacted,
            },
        })
    }

    /// A database reached through a service's own pool.
    pub fn from_pool(pool: deadpool_postgres::Pool) -> Database {
        Database {
            inner: Inner::Pool(pool),
        }
    }

    /// The URL with its password masked, for messages.
    pub fn redacted_url(&self) -> String {
        match &self.inner {
            Inner::Url { redacted, .. } => redacted.clone(),
            Inner::Pool(_) => "(connection pool)".to_string(),
        }
    }

    /// Opens a connection labelled `application_name` in `pg_stat_activity`.
    pub(crate) async fn connect(&self, application_name: &str) -> Result<Conn, Error> {
        match &self.inner {
            Inner::Url { config, redacted } => Ok(Conn::Owned(
                connect_owned(config, redacted, application_name).await?,
            )),
            Inner::Pool(pool) => {
                let object = pool.get().await.map_err(|e| match e {
                    deadpool_postgres::PoolError::Backend(e) => classify_connect_error(
                        e,
                        "(connection pool)",
                        &tokio_postgres::Config::new(),
                    ),
                    other => Error::Pool { source: other },
                })?;
                object
                    .batch_execute(&format!(
                        "SET application_name = '{}'",
                        application_name.replace('\'', "''")
                    ))
                    .await
                    .map_err(Error::db("labelling the pooled connection"))?;
                Ok(Conn::Pooled(Some(object)))
            }
        }
    }
}

/// Opens one connection from a URL, with the same error classification as the
/// engine (unreachable server, refused credentials) and the password redacted.
///
/// For the other dbops tools that need a plain client: introspection, seeding, rollups.
pub async fn connect_url(url: &str, application_name: &str) -> Result<Client, Error> {
    let redacted = redact_url(url);
    let config: tokio_postgres::Config = url.parse().map_err(|e| Error::Config {
        origin: format!("database URL {redacted}"),
        message: format!("not a valid PostgreSQL connection string: {e}"),
    })?;
    connect_owned(&config, &redacted, application_name).await
}

/// Connects with `config`; the connection lives until the client is dropped.
async fn connect_owned(
    config: &tokio_postgres::Config,
    redacted: &str,
    application_name: &str,
) -> Result<Client, Error> {
    let mut config = config.clone();
    config.application_name(application_name);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| classify_connect_error(e, redacted, &config))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection closed with an error");
        }
    });
    Ok(client)
}

/// Tells an unreachable server from refused credentials.
fn classify_connect_error(
    error: tokio_postgres::Error,
    url: &str,
    config: &tokio_postgres::Config,
) -> Error {
    let code = error.as_db_error().map(|db| db.code().clone());
    let auth_failed = code.as_ref().is_some_and(|code| {
        *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    });
    // A missing database, or a server that is starting up or shutting
    // down, is as unreachable for the caller as one that does not answer.
    let unavailable = code.as_ref().is_some_and(|code| {
        *code == SqlState::INVALID_CATALOG_NAME
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::ADMIN_SHUTDOWN
    });
    if auth_failed {
        Error::Authentication {
            url: url.to_string(),
            user: config.get_user().unwrap_or_default().to_string(),
            source: error,
        }
    } else if error.as_db_error().is_some() && !unavailable {
        Error::Database {
            context: format!("connecting to {url}"),
            source: error,
        }
    } else {
        Error::Unreachable {
            url: url.to_string(),
            source: error,
        }
    }
}

/// One connection, owned or borrowed from a pool.
pub(crate) enum Conn {
    Owned(Client),
    Pooled(Option<deadpool_postgres::Object>),
}

impl Conn {
    /// Closes the connection for good, rather than returning it to a pool:
    /// used when it may still hold session state such as an advisory lock.
    pub(crate) fn discard(mut self) {
        self.detach();
    }

    /// Takes a pooled connection out of its pool, so that dropping this
    /// closes it; the last thing done with a connection.
    pub(crate) fn detach(&mut self) {
        if let Conn::Pooled(object) = self
            && let Some(object) = object.take()
        {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

impl Deref for Conn {
    type Target = Client;

    fn deref(&self) -> &Client {
        match self {
            Conn::Owned(client) => client,
            Conn::Pooled(object) => object
                .as_ref()
                .expect("a pooled connection is present until discarded"),
        }
    }
}
