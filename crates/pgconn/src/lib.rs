//! How dbops reaches PostgreSQL: one parsed connection config, read as libpq reads it, and one TLS connector.
//!
//! [`ConnConfig::parse`] reads a URL (`postgres://…`) or a key=value string
//! and completes it from libpq's other sources, in libpq's order: the string
//! itself, then the service named by `service=` or `PGSERVICE` (in
//! `PGSERVICEFILE` or `~/.pg_service.conf`, then
//! `$PGSYSCONFDIR/pg_service.conf`), then the `PG*` environment variables,
//! then the defaults (the Unix socket in `/var/run/postgresql` or `/tmp`,
//! port 5432, the login user, a database named after the user). A password
//! that is still missing is looked up in `PGPASSFILE` or `~/.pgpass`.
//!
//! [`connect`] opens the connection with rustls and libpq's `sslmode`:
//! `disable` is plain text; `allow` and `prefer` use TLS when the server
//! offers it (`allow` does not first try plain text as libpq does);
//! `require` insists on TLS; `verify-ca` checks the chain against
//! `sslrootcert`; `verify-full` checks the host name too. As in libpq, a root
//! certificate (`sslrootcert`, or `~/.postgresql/root.crt` when it exists)
//! makes `prefer` and `require` check the chain, and `sslrootcert=system`
//! (the operating system's roots) defaults to and requires `verify-full`.
//! `sslcert`/`sslkey` (default `~/.postgresql/postgresql.crt`/`.key` when
//! both exist) present a client certificate. SCRAM channel binding is used
//! when the server offers it over TLS (`channel_binding=prefer`).
//!
//! [`check_session_kept`] tells a connection that keeps its own server
//! session from one through a pooler in transaction pooling mode, before a
//! session-level advisory lock is taken through it.
//!
//! The config's `Display` is always redacted: no password in any shape, and
//! an input that cannot be parsed is never echoed.

#![warn(missing_docs)]

mod error;
mod files;
mod parse;
mod pooling;
mod tls;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::config::{
    ChannelBinding, LoadBalanceHosts, SslNegotiation, TargetSessionAttrs,
};
use tokio_postgres::{Client, NoTls};

pub use error::{CertificateProblem, Error};
pub use pooling::check_session_kept;

use crate::parse::{KEYWORDS, Options};

/// Where connection settings come from besides the connection string: the
/// environment variables and the home folder (for `.pgpass`,
/// `.pg_service.conf` and `.postgresql/`).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    home: Option<PathBuf>,
}

impl Environment {
    /// The process's environment and home folder.
    pub fn from_process() -> Environment {
        Environment {
            vars: std::env::vars().collect(),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    /// An environment with the variable `name` set to `value`.
    pub fn with_var(mut self, name: &str, value: &str) -> Environment {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    /// An environment whose home folder is `home`.
    pub fn with_home(mut self, home: &Path) -> Environment {
        self.home = Some(home.to_path_buf());
        self
    }

    /// A variable's value; an empty one counts as unset.
    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn home_file(&self, relative: &str) -> Option<PathBuf> {
        self.home.as_ref().map(|home| home.join(relative))
    }
}

/// One server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP address, reached over TCP.
    Tcp(String),
    /// The folder of a Unix socket.
    Unix(PathBuf),
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (dbops treats it as `prefer`).
    Allow,
    /// TLS when the server offers it, libpq's default.
    Prefer,
    /// TLS always; the server is authenticated only when a root certificate is configured.
    Require,
    /// TLS, and the server's certificate chain must end at a trusted root.
    VerifyCa,
    /// TLS, a trusted chain, and a certificate for the host name connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The libpq name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Which certificate authorities are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootCert {
    File(PathBuf),
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verification {
    None,
    Chain,
    Full,
}

#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<RootCert>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

impl TlsSettings {
    pub(crate) fn verification(&self) -> Verification {
        match self.mode {
            SslMode::VerifyFull => Verification::Full,
            SslMode::VerifyCa => Verification::Chain,
            _ if self.root_cert.is_some() => Verification::Chain,
            _ => Verification::None,
        }
    }
}

/// A connection config, read and completed as libpq would, with its TLS settings.
#[derive(Clone)]
pub struct ConnConfig {
    hosts: Vec<Host>,
    hostaddrs: Vec<IpAddr>,
    ports: Vec<u16>,
    user: String,
    password: Option<String>,
    dbname: String,
    options: Option<String>,
    application_name: Option<String>,
    connect_timeout: Option<Duration>,
    tls: TlsSettings,
    ssl_negotiation: SslNegotiation,
    channel_binding: ChannelBinding,
    target_session_attrs: TargetSessionAttrs,
    load_balance_hosts: LoadBalanceHosts,
    keepalives: Option<bool>,
    keepalives_idle: Option<Duration>,
    keepalives_interval: Option<Duration>,
    keepalives_retries: Option<u32>,
    tcp_user_timeout: Option<Duration>,
}

impl ConnConfig {
    /// Reads `input` (a URL, a key=value string, or empty) and completes it
    /// from the process's environment, service file and password file.
    pub fn parse(input: &str) -> Result<ConnConfig, Error> {
        ConnConfig::parse_with(input, &Environment::from_process())
    }

    /// [`ConnConfig::parse`] with an explicit environment.
    pub fn parse_with(input: &str, env: &Environment) -> Result<ConnConfig, Error> {
        let mut options =
            parse::parse(input).map_err(|reason| Error::InvalidConnectionString { reason })?;
        add_service(&mut options, env)?;
        for (keyword, var) in KEYWORDS {
            if *keyword == "service" || options.contains_key(keyword) {
                continue;
            }
            if let Some(value) = var.and_then(|var| env.var(var)) {
                options.insert(keyword, value.to_string());
            }
        }
        build(options, env)
    }

    /// The servers to try, in order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The ports, one for all hosts or one per host.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The database name.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// Whether a password was found (in the string, a service, `PGPASSWORD` or the password file).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The sslmode.
    pub fn sslmode(&self) -> SslMode {
        self.tls.mode
    }

    /// The connect timeout, when one is set.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// Sets the connect timeout.
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.connect_timeout = Some(timeout);
    }

    /// Sets the database name (for tools that connect to several databases of one server).
    pub fn set_dbname(&mut self, dbname: &str) {
        self.dbname = dbname.to_string();
    }

    /// The target for messages: user, hosts, ports, database and sslmode, never the password.
    pub fn redacted(&self) -> String {
        self.to_string()
    }

    /// Whether TLS is used at all: not with `sslmode=disable`, and not over
    /// Unix sockets (libpq does not use TLS on them either).
    fn uses_tls(&self) -> bool {
        self.tls.mode != SslMode::Disable
            && self.hosts.iter().any(|host| matches!(host, Host::Tcp(_)))
    }

    /// The tokio-postgres config, `application_name` standing in when the
    /// config does not name one (libpq's `fallback_application_name`).
    pub fn tokio_postgres_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        for host in &self.hosts {
            match host {
                Host::Tcp(name) => config.host(name),
                Host::Unix(path) => config.host_path(path),
            };
        }
        for addr in &self.hostaddrs {
            config.hostaddr(*addr);
        }
        for port in &self.ports {
            config.port(*port);
        }
        config.user(&self.user).dbname(&self.dbname);
        if let Some(password) = &self.password {
            config.password(password);
        }
        if let Some(options) = &self.options {
            config.options(options);
        }
        config.application_name(self.application_name.as_deref().unwrap_or(application_name));
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout(timeout);
        }
        config.ssl_mode(match self.tls.mode {
            _ if !self.uses_tls() => tokio_postgres::config::SslMode::Disable,
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        config.ssl_negotiation(self.ssl_negotiation);
        config.channel_binding(self.channel_binding);
        config.target_session_attrs(self.target_session_attrs);
        config.load_balance_hosts(self.load_balance_hosts);
        if let Some(on) = self.keepalives {
            config.keepalives(on);
        }
        if let Some(idle) = self.keepalives_idle {
            config.keepalives_idle(idle);
        }
        if let Some(interval) = self.keepalives_interval {
            config.keepalives_interval(interval);
        }
        if let Some(retries) = self.keepalives_retries {
            config.keepalives_retries(retries);
        }
        if let Some(timeout) = self.tcp_user_timeout {
            config.tcp_user_timeout(timeout);
        }
        config
    }

    /// The TLS connector for this config, for callers that build their own
    /// connections or pools from [`ConnConfig::tokio_postgres_config`].
    pub fn tls_connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(
            tls::client_config(&self.tls)?,
        ))
    }

    /// Classifies a failed connection attempt made with this config.
    pub fn connect_error(&self, error: tokio_postgres::Error) -> Error {
        Error::from_connect(
            error,
            &self.redacted(),
            &self.user,
            &self.dbname,
            self.tls.mode.as_str(),
        )
    }
}

/// [`ConnConfig::parse`]: the string completed from the process's environment.
impl std::str::FromStr for ConnConfig {
    type Err = Error;

    fn from_str(input: &str) -> Result<ConnConfig, Error> {
        ConnConfig::parse(input)
    }
}

impl std::fmt::Display for ConnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "postgres://{}@", self.user)?;
        let mut sockets = Vec::new();
        let mut tcp = Vec::new();
        for (index, host) in self.hosts.iter().enumerate() {
            let port = self
                .ports
                .get(index)
                .or(self.ports.first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => tcp.push(format!("[{name}]:{port}")),
                Host::Tcp(name) => tcp.push(format!("{name}:{port}")),
                Host::Unix(path) => sockets.push(format!("{}:{port}", path.display())),
            }
        }
        write!(f, "{}/{}?", tcp.join(","), self.dbname)?;
        if !sockets.is_empty() {
            write!(f, "host={}&", sockets.join(","))?;
        }
        write!(f, "sslmode={}", self.tls.mode.as_str())
    }
}

impl std::fmt::Debug for ConnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnConfig")
            .field("target", &self.redacted())
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Opens one connection with `config`, over TLS as its sslmode says, and
/// drives it on a spawned task until the client is dropped.
///
/// `application_name` labels the connection in `pg_stat_activity` unless
/// the config names one itself.
pub async fn connect(
    config: &ConnConfig,
    application_name: &str,
) -> Result<(Client, tokio::task::JoinHandle<()>), Error> {
    let pg = config.tokio_postgres_config(application_name);
    if config.uses_tls() {
        let (client, connection) = pg
            .connect(config.tls_connector()?)
            .await
            .map_err(|e| config.connect_error(e))?;
        Ok((client, tokio::spawn(drive(connection))))
    } else {
        let (client, connection) = pg
            .connect(NoTls)
            .await
            .map_err(|e| config.connect_error(e))?;
        Ok((client, tokio::spawn(drive(connection))))
    }
}

async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

/// Adds the settings of the service named in `options` or `PGSERVICE`.
fn add_service(options: &mut Options, env: &Environment) -> Result<(), Error> {
    let name = match options.get("service") {
        Some(name) => name.clone(),
        None => match env.var("PGSERVICE") {
            Some(name) => name.to_string(),
            None => return Ok(()),
        },
    };
    let user_file = env
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env.home_file(".pg_service.conf"));
    let system_file = env
        .var("PGSYSCONFDIR")
        .map(|dir| Path::new(dir).join("pg_service.conf"))
        .unwrap_or_else(|| PathBuf::from("/etc/postgresql-common/pg_service.conf"));
    for path in user_file.into_iter().chain([system_file]) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Some(service) = files::service_options(&text, &path, &name)? {
            for (keyword, value) in service {
                options.entry(keyword).or_insert(value);
            }
            return Ok(());
        }
    }
    Err(Error::InvalidSetting {
        origin: "service".to_string(),
        message: format!(
            "definition of service {name:?} not found (looked in PGSERVICEFILE or ~/.pg_service.conf, and PGSYSCONFDIR/pg_service.conf)"
        ),
    })
}

fn invalid(origin: &str, message: impl Into<String>) -> Error {
    Error::InvalidSetting {
        origin: origin.to_string(),
        message: message.into(),
    }
}

fn seconds(options: &Options, keyword: &str) -> Result<Option<Duration>, Error> {
    match options.get(keyword) {
        None => Ok(None),
        Some(value) => value
            .trim()
            .parse::<i64>()
            .map(|s| Some(Duration::from_secs(s.max(0) as u64)))
            .map_err(|_| invalid(keyword, "must be a whole number of seconds")),
    }
}

/// Turns the merged keyword/value pairs into a config, with libpq's defaults.
fn build(options: Options, env: &Environment) -> Result<ConnConfig, Error> {
    for keyword in ["sslcrl", "sslcrldir", "sslpassword", "require_auth"] {
        if options.get(keyword).is_some_and(|v| !v.is_empty()) {
            return Err(invalid(keyword, "is not supported by dbops"));
        }
    }
    if options.get("sslcertmode").is_some_and(|v| v == "require") {
        return Err(invalid("sslcertmode", "require is not supported by dbops"));
    }
    if options.get("gssencmode").is_some_and(|v| v == "require") {
        return Err(invalid(
            "gssencmode",
            "GSSAPI encryption is not supported by dbops; use TLS",
        ));
    }

    let hosts: Vec<Host> = match options.get("host").filter(|h| !h.is_empty()) {
        Some(list) => list
            .split(',')
            .map(|host| {
                if host.starts_with('/') {
                    Host::Unix(PathBuf::from(host))
                } else if host.is_empty() {
                    Host::Unix(default_socket_dir())
                } else {
                    Host::Tcp(host.to_string())
                }
            })
            .collect(),
        None => vec![Host::Unix(default_socket_dir())],
    };
    let hostaddrs = match options.get("hostaddr").filter(|h| !h.is_empty()) {
        Some(list) => list
            .split(',')
            .map(|addr| {
                addr.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| invalid("hostaddr", "must be IP addresses"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let ports = match options.get("port").filter(|p| !p.is_empty()) {
        Some(list) => list
            .split(',')
            .map(|port| {
                if port.is_empty() {
                    return Ok(5432);
                }
                port.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| invalid("port", "must be a number from 1 to 65535"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![5432],
    };
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(invalid("port", "give one port, or one per host"));
    }
    let user = match options.get("user").filter(|u| !u.is_empty()) {
        Some(user) => user.clone(),
        None => env
            .var("USER")
            .or_else(|| env.var("LOGNAME"))
            .map(str::to_string)
            .or_else(login_name)
            .ok_or_else(|| invalid("user", "no user name given: set user or PGUSER"))?,
    };
    let dbname = options
        .get("dbname")
        .filter(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| user.clone());

    let tls = tls_settings(&options, env)?;
    let ssl_negotiation = match options.get("sslnegotiation").map(String::as_str) {
        None | Some("postgres") => SslNegotiation::Postgres,
        Some("direct") => SslNegotiation::Direct,
        Some(_) => return Err(invalid("sslnegotiation", "must be postgres or direct")),
    };
    let channel_binding = match options.get("channel_binding").map(String::as_str) {
        None | Some("prefer") => ChannelBinding::Prefer,
        Some("disable") => ChannelBinding::Disable,
        Some("require") => ChannelBinding::Require,
        Some(_) => {
            return Err(invalid(
                "channel_binding",
                "must be disable, prefer or require",
            ));
        }
    };
    let target_session_attrs = match options.get("target_session_attrs").map(String::as_str) {
        None | Some("any") => TargetSessionAttrs::Any,
        Some("read-write") => TargetSessionAttrs::ReadWrite,
        Some(_) => {
            return Err(invalid(
                "target_session_attrs",
                "dbops supports any and read-write",
            ));
        }
    };
    let load_balance_hosts = match options.get("load_balance_hosts").map(String::as_str) {
        None | Some("disable") => LoadBalanceHosts::Disable,
        Some("random") => LoadBalanceHosts::Random,
        Some(_) => return Err(invalid("load_balance_hosts", "must be disable or random")),
    };
    let keepalives = match options.get("keepalives").map(String::as_str) {
        None => None,
        Some("0") => Some(false),
        Some("1") => Some(true),
        Some(_) => return Err(invalid("keepalives", "must be 0 or 1")),
    };
    let keepalives_retries = match options.get("keepalives_count") {
        None => None,
        Some(count) => Some(
            count
                .trim()
                .parse::<u32>()
                .map_err(|_| invalid("keepalives_count", "must be a whole number"))?,
        ),
    };
    let tcp_user_timeout = match options.get("tcp_user_timeout") {
        None => None,
        Some(ms) => Some(Duration::from_millis(ms.trim().parse::<u64>().map_err(
            |_| invalid("tcp_user_timeout", "must be a whole number of milliseconds"),
        )?)),
    };
    // libpq: zero or less waits forever, and less than two seconds means two.
    let connect_timeout = seconds(&options, "connect_timeout")?
        .filter(|t| !t.is_zero())
        .map(|t| t.max(Duration::from_secs(2)));

    let password = match options.get("password") {
        Some(password) => Some(password.clone()),
        None => password_from_file(&options, env, &hosts, &ports, &dbname, &user),
    };

    Ok(ConnConfig {
        hosts,
        hostaddrs,
        ports,
        user,
        password,
        dbname,
        options: options.get("options").cloned(),
        application_name: options
            .get("application_name")
            .or(options.get("fallback_application_name"))
            .filter(|a| !a.is_empty())
            .cloned(),
        connect_timeout,
        tls,
        ssl_negotiation,
        channel_binding,
        target_session_attrs,
        load_balance_hosts,
        keepalives,
        keepalives_idle: seconds(&options, "keepalives_idle")?,
        keepalives_interval: seconds(&options, "keepalives_interval")?,
        keepalives_retries,
        tcp_user_timeout,
    })
}

/// The operating system's name for the user running this process, as libpq
/// takes it when no user is given: the owner of `/proc/self` in `/etc/passwd`.
fn login_name() -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            (fields.nth(1)? == uid).then(|| name.to_string())
        })
    }
    #[cfg(not(unix))]
    {
        None
    }
}

fn default_socket_dir() -> PathBuf {
    let debian = Path::new("/var/run/postgresql");
    if debian.is_dir() {
        debian.to_path_buf()
    } else {
        PathBuf::from("/tmp")
    }
}

fn tls_settings(options: &Options, env: &Environment) -> Result<TlsSettings, Error> {
    let explicit_mode = match options.get("sslmode").filter(|m| !m.is_empty()) {
        Some(mode) => Some(SslMode::parse(mode).ok_or_else(|| {
            invalid(
                "sslmode",
                "must be disable, allow, prefer, require, verify-ca or verify-full",
            )
        })?),
        None if options.get("requiressl").is_some_and(|v| v == "1") => Some(SslMode::Require),
        None => None,
    };
    let root_cert = match options.get("sslrootcert").filter(|r| !r.is_empty()) {
        Some(value) if value == "system" => Some(RootCert::System),
        Some(path) => Some(RootCert::File(PathBuf::from(path))),
        None => env
            .home_file(".postgresql/root.crt")
            .filter(|path| path.is_file())
            .map(RootCert::File),
    };
    let mode = match (explicit_mode, &root_cert) {
        (None, Some(RootCert::System)) => SslMode::VerifyFull,
        (Some(mode), Some(RootCert::System)) if mode != SslMode::VerifyFull => {
            return Err(invalid(
                "sslmode",
                format!(
                    "weak sslmode {:?} may not be used with sslrootcert=system (use verify-full)",
                    mode.as_str()
                ),
            ));
        }
        (Some(mode), _) => mode,
        (None, _) => SslMode::Prefer,
    };
    if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
        return Err(invalid(
            "sslrootcert",
            format!(
                "sslmode={} needs a root certificate: set sslrootcert (a file, or system for the operating system's roots) or put one at ~/.postgresql/root.crt",
                mode.as_str()
            ),
        ));
    }
    if let Some(RootCert::File(path)) = &root_cert
        && mode != SslMode::Disable
        && !path.is_file()
    {
        return Err(Error::File {
            what: "sslrootcert",
            path: path.clone(),
            message: "the file does not exist".to_string(),
        });
    }
    let given = |keyword: &str| {
        options
            .get(keyword)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let (cert, key) = match (given("sslcert"), given("sslkey")) {
        (None, None) => {
            let cert = env
                .home_file(".postgresql/postgresql.crt")
                .filter(|p| p.is_file());
            let key = env
                .home_file(".postgresql/postgresql.key")
                .filter(|p| p.is_file());
            match (cert, key) {
                (Some(cert), Some(key)) => (Some(cert), Some(key)),
                _ => (None, None),
            }
        }
        (cert, key) => (
            cert.or_else(|| env.home_file(".postgresql/postgresql.crt")),
            key.or_else(|| env.home_file(".postgresql/postgresql.key")),
        ),
    };
    Ok(TlsSettings {
        mode,
        root_cert,
        cert,
        key,
    })
}

/// The password for the first host from the password file, as libpq looks it up.
fn password_from_file(
    options: &Options,
    env: &Environment,
    hosts: &[Host],
    ports: &[u16],
    dbname: &str,
    user: &str,
) -> Option<String> {
    let path = options
        .get("passfile")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.home_file(".pgpass"))?;
    let text = std::fs::read_to_string(&path).ok()?;
    if !files::private_enough(&path) {
        tracing::warn!(
            file = %path.display(),
            "the password file is readable by group or others; it is ignored (chmod 0600 it)"
        );
        return None;
    }
    let host = match hosts.first() {
        Some(Host::Tcp(name)) => name.as_str(),
        _ => "localhost",
    };
    let port = ports.first().copied().unwrap_or(5432).to_string();
    files::pgpass_password(
        &text,
        &files::PassKey {
            host,
            port: &port,
            dbname,
            user,
        },
    )
}

#[cfg(test)]
mod tests;
