//! `cargo xtask pg`: a PostgreSQL server for tests, smoke runs and benchmarks.
//!
//! [`ensure`] answers with `DB_URL` when it is set and the server answers,
//! and otherwise with a throwaway cluster under `target/pg/` that it starts
//! (or finds still running from an earlier call) from the installed
//! PostgreSQL binaries.

mod bin;
mod cluster;
pub mod psql;

use url::Url;

use crate::Result;
use crate::flags::Args;
use cluster::Cluster;

/// The environment variable naming the server to use, as everywhere in dbops.
pub const URL_ENV: &str = "DB_URL";

/// How much a throwaway cluster may trade durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync`, `synchronous_commit` and `full_page_writes` off: for tests,
    /// whose databases are thrown away anyway.
    Throwaway,
    /// PostgreSQL's defaults: for benchmarks, which should pay what a real
    /// server pays.
    Durable,
}

/// A server ready for connections.
#[derive(Debug)]
pub struct Server {
    /// A superuser URL for the server's `postgres` database.
    pub url: Url,
    /// The server programs of a throwaway cluster (not of `DB_URL`'s server).
    pub programs: Option<std::path::PathBuf>,
    /// The cluster this call started, if it started one.
    started: Option<Cluster>,
}

impl Server {
    /// Stops the cluster if this process started it, leaving servers that
    /// were already there running.
    pub fn stop_if_started(self) -> Result {
        match self.started {
            Some(cluster) => cluster.stop(),
            None => Ok(()),
        }
    }
}

/// A PostgreSQL server for tests: see the module documentation.
pub fn ensure() -> Result<Url> {
    Ok(ensure_with(Durability::Throwaway)?.url)
}

/// Like [`ensure`], with a choice of durability for a throwaway cluster,
/// telling whether this call started it.
pub fn ensure_with(durability: Durability) -> Result<Server> {
    if let Some(url) = url_from_env()? {
        match psql::server_version(&url) {
            Ok(version) => {
                eprintln!(
                    "pg: using {URL_ENV} {} (PostgreSQL {version})",
                    psql::redacted(&url)
                );
                return Ok(Server {
                    url,
                    programs: None,
                    started: None,
                });
            }
            Err(e) => eprintln!(
                "pg: warning: {URL_ENV} {} does not answer, starting a throwaway cluster instead: {e}",
                psql::redacted(&url)
            ),
        }
    }
    start_or_reuse(Cluster::locate(durability)?)
}

/// Starts a throwaway cluster (fsync off) of the server programs in `bin`,
/// in `target/pg/<name>/`, or reuses one still running there.
pub fn start_named(bin: std::path::PathBuf, name: &str) -> Result<Server> {
    start_or_reuse(Cluster::locate_named(Durability::Throwaway, bin, name)?)
}

fn start_or_reuse(cluster: Cluster) -> Result<Server> {
    let programs = Some(cluster.programs().to_path_buf());
    if let Some(port) = cluster.running_port() {
        eprintln!(
            "pg: reusing the cluster running in {} on port {port}",
            cluster.dir().display()
        );
        return Ok(Server {
            url: cluster::url(port),
            programs,
            started: None,
        });
    }
    let port = cluster.start()?;
    Ok(Server {
        url: cluster::url(port),
        programs,
        started: Some(cluster),
    })
}

fn url_from_env() -> Result<Option<Url>> {
    let Some(text) = std::env::var(URL_ENV)
        .ok()
        .filter(|text| !text.trim().is_empty())
    else {
        return Ok(None);
    };
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "postgres" | "postgresql") => Ok(Some(url)),
        // The text may hold a password: never echo it.
        _ => Err(format!("{URL_ENV} is not a postgres:// or postgresql:// URL").into()),
    }
}

/// `cargo xtask pg [--durable] [--stop]`.
pub fn task(args: &mut Args) -> Result {
    let durability = if args.flag("--durable") {
        Durability::Durable
    } else {
        Durability::Throwaway
    };
    let stop = args.flag("--stop");
    args.finish()?;
    if stop {
        return Cluster::locate(durability)?.stop();
    }
    let server = ensure_with(durability)?;
    if server.url.password().is_some() {
        eprintln!("pg: the password is not printed; keep using {URL_ENV} as it is");
    }
    println!("{}", psql::redacted(&server.url));
    Ok(())
}
