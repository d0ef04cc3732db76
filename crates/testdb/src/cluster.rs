//! A PostgreSQL cluster of a test's own, to stop, crash and start again.
//!
//! [`Cluster::start_new`] runs `initdb` into a fresh folder under the system
//! temporary folder and starts the server with `pg_ctl` on a free port of
//! `127.0.0.1`, with the server's durable defaults (`fsync` and
//! `synchronous_commit` on), trust authentication and its Unix socket inside
//! that folder. Dropping the [`Cluster`] stops the server and removes the
//! folder, unless the test is panicking: then the folder stays, for its
//! `server.log`.
//!
//! The server programs are those in `DBOPS_PG_BINDIR` when it is set, and
//! otherwise found as `cargo xtask pg` finds them: `pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin`, then
//! `PATH`. PostgreSQL refuses to run as root, so when the tests run as
//! root the folder belongs to the `postgres` user and the programs run
//! through `runuser` (or `su`).
//!
//! The methods block while `pg_ctl` works; in a `#[tokio::test]` that is fine,
//! the connections waiting meanwhile are the test's own.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The user that owns the cluster when the tests run as root.
pub(crate) const OWNER: &str = "postgres";

/// Names the folder of the server programs to use, overriding the search.
const BINDIR_ENV: &str = "DBOPS_PG_BINDIR";

const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// What a cluster gets besides testdb's defaults, for [`Cluster::start_with`].
#[derive(Debug, Default, Clone, Copy)]
pub struct ClusterSetup<'a> {
    /// Lines appended to `postgresql.conf`, such as `ssl = on`.
    pub settings: &'a str,
    /// A `pg_hba.conf` to replace initdb's, which trusts every local connection.
    pub hba: Option<&'a str>,
    /// Files written into the data folder (name, contents), private to the
    /// server's user: certificates and keys the settings name.
    pub files: &'a [(&'a str, &'a [u8])],
}

/// A throwaway PostgreSQL cluster, running until stopped or dropped.
#[derive(Debug)]
pub struct Cluster {
    /// Holds `data/`, `server.log` and the Unix socket.
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `Some("postgres")` when we are root.
    owner: Option<&'static str>,
    running: bool,
}

impl Cluster {
    /// Creates a cluster in a new temporary folder and starts it.
    ///
    /// # Panics
    /// When the server programs cannot be found or `initdb` or `pg_ctl` fails.
    pub fn start_new() -> Cluster {
        Cluster::start_with(ClusterSetup::default())
    }

    /// Creates a cluster with `setup`'s settings, access rules and files, and starts it.
    ///
    /// # Panics
    /// When the server programs cannot be found, `initdb` or `pg_ctl` fails,
    /// or a file cannot be written.
    pub fn start_with(setup: ClusterSetup<'_>) -> Cluster {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "dbops-testdb-cluster-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cluster = Cluster {
            root,
            bin: server_dir(),
            port: free_port(),
            owner: running_as_root().then_some(OWNER),
            running: false,
        };
        cluster.init();
        cluster.set_up(setup);
        cluster.start();
        cluster
    }

    /// A superuser URL for the database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's address, which stays the same across restarts.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The folder holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    /// Starts the server and waits until it accepts connections, after crash
    /// recovery when it was stopped with [`Cluster::stop_immediate`].
    ///
    /// # Panics
    /// When the server does not start within a minute.
    pub fn start(&mut self) {
        let log = self.log_file();
        let mut pg_ctl = self.as_owner("pg_ctl");
        pg_ctl
            .args(["start", "--wait", "--timeout=60", "--silent", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(&log);
        self.run(&mut pg_ctl);
        self.running = true;
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`).
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast");
    }

    /// Crashes the server (`pg_ctl stop -m immediate`): every process exits
    /// at once, without a checkpoint, and the next start recovers from the
    /// WAL. What a client was told was committed must survive this.
    pub fn stop_immediate(&mut self) {
        self.pg_ctl_stop("immediate");
    }

    /// Stops the server cleanly and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn init(&self) {
        create_dir_for(&self.root, self.owner);
        let mut initdb = self.as_owner("initdb");
        initdb
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                // Only initdb's own writes skip fsync; the server keeps it on.
                "--no-sync",
                "--pgdata",
            ])
            .arg(self.data());
        self.run(&mut initdb);
        let settings = format!(
            "\n# Added by testdb::Cluster.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = '{}'\n\
             fsync = on\n\
             synchronous_commit = on\n",
            self.port,
            self.root.display()
        );
        let conf = self.data().join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .unwrap_or_else(|e| panic!("writing {}: {e}", conf.display()));
    }

    fn set_up(&self, setup: ClusterSetup<'_>) {
        use std::os::unix::fs::PermissionsExt as _;
        let data = self.data();
        let append = |name: &str, text: &str| {
            let path = data.join(name);
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut file| file.write_all(format!("\n{text}\n").as_bytes()))
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        };
        if !setup.settings.is_empty() {
            append("postgresql.conf", setup.settings);
        }
        if let Some(hba) = setup.hba {
            let path = data.join("pg_hba.conf");
            std::fs::write(&path, hba)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
        for (name, contents) in setup.files {
            let path = data.join(name);
            std::fs::write(&path, contents)
                .and_then(|()| {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                })
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            if let Some(owner) = self.owner {
                let status = Command::new("chown")
                    .arg(format!("{owner}:"))
                    .arg(&path)
                    .status();
                assert!(
                    status.is_ok_and(|status| status.success()),
                    "chown {owner}: {} failed",
                    path.display()
                );
            }
        }
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        let mut pg_ctl = self.as_owner("pg_ctl");
        pg_ctl
            .args(["stop", "--wait", "--silent", "-m", mode, "-D"])
            .arg(self.data());
        self.run(&mut pg_ctl);
        self.running = false;
    }

    /// A server program run as the cluster's owner.
    fn as_owner(&self, program: &str) -> Command {
        run_as(self.owner, &self.bin.join(program))
    }

    /// Runs `command`, panicking with its output and the server log's end
    /// when it fails.
    fn run(&self, command: &mut Command) {
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
        if !output.status.success() {
            panic!(
                "{command:?} failed ({}):\n{}{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                log_tail(&self.log_file())
            );
        }
    }
}

/// The program at `path`, run as `owner` when one is given (through
/// `runuser`, or `su`), from `/`.
pub(crate) fn run_as(owner: Option<&str>, path: &Path) -> Command {
    let mut command = match owner {
        None => Command::new(path),
        Some(owner) => {
            if let Some(runuser) = runuser() {
                let mut command = Command::new(runuser);
                command.args(["-u", owner, "--"]).arg(path);
                command
            } else {
                // su hands the words after `-c COMMAND` to the shell as $0, $1, ...
                let mut command = Command::new("su");
                command
                    .args(["-s", "/bin/sh", owner, "-c", r#"exec "$0" "$@""#])
                    .arg(path);
                command
            }
        }
    };
    // The owner may not be allowed into our current folder.
    command.current_dir("/");
    command
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let mut pg_ctl = self.as_owner("pg_ctl");
            pg_ctl
                .args(["stop", "--wait", "--silent", "-m", "immediate", "-D"])
                .arg(self.data());
            if let Err(e) = pg_ctl.output() {
                eprintln!(
                    "testdb: could not stop the cluster in {}: {e}",
                    self.root.display()
                );
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "testdb: kept the cluster in {} for inspection (log: {})",
                self.root.display(),
                self.log_file().display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!("testdb: could not remove {}: {e}", self.root.display());
        }
    }
}

/// Creates `dir` (mode 0700, as initdb wants for what it holds) for `owner`.
pub(crate) fn create_dir_for(dir: &Path, owner: Option<&str>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    if let Some(owner) = owner {
        let status = Command::new("chown")
            .arg(format!("{owner}:"))
            .arg(dir)
            .status();
        assert!(
            status.is_ok_and(|status| status.success()),
            "chown {owner}: {} failed",
            dir.display()
        );
    }
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`: the one named by
/// `DBOPS_PG_BINDIR` (which `cargo xtask matrix` sets to the version under
/// test), otherwise found as `xtask/src/pg/bin.rs` finds it (a copy: testdb
/// cannot depend on xtask).
///
/// # Panics
/// When no folder holds all three.
fn server_dir() -> PathBuf {
    let chosen = std::env::var_os(BINDIR_ENV).map(PathBuf::from);
    chosen
        .clone()
        .into_iter()
        .chain(candidate_dirs().into_iter().filter(|_| chosen.is_none()))
        .find(|dir| {
            SERVER_PROGRAMS
                .iter()
                .all(|program| dir.join(program).is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server programs (initdb, pg_ctl, postgres) found \
                 in {BINDIR_ENV} when set, otherwise through `pg_config --bindir`, \
                 in /usr/lib/postgresql/*/bin or on PATH"
            )
        })
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        dirs.push(PathBuf::from(
            String::from_utf8_lossy(&output.stdout).trim(),
        ));
    }
    dirs.extend(debian_dirs(Path::new("/usr/lib/postgresql")));
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            match std::fs::canonicalize(dir.join("pg_ctl")) {
                Ok(real) => dirs.extend(real.parent().map(Path::to_path_buf)),
                Err(_) => dirs.push(dir),
            }
        }
    }
    dirs
}

/// `<root>/<major>/bin`, newest major first.
fn debian_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn runuser() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("runuser"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/runuser");
        sbin.is_file().then_some(sbin)
    })
}

pub(crate) fn running_as_root() -> bool {
    // "Uid:	real	effective	saved	filesystem"
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find_map(|line| line.strip_prefix("Uid:")) {
        Some(ids) => ids.split_whitespace().nth(1) == Some("0"),
        None => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0"),
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("finding a free port on 127.0.0.1: {e}"))
}

pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
    format!("server log {}:\n    {tail}", log.display())
}
