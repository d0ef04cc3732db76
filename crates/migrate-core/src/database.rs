//! Where the engine's connections come from: a URL, or a service's own deadpool pool.

use std::ops::Deref;
use std::time::Duration;

use tokio_postgres::Client;

use crate::error::Error;

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
        config: Box<pgconn::ConnConfig>,
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
    /// A database reached through a `postgres://` URL or libpq key/value
    /// string, completed from the `PG*` variables, the service file and the
    /// password file as libpq does (see the `pgconn` crate).
    pub fn from_url(url: &str) -> Result<Database, Error> {
        let config = parse_config(url)?;
        let redacted = config.redacted();
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

    /// The same server, credentials and TLS settings, another database;
    /// `None` for a pool, whose settings are private to it.
    pub(crate) fn on_same_server(&self, dbname: &str) -> Option<Database> {
        match &self.inner {
            Inner::Url { config, .. } => {
                let mut config = config.clone();
                config.set_dbname(dbname);
                let redacted = config.redacted();
                Some(Database {
                    inner: Inner::Url { config, redacted },
                })
            }
            Inner::Pool(_) => None,
        }
    }

    /// Opens a connection labelled `application_name` in `pg_stat_activity`.
    pub(crate) async fn connect(&self, application_name: &str) -> Result<Conn, Error> {
        match &self.inner {
            Inner::Url { config, .. } => {
                Ok(Conn::Owned(connect_owned(config, application_name).await?))
            }
            Inner::Pool(pool) => {
                let object = pool.get().await.map_err(|e| match e {
                    deadpool_postgres::PoolError::Backend(e) => Error::from_connect(
                        // The pool's own config is private to deadpool: its
                        // user, database and sslmode are not known here.
                        pgconn::Error::from_connect(
                            e,
                            "(connection pool)",
                            "(the pool's user)",
                            "(the pool's database)",
                            "(the pool's sslmode)",
                        ),
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

/// Opens one connection from a URL or key/value string, over TLS as its
/// sslmode says, with the same error classification as the engine and the
/// password never shown.
///
/// For the other dbops tools that need a plain client: introspection, seeding, rollups.
pub async fn connect_url(url: &str, application_name: &str) -> Result<Client, Error> {
    let config = parse_config(url)?;
    connect_owned(&config, application_name).await
}

/// Reads a connection string as libpq would; a string that cannot be read
/// is a configuration error that never quotes it.
fn parse_config(url: &str) -> Result<pgconn::ConnConfig, Error> {
    let mut config = pgconn::ConnConfig::parse(url).map_err(|e| Error::Config {
        origin: "database connection".to_string(),
        message: crate::error::chain(&e),
    })?;
    if config.connect_timeout().is_none() {
        config.set_connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}

/// Connects with `config`; the connection lives until the client is dropped.
async fn connect_owned(
    config: &pgconn::ConnConfig,
    application_name: &str,
) -> Result<Client, Error> {
    let (client, _connection) = pgconn::connect(config, application_name)
        .await
        .map_err(Error::from_connect)?;
    Ok(client)
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
