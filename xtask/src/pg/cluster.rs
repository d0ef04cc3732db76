//! A throwaway PostgreSQL cluster under `target/pg/`, on a free port.
//!
//! PostgreSQL refuses to run as root, so when we are root the cluster belongs
//! to the `postgres` user and its programs run through `runuser` (or `su`).
//! That user must be able to reach the data folder; when it cannot reach
//! `target/`, the cluster lives under the system temporary folder instead.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use url::Url;

use super::{Durability, bin};
use crate::{Result, cmd, workspace};

/// The user that owns the cluster when we run as root.
const OWNER: &str = "postgres";

/// A cluster's data folder and the programs that run it.
#[derive(Debug)]
pub struct Cluster {
    data: PathBuf,
    bin: PathBuf,
    /// `Some("postgres")` when we are root.
    owner: Option<&'static str>,
    durability: Durability,
}

/// The superuser URL of a cluster on `port`.
pub fn url(port: u16) -> Url {
    Url::parse(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).expect("a valid URL")
}

impl Cluster {
    /// Chooses the data folder for clusters of this durability: folder, user
    /// and programs, without starting anything.
    pub fn locate(durability: Durability) -> Result<Cluster> {
        let name = match durability {
            Durability::Throwaway => "throwaway",
            Durability::Durable => "durable",
        };
        Cluster::locate_named(durability, bin::server_dir()?, name)
    }

    /// Like [`Cluster::locate`], for a cluster of the server programs in
    /// `bin` in `target/pg/<name>/`.
    pub fn locate_named(durability: Durability, bin: PathBuf, name: &str) -> Result<Cluster> {
        let preferred = workspace::target_dir().join("pg").join(name);
        if !running_as_root() {
            return Ok(Cluster {
                data: preferred,
                bin,
                owner: None,
                durability,
            });
        }
        if Command::new("id")
            .arg(OWNER)
            .output()
            .is_ok_and(|out| !out.status.success())
        {
            return Err(format!(
                "running as root, and PostgreSQL refuses to run as root: create a `{OWNER}` user \
                 (useradd --system {OWNER}), run as another user, or set DB_URL"
            )
            .into());
        }
        let mut cluster = Cluster {
            data: preferred,
            bin,
            owner: Some(OWNER),
            durability,
        };
        cluster.make_programs_reachable()?;
        if cluster.owner_can_use_data_dir()? {
            return Ok(cluster);
        }
        let mut hasher = DefaultHasher::new();
        workspace::target_dir().hash(&mut hasher);
        let fallback = std::env::temp_dir()
            .join(format!("dbops-xtask-pg-{:016x}", hasher.finish()))
            .join(name);
        eprintln!(
            "pg: user `{OWNER}` cannot reach {}; the cluster lives in {} instead",
            cluster.data.display(),
            fallback.display()
        );
        let cluster = Cluster {
            data: fallback,
            ..cluster
        };
        if cluster.owner_can_use_data_dir()? {
            Ok(cluster)
        } else {
            Err(format!(
                "user `{OWNER}` cannot use {} either",
                cluster.data.display()
            )
            .into())
        }
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.data
    }

    /// The folder of the server programs the cluster runs.
    pub fn programs(&self) -> &Path {
        &self.bin
    }

    /// Copies the server programs' installation (the folder above `bin/`) to
    /// the system temporary folder when the owner cannot run them where they
    /// are, as when `cargo xtask matrix` installed them under a `target/`
    /// inside a folder only root may enter.
    fn make_programs_reachable(&mut self) -> Result {
        let can_run = self
            .as_owner("test")
            .arg("-x")
            .arg(self.bin.join("postgres"))
            .status()
            .is_ok_and(|status| status.success());
        if can_run {
            return Ok(());
        }
        let install = self
            .bin
            .parent()
            .ok_or_else(|| format!("{} has no parent folder", self.bin.display()))?;
        let mut hasher = DefaultHasher::new();
        install.hash(&mut hasher);
        let copy =
            std::env::temp_dir().join(format!("dbops-xtask-pg-programs-{:016x}", hasher.finish()));
        if !copy.join("bin").join("postgres").is_file() {
            if copy.exists() {
                std::fs::remove_dir_all(&copy)
                    .map_err(|e| format!("removing {}: {e}", copy.display()))?;
            }
            cmd::output(Command::new("cp").arg("-a").arg(install).arg(&copy))?;
        }
        eprintln!(
            "pg: user `{}` cannot run the programs in {}; they run from a copy in {}",
            OWNER,
            self.bin.display(),
            copy.display()
        );
        self.bin = copy.join("bin");
        Ok(())
    }

    /// The port of a cluster already running in this folder and answering.
    pub fn running_port(&self) -> Option<u16> {
        // Line 4 of postmaster.pid is the port.
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let port: u16 = pid_file.lines().nth(3)?.trim().parse().ok()?;
        let ready = Command::new(bin::client("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "5"])
            .status();
        ready.is_ok_and(|status| status.success()).then_some(port)
    }

    /// Creates the cluster if needed and starts it on a free port.
    pub fn start(&self) -> Result<u16> {
        if !self.initialized()? {
            self.init()?;
        }
        let port = free_port()?;
        let log = self.data.join("server.log");
        let mut pg_ctl = self.as_owner("pg_ctl");
        pg_ctl
            .args([
                "start",
                "--wait",
                "--timeout=60",
                "--silent",
                "-o",
                &format!("-p {port}"),
            ])
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log);
        let started = cmd::output(&mut pg_ctl);
        if let Err(e) = started {
            // Another `cargo xtask` may have started it meanwhile.
            if let Some(port) = self.running_port() {
                return Ok(port);
            }
            return Err(format!("{e}\n{}", log_tail(&log)).into());
        }
        eprintln!(
            "pg: started a {} cluster in {} on port {port} (log: {})",
            match self.durability {
                Durability::Throwaway => "throwaway (fsync off)",
                Durability::Durable => "durable",
            },
            self.data.display(),
            log.display()
        );
        Ok(port)
    }

    /// Stops the cluster if it runs.
    pub fn stop(&self) -> Result {
        if self.running_port().is_none() {
            eprintln!("pg: no cluster running in {}", self.data.display());
            return Ok(());
        }
        let mut pg_ctl = self.as_owner("pg_ctl");
        pg_ctl
            .args(["stop", "--wait", "--silent", "--mode=fast", "-D"])
            .arg(&self.data);
        cmd::output(&mut pg_ctl)?;
        eprintln!("pg: stopped the cluster in {}", self.data.display());
        Ok(())
    }

    /// Whether the folder holds a cluster of the same major version as our
    /// server programs.
    fn initialized(&self) -> Result<bool> {
        let Ok(initialized) = std::fs::read_to_string(self.data.join("PG_VERSION")) else {
            return Ok(false);
        };
        let version = cmd::read(Command::new(self.bin.join("postgres")).arg("--version"))?;
        // "postgres (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)": the major is 15.
        let major = version
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.split('.').next());
        Ok(major == Some(initialized.trim()))
    }

    fn init(&self) -> Result {
        if self.data.exists() {
            // A cluster of another major version, or a failed initdb: it is
            // throwaway, so start over.
            std::fs::remove_dir_all(&self.data)
                .map_err(|e| format!("removing {}: {e}", self.data.display()))?;
        }
        self.create_dir()?;
        let mut initdb = self.as_owner("initdb");
        initdb
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ])
            .args(["--no-sync", "--pgdata"])
            .arg(&self.data);
        cmd::output(&mut initdb)?;
        let mut settings = String::from(
            "\n# Added by `cargo xtask pg`: a local cluster for dbops's tests and benchmarks.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n\
             max_connections = 200\n",
        );
        if self.durability == Durability::Throwaway {
            settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        }
        let conf = self.data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        Ok(())
    }

    /// Creates the data folder (mode 0700, as initdb wants) for its owner.
    fn create_dir(&self) -> Result {
        use std::os::unix::fs::PermissionsExt;
        // The folders above keep the usual mode, so the owner can pass.
        std::fs::create_dir_all(&self.data)
            .and_then(|()| {
                std::fs::set_permissions(&self.data, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| format!("creating {}: {e}", self.data.display()))?;
        if let Some(owner) = self.owner {
            cmd::output(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{owner}:"))
                    .arg(&self.data),
            )?;
        }
        Ok(())
    }

    /// Whether the owner can write in the data folder, creating it first
    /// when it does not exist yet.
    fn owner_can_use_data_dir(&self) -> Result<bool> {
        if !self.data.exists() {
            self.create_dir()?;
        }
        let can = self
            .as_owner("test")
            .arg("-w")
            .arg(&self.data)
            .status()
            .is_ok_and(|status| status.success());
        Ok(can)
    }

    /// `program` (from the server folder, or `test` from PATH) run as the
    /// cluster's owner.
    fn as_owner(&self, program: &str) -> Command {
        let path = if program == "test" {
            PathBuf::from(program)
        } else {
            self.bin.join(program)
        };
        let mut command = match self.owner {
            None => Command::new(path),
            Some(owner) if cmd::on_path("runuser") || Path::new("/usr/sbin/runuser").is_file() => {
                let mut runuser = Command::new(if cmd::on_path("runuser") {
                    "runuser"
                } else {
                    "/usr/sbin/runuser"
                });
                runuser.args(["-u", owner, "--"]).arg(path);
                runuser
            }
            Some(owner) => {
                // su hands the words after `-c COMMAND` to the shell as $0, $1, ...
                let mut su = Command::new("su");
                su.args(["-s", "/bin/sh", owner, "-c", r#"exec "$0" "$@""#])
                    .arg(path);
                su
            }
        };
        // The owner may not be allowed into our current folder.
        command.current_dir("/");
        command
    }
}

fn running_as_root() -> bool {
    // "Uid:	real	effective	saved	filesystem"
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find_map(|line| line.strip_prefix("Uid:")) {
        Some(ids) => ids.split_whitespace().nth(1) == Some("0"),
        None => cmd::read(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0"),
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))?;
    Ok(listener.local_addr()?.port())
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
    format!("server log {}:\n    {tail}", log.display())
}
