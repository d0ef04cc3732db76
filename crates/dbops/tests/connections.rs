//! Where dbops takes its database from: DB_URL and --database-url first, then libpq's PG* variables.

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use testdb::TestDb;

mod support;

/// `dbops migrate status` on a folder of one migration, with `env` set and
/// every PG* variable and DB_URL of the test's own environment removed.
fn status(dir: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::cargo_bin("dbops").unwrap();
    command
        .env_remove("DB_URL")
        .env_remove("ANALYTICS_URL")
        .env("DBOPS_CONFIG", support::standalone_config())
        .env("NO_COLOR", "1")
        // An empty home: no ~/.pgpass, ~/.pg_service.conf or ~/.postgresql.
        .env("HOME", dir)
        .args(["migrate", "status", "--dir"])
        .arg(dir);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("PG")) {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn pg_variables_are_used_when_no_url_is_given_and_the_url_wins_over_them() {
    let db = TestDb::new().await;
    let config = pgconn::ConnConfig::parse(db.url()).unwrap();
    let pgconn::Host::Tcp(host) = &config.hosts()[0] else {
        panic!("the test server is reached over TCP");
    };
    let port = config.ports()[0].to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("202501010000_a.up.sql"),
        "CREATE TABLE a (id bigint);",
    )
    .unwrap();
    std::fs::write(dir.path().join("202501010000_a.down.sql"), "DROP TABLE a;").unwrap();
    let pg = [
        ("PGHOST", host.as_str()),
        ("PGPORT", port.as_str()),
        ("PGUSER", config.user()),
        ("PGDATABASE", db.name()),
        ("PGSSLMODE", "disable"),
    ];

    // PG* variables alone.
    let (code, stderr) = status(dir.path(), &pg);
    assert_eq!(code, 0, "{stderr}");

    // DB_URL wins over them: here it names a port where nothing listens.
    let mut with_url = pg.to_vec();
    with_url.push((
        "DB_URL",
        "postgres://nobody:Canary@127.0.0.1:1/x?connect_timeout=2",
    ));
    let (code, stderr) = status(dir.path(), &with_url);
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("cannot reach the database at postgres://nobody@127.0.0.1:1/x"),
        "{stderr}"
    );
    assert!(!stderr.contains("Canary"), "{stderr}");

    // A PG* setting that cannot work is a configuration error naming it.
    let mut verify = pg.to_vec();
    verify.retain(|(name, _)| *name != "PGSSLMODE");
    verify.push(("PGSSLMODE", "verify-full"));
    let (code, stderr) = status(dir.path(), &verify);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("needs a root certificate"), "{stderr}");

    // Neither a URL nor PG* variables.
    let (code, stderr) = status(dir.path(), &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("PGHOST, PGSERVICE or PGDATABASE"),
        "{stderr}"
    );
}

/// Every malformed shape of issue 12 is refused with exit 3 and never echoed.
#[test]
fn malformed_urls_are_refused_without_being_echoed() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://u:2024/Canary@host/db",
        "password=x Canary",
        "postgresql+psycopg2://u:Canary@host/db",
        "jdbc:postgresql://host/db?user=u&password=Canary",
        "postgress://u:Canary@host/db",
        "postgres//u:Canary@host/db",
    ] {
        let (code, stderr) = status(dir.path(), &[("DB_URL", url)]);
        assert_eq!(code, 3, "{url}: {stderr}");
        assert!(
            stderr.contains("the connection string is not valid"),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("Canary"), "{url}: {stderr}");
    }
}

/// A self-signed certificate and key for `localhost` in `dir`: `name.crt`, `name.key`.
fn self_signed(dir: &Path, name: &str) {
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Against a server that accepts only TLS: plain text is exit 17 saying TLS
/// is required, sslmode=require works, an untrusted certificate is exit 17.
#[test]
fn tls_failures_have_their_own_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("202501010000_a.up.sql"),
        "CREATE TABLE a (id bigint);",
    )
    .unwrap();
    std::fs::write(dir.path().join("202501010000_a.down.sql"), "DROP TABLE a;").unwrap();
    let certs = tempfile::tempdir().unwrap();
    self_signed(certs.path(), "server");
    self_signed(certs.path(), "stranger");
    let read = |name: &str| std::fs::read(certs.path().join(name)).unwrap();
    let (crt, key) = (read("server.crt"), read("server.key"));
    let cluster = testdb::Cluster::start_with(testdb::ClusterSetup {
        settings: "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'",
        hba: Some("local all all trust\nhostssl all all 127.0.0.1/32 trust\n"),
        files: &[("server.crt", &crt), ("server.key", &key)],
    });
    let url = |params: &str| {
        format!(
            "postgres://postgres:Canary@127.0.0.1:{}/postgres?{params}",
            cluster.addr().port()
        )
    };

    let (code, stderr) = status(dir.path(), &[("DB_URL", &url("sslmode=disable"))]);
    assert_eq!(code, 17, "{stderr}");
    assert!(stderr.contains("accepts only TLS connections"), "{stderr}");

    let (code, stderr) = status(dir.path(), &[("DB_URL", &url("sslmode=require"))]);
    assert_eq!(code, 0, "{stderr}");

    let stranger = certs.path().join("stranger.crt");
    let untrusted = url(&format!(
        "sslmode=verify-full&sslrootcert={}",
        stranger.display()
    ));
    let (code, stderr) = status(dir.path(), &[("DB_URL", &untrusted)]);
    assert_eq!(code, 17, "{stderr}");
    assert!(stderr.contains("is not trusted"), "{stderr}");
    assert!(!stderr.contains("Canary"), "{stderr}");
}
