//! `cargo xtask clickhouse`: a two-shard ClickHouse cluster for tests and
//! smoke runs of the `clickhouse` rollup target.
//!
//! [`ensure`] installs Debian's `clickhouse-server` and `clickhouse-client`
//! (and `libpcre3`, which the server needs but the package does not declare)
//! when they are missing, then starts two servers on loopback under
//! `target/clickhouse/` (or finds them still running from an earlier call),
//! each with its own ports, data folders and a `remote_servers` cluster
//! `dbops` of both as two shards, and answers with their HTTP URLs. The
//! servers get small caches and a memory cap: the machine is shared.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::flags::Args;
use crate::{Result, cmd, workspace};

/// The environment variable that hands the servers' HTTP URLs to tests and
/// to `dbops rollup --target clickhouse`: comma-separated, one per shard.
pub const URLS_ENV: &str = "CLICKHOUSE_URLS";

/// The name of the `remote_servers` cluster the servers form.
pub const CLUSTER: &str = "dbops";

/// How many servers (shards of one replica each) the cluster has.
const SHARDS: usize = 2;

/// The server program of Debian's `clickhouse-server`.
const SERVER: &str = "/usr/sbin/clickhouse-server";

/// How long a server may take to answer on HTTP after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One server's folder under `target/clickhouse/` and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    dir: PathBuf,
    ports: Ports,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ports {
    http: u16,
    tcp: u16,
    interserver: u16,
}

/// A running two-shard cluster.
#[derive(Debug)]
pub struct Servers {
    /// The servers' HTTP URLs, first shard first, as [`URLS_ENV`] carries them.
    pub urls: String,
    /// The folder of the servers this call started, if it started them.
    started: Option<PathBuf>,
}

impl Servers {
    /// Stops the servers if this process started them, leaving servers that
    /// were already running.
    pub fn stop_if_started(self) -> Result {
        match self.started {
            Some(root) => stop(&root).map(drop),
            None => Ok(()),
        }
    }
}

/// A running two-shard cluster: see the module documentation.
pub fn ensure() -> Result<Servers> {
    install_if_missing()?;
    let root = workspace::target_dir().join("clickhouse");
    // Two calls at once (a test run and a smoke run, say) must not both
    // start servers on the same data folders: the second waits here and
    // then finds the first one's servers running. The lock goes with the
    // file handle, when this function returns or the process dies.
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let lock_path = root.join("start.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if let Some(nodes) = running(&root) {
        eprintln!(
            "clickhouse: reusing the servers running in {}",
            root.display()
        );
        return Ok(Servers {
            urls: urls(&nodes),
            started: None,
        });
    }
    // A half-started cluster (one server died): start both again on fresh
    // ports, keeping their data.
    stop(&root)?;
    let nodes = plan(&root)?;
    for node in &nodes {
        write_config(node, &nodes)?;
        start(node)?;
    }
    for node in &nodes {
        wait_until_answering(node)?;
    }
    eprintln!(
        "clickhouse: started {SHARDS} servers in {} (cluster `{CLUSTER}`)",
        root.display()
    );
    Ok(Servers {
        urls: urls(&nodes),
        started: Some(root),
    })
}

/// `cargo xtask clickhouse [--stop]`.
pub fn task(args: &mut Args) -> Result {
    let stop_them = args.flag("--stop");
    args.finish()?;
    if stop_them {
        let root = workspace::target_dir().join("clickhouse");
        match stop(&root)? {
            0 => eprintln!("clickhouse: no server running in {}", root.display()),
            n => eprintln!("clickhouse: stopped {n} server(s) in {}", root.display()),
        }
        return Ok(());
    }
    println!("{}", ensure()?.urls);
    Ok(())
}

fn urls(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|node| format!("http://127.0.0.1:{}", node.ports.http))
        .collect::<Vec<_>>()
        .join(",")
}

fn install_if_missing() -> Result {
    let have_server = Path::new(SERVER).is_file();
    let have_client = cmd::on_path("clickhouse-client");
    let have_pcre = Path::new("/usr/lib/x86_64-linux-gnu/libpcre.so.3").is_file()
        || cmd::read(Command::new("dpkg-query").args(["-W", "-f=${Status}", "libpcre3"]))
            .is_ok_and(|status| status.contains("ok installed"));
    if have_server && have_client && have_pcre {
        return Ok(());
    }
    eprintln!("clickhouse: installing clickhouse-server, clickhouse-client and libpcre3");
    cmd::run(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "clickhouse-server",
                "clickhouse-client",
                "libpcre3",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .map_err(|e| {
        format!(
            "{e}\n(ClickHouse comes from Debian's clickhouse-server package; run as root, \
             or `apt-get update` first)"
        )
        .into()
    })
}

/// The servers' folders, each with the ports it ran on last, when every one
/// of them is running and answers.
fn running(root: &Path) -> Option<Vec<Node>> {
    let nodes: Vec<Node> = (1..=SHARDS)
        .map(|shard| {
            let dir = root.join(format!("shard{shard}"));
            let ports = read_ports(&dir)?;
            Some(Node { dir, ports })
        })
        .collect::<Option<_>>()?;
    nodes
        .iter()
        .all(|node| pid(&node.dir).is_some() && ping(node.ports.http))
        .then_some(nodes)
}

/// Fresh ports for every server, keeping their folders.
fn plan(root: &Path) -> Result<Vec<Node>> {
    // Hold every listener until all ports are chosen, so no two coincide.
    let mut listeners = Vec::new();
    let mut port = || -> Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))?;
        let port = listener.local_addr()?.port();
        listeners.push(listener);
        Ok(port)
    };
    (1..=SHARDS)
        .map(|shard| {
            Ok(Node {
                dir: root.join(format!("shard{shard}")),
                ports: Ports {
                    http: port()?,
                    tcp: port()?,
                    interserver: port()?,
                },
            })
        })
        .collect()
}

fn read_ports(dir: &Path) -> Option<Ports> {
    let text = std::fs::read_to_string(dir.join("ports")).ok()?;
    let mut numbers = text.split_whitespace().map(|word| word.parse().ok());
    Some(Ports {
        http: numbers.next()??,
        tcp: numbers.next()??,
        interserver: numbers.next()??,
    })
}

/// Writes the server's `config.xml`, `users.xml` and `ports`.
fn write_config(node: &Node, cluster: &[Node]) -> Result {
    for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
        let path = node.dir.join(sub);
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    }
    let dir = node.dir.display();
    let Ports {
        http,
        tcp,
        interserver,
    } = node.ports;
    let shards: String = cluster
        .iter()
        .map(|other| {
            format!(
                "            <shard><replica><host>127.0.0.1</host><port>{}</port></replica></shard>\n",
                other.ports.tcp
            )
        })
        .collect();
    // `<yandex>` is the root element ClickHouse 18.16 reads; current
    // releases accept it too. Settings a release does not know (such as
    // max_server_memory_usage on 18.16) are ignored.
    let config = format!(
        r#"<?xml version="1.0"?>
<!-- Generated by `cargo xtask clickhouse`, do not edit. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/log/server.log</log>
        <errorlog>{dir}/log/error.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http}</http_port>
    <tcp_port>{tcp}</tcp_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>{interserver}</interserver_http_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <max_concurrent_queries>16</max_concurrent_queries>
    <max_connections>64</max_connections>
    <max_server_memory_usage>1073741824</max_server_memory_usage>
    <mark_cache_size>16777216</mark_cache_size>
    <uncompressed_cache_size>16777216</uncompressed_cache_size>
    <remote_servers>
        <{CLUSTER}>
{shards}        </{CLUSTER}>
    </remote_servers>
</yandex>
"#
    );
    let users = r#"<?xml version="1.0"?>
<!-- Generated by `cargo xtask clickhouse`, do not edit. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>536870912</max_memory_usage>
            <max_threads>2</max_threads>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval>
        </default>
    </quotas>
</yandex>
"#;
    for (name, text) in [
        ("config.xml", config.as_str()),
        ("users.xml", users),
        ("ports", &format!("{http} {tcp} {interserver}\n")),
    ] {
        let path = node.dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn start(node: &Node) -> Result {
    let mut server = Command::new(SERVER);
    server
        .arg("--daemon")
        .arg(format!(
            "--config-file={}",
            node.dir.join("config.xml").display()
        ))
        .arg(format!("--pid-file={}", node.dir.join("pid").display()))
        .current_dir(&node.dir);
    cmd::output(&mut server).map_err(|e| format!("{e}\n{}", log_tail(&node.dir)))?;
    Ok(())
}

fn wait_until_answering(node: &Node) -> Result {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if ping(node.ports.http) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "the ClickHouse server in {} did not answer on http://127.0.0.1:{} within {START_TIMEOUT:?}\n{}",
        node.dir.display(),
        node.ports.http,
        log_tail(&node.dir)
    )
    .into())
}

/// Whether a ClickHouse server answers `GET /ping` on `port` ("Ok.").
fn ping(port: u16) -> bool {
    let exchange = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    };
    exchange().is_ok_and(|answer| answer.starts_with("HTTP/1.") && answer.ends_with("Ok.\n"))
}

/// The pid in a server's pid file, when that process is alive.
fn pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// Stops every server running under `root`, waiting until each has exited;
/// tells how many there were.
fn stop(root: &Path) -> Result<usize> {
    let mut stopped = 0;
    for shard in 1..=SHARDS {
        let dir = root.join(format!("shard{shard}"));
        let Some(pid) = pid(&dir) else { continue };
        cmd::output(Command::new("kill").args(["-TERM", &pid.to_string()]))?;
        let asked = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() {
            if asked.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "the ClickHouse server {pid} in {} did not stop within {START_TIMEOUT:?}",
                    dir.display()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = std::fs::remove_file(dir.join("pid"));
        stopped += 1;
    }
    Ok(stopped)
}

fn log_tail(dir: &Path) -> String {
    let log = dir.join("log").join("error.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
    format!("server log {}:\n    {tail}", log.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_back_as_written_and_garbage_is_none() {
        let dir = workspace::target_dir().join("xtask-clickhouse-ports-test");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ports"), "8123 9000 9009\n").unwrap();
        assert_eq!(
            read_ports(&dir),
            Some(Ports {
                http: 8123,
                tcp: 9000,
                interserver: 9009
            })
        );
        std::fs::write(dir.join("ports"), "8123 nine\n").unwrap();
        assert_eq!(read_ports(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_closed_port_does_not_answer_ping() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!ping(port));
    }
}
