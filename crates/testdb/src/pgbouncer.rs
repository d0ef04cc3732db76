//! A PgBouncer of a test's own, in front of the `DB_URL` server, in session
//! or transaction pooling mode.
//!
//! [`PgBouncer::start`] writes a generated `pgbouncer.ini` into a fresh
//! temporary folder (trust authentication for the `DB_URL` user, every
//! database forwarded to the `DB_URL` server, no TLS), starts Debian's
//! `pgbouncer` on a free port of `127.0.0.1` and waits until it accepts
//! connections. Dropping it stops it (SIGTERM to the pid in its pid file) and
//! removes the folder, unless the test is panicking: then the folder stays,
//! for its `pgbouncer.log`. PgBouncer refuses to run as root, so as root it
//! runs as the `postgres` user, as [`crate::Cluster`] does.
//!
//! The server must let the `DB_URL` user in from `127.0.0.1` without a
//! password (the test servers of `cargo xtask pg` and CI do).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::{OWNER, create_dir_for, free_port, log_tail, run_as, running_as_root};

/// PgBouncer's `pool_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// A client keeps one server connection until it disconnects.
    Session,
    /// A client holds a server connection only for the length of a transaction.
    Transaction,
}

impl PoolMode {
    fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// A running PgBouncer in front of the `DB_URL` server.
#[derive(Debug)]
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    user: String,
    child: Child,
}

impl PgBouncer {
    /// Starts PgBouncer in `mode` in front of the server named by `DB_URL`.
    ///
    /// # Panics
    /// When `pgbouncer` is not installed (the message says how to install
    /// it), `DB_URL` is unset or unusable, or PgBouncer does not start
    /// within ten seconds.
    pub fn start(mode: PoolMode) -> PgBouncer {
        PgBouncer::start_with(mode, "")
    }

    /// Like [`PgBouncer::start`], with `settings` (lines such as
    /// `server_reset_query_always = 1`) added to the `[pgbouncer]` section.
    ///
    /// # Panics
    /// As [`PgBouncer::start`].
    pub fn start_with(mode: PoolMode, settings: &str) -> PgBouncer {
        let program = find_pgbouncer().unwrap_or_else(|| {
            panic!(
                "pgbouncer is not installed: the pooler tests need Debian's package \
                 (apt-get install -y pgbouncer); CI's .ci/run installs it"
            )
        });
        let server = pgconn::ConnConfig::parse(&crate::server_url())
            .unwrap_or_else(|e| panic!("the test server's URL ({}): {e}", crate::URL_ENV));
        let host = match &server.hosts()[0] {
            pgconn::Host::Tcp(host) => host.clone(),
            pgconn::Host::Unix(dir) => dir.display().to_string(),
        };
        let server_port = server.ports()[0];
        let user = server.user().to_string();

        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dbops-testdb-pgbouncer-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let owner = running_as_root().then_some(OWNER);
        create_dir_for(&dir, owner);
        let port = free_port();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             pool_mode = {mode}\n\
             default_pool_size = 4\n\
             max_client_conn = 100\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n\
             {settings}\n",
            dir = dir.display(),
            mode = mode.as_str(),
        );
        write(&dir.join("pgbouncer.ini"), &ini);
        write(&dir.join("users.txt"), &format!("\"{user}\" \"\"\n"));
        let child = run_as(owner, &program)
            .arg(dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let mut bouncer = PgBouncer {
            dir,
            port,
            user,
            child,
        };
        bouncer.wait_until_listening();
        bouncer
    }

    /// A URL for `database` through PgBouncer, as the `DB_URL` user.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}?sslmode=disable",
            self.user, self.port
        )
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("pgbouncer.log")
    }

    fn wait_until_listening(&mut self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "pgbouncer exited ({status}) before listening:\n{}",
                    log_tail(&self.log_file())
                );
            }
            if started.elapsed() > Duration::from_secs(10) {
                panic!(
                    "pgbouncer did not listen on port {} within 10 s:\n{}",
                    self.port,
                    log_tail(&self.log_file())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // Under runuser our child is not PgBouncer itself: signal the pid
        // PgBouncer wrote, then reap our child.
        let pid = std::fs::read_to_string(self.dir.join("pgbouncer.pid")).unwrap_or_default();
        let pid = pid.trim();
        if !pid.is_empty() {
            let _ = Command::new("kill").args(["-TERM", pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "testdb: kept the pgbouncer folder {} for inspection",
                self.dir.display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("testdb: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// `pgbouncer` on `PATH`, or where Debian installs it.
fn find_pgbouncer() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|candidate| candidate.is_file())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
