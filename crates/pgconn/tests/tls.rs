//! TLS against a real server: a throwaway cluster with `ssl = on`, certificates made by `openssl`, and `hostssl`-only access.

use std::path::{Path, PathBuf};
use std::process::Command;

use pgconn::{CertificateProblem, ConnConfig, Environment, Error};
use testdb::{Cluster, ClusterSetup};

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA named `name`: `name.crt` and `name.key`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
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
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// A certificate `name.crt`/`name.key` for `subject`, signed by `ca`, with `extensions`.
fn make_cert(dir: &Path, ca: &str, name: &str, subject: &str, extensions: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

struct TlsServer {
    cluster: Cluster,
    certs: tempfile::TempDir,
    /// An empty home folder, so that no `~/.postgresql` or `~/.pgpass` of the machine counts.
    home: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let certs = tempfile::tempdir().unwrap();
        let dir = certs.path();
        make_ca(dir, "ca");
        make_ca(dir, "other-ca");
        make_cert(
            dir,
            "ca",
            "server",
            "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        make_cert(
            dir,
            "ca",
            "client",
            "/CN=certuser",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let (ca, server_crt, server_key) = (read("ca.crt"), read("server.crt"), read("server.key"));
        let cluster = Cluster::start_with(ClusterSetup {
            settings: "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.crt'\npassword_encryption = 'scram-sha-256'",
            hba: Some(
                "local all all trust\n\
                 hostssl all certuser 127.0.0.1/32 cert\n\
                 hostssl all scramuser 127.0.0.1/32 scram-sha-256\n\
                 hostssl all all 127.0.0.1/32 trust\n",
            ),
            files: &[
                ("ca.crt", &ca),
                ("server.crt", &server_crt),
                ("server.key", &server_key),
            ],
        });
        TlsServer {
            cluster,
            certs,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.certs.path().join(name)
    }

    /// A config for `settings` (key=value) plus this server's port.
    fn config(&self, settings: &str) -> ConnConfig {
        let env = Environment::default()
            .with_var("USER", "postgres")
            .with_home(self.home.path());
        let input = format!(
            "port={} dbname=postgres {settings}",
            self.cluster.addr().port()
        );
        ConnConfig::parse_with(&input, &env).unwrap()
    }

    /// Connects with `settings` and says whether the connection uses TLS.
    async fn connect(&self, settings: &str) -> Result<bool, Error> {
        let (client, _task) = pgconn::connect(&self.config(settings), "pgconn tls test").await?;
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        Ok(row.get(0))
    }
}

#[tokio::test]
async fn sslmodes_against_a_tls_only_server() {
    let server = TlsServer::start();
    let ca = server.cert("ca.crt");
    let ca = ca.display();
    let other_ca = server.cert("other-ca.crt");
    let other_ca = other_ca.display();

    // verify-full: a trusted chain and the right host name.
    let full = format!("host=localhost sslmode=verify-full sslrootcert={ca}");
    assert!(server.connect(&full).await.unwrap());

    // The wrong host name, reached at the right address.
    let wrong_name =
        format!("host=wrong.example hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca}");
    match server.connect(&wrong_name).await {
        Err(Error::CertificateNotTrusted {
            problem: CertificateProblem::WrongHostName { expected },
            ..
        }) => assert_eq!(expected, "wrong.example"),
        other => panic!("expected a wrong host name, got {other:?}"),
    }
    let message = server.connect(&wrong_name).await.unwrap_err().to_string();
    assert!(
        message.contains("not trusted: it is not valid for the host name \"wrong.example\""),
        "{message}"
    );

    // verify-ca checks the chain only, so the same name passes.
    let chain_only =
        format!("host=wrong.example hostaddr=127.0.0.1 sslmode=verify-ca sslrootcert={ca}");
    assert!(server.connect(&chain_only).await.unwrap());

    // A CA that did not sign the server's certificate.
    let unknown = format!("host=localhost sslmode=verify-full sslrootcert={other_ca}");
    match server.connect(&unknown).await {
        Err(Error::CertificateNotTrusted {
            problem: CertificateProblem::UnknownCa,
            ..
        }) => {}
        other => panic!("expected an unknown CA, got {other:?}"),
    }
    // require with a root certificate checks the chain, as libpq does.
    let require_other = format!("host=127.0.0.1 sslmode=require sslrootcert={other_ca}");
    assert!(matches!(
        server.connect(&require_other).await,
        Err(Error::CertificateNotTrusted {
            problem: CertificateProblem::UnknownCa,
            ..
        })
    ));

    // require without a root certificate: encrypted, server not authenticated.
    assert!(
        server
            .connect("host=127.0.0.1 sslmode=require")
            .await
            .unwrap()
    );

    // No sslmode is libpq's prefer: TLS, since the server offers it.
    assert!(server.connect("host=127.0.0.1").await.unwrap());

    // A Unix socket never uses TLS, whatever the sslmode, as in libpq.
    let socket = format!(
        "host={} sslmode=require",
        server.cluster.socket_dir().display()
    );
    assert!(!server.connect(&socket).await.unwrap());

    // Plain text is refused by pg_hba.conf, and the message says TLS is required.
    let error = server
        .connect("host=127.0.0.1 sslmode=disable")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::TlsRequired { .. }), "{error:?}");
    assert!(
        error.to_string().contains("accepts only TLS connections"),
        "{error}"
    );

    // Roles for the certificate and SCRAM logins.
    {
        let (admin, _task) =
            pgconn::connect(&server.config("host=127.0.0.1 sslmode=require"), "setup")
                .await
                .unwrap();
        admin
            .batch_execute(
                "CREATE ROLE certuser LOGIN; CREATE ROLE scramuser LOGIN PASSWORD 'scram-secret'",
            )
            .await
            .unwrap();
    }

    // A client certificate login (`hostssl ... cert`).
    let with_cert = format!(
        "host=localhost user=certuser sslmode=verify-full sslrootcert={ca} sslcert={} sslkey={}",
        server.cert("client.crt").display(),
        server.cert("client.key").display()
    );
    assert!(server.connect(&with_cert).await.unwrap());
    let without_cert = format!("host=localhost user=certuser sslmode=verify-full sslrootcert={ca}");
    assert!(matches!(
        server.connect(&without_cert).await,
        Err(Error::BadCredentials { .. })
    ));

    // SCRAM with channel binding to the server's certificate.
    let scram = format!(
        "host=localhost user=scramuser password=scram-secret channel_binding=require sslmode=verify-full sslrootcert={ca}"
    );
    assert!(server.connect(&scram).await.unwrap());
    let wrong_password =
        format!("host=localhost user=scramuser password=nope sslmode=verify-full sslrootcert={ca}");
    let error = server.connect(&wrong_password).await.unwrap_err();
    assert!(matches!(error, Error::BadCredentials { .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("nope"), "{error:?}");

    // A database that does not exist.
    let missing = format!("host=localhost dbname=nowhere sslmode=verify-full sslrootcert={ca}");
    let error = server.connect(&missing).await.unwrap_err();
    assert!(matches!(error, Error::DatabaseMissing { .. }), "{error:?}");

    // Nothing listening.
    let error = pgconn::connect(
        &ConnConfig::parse_with(
            "host=127.0.0.1 port=1 connect_timeout=2",
            &Environment::default().with_var("USER", "postgres"),
        )
        .unwrap(),
        "test",
    )
    .await
    .unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
}

/// A server certificate that expired is refused, and the message says so.
#[tokio::test]
async fn an_expired_server_certificate_is_refused_as_expired() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    make_ca(dir, "ca");
    // `openssl ca` can back-date a certificate; `openssl x509` (3.0) cannot.
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = ca_default\n\
         [ca_default]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
         default_md = sha256\npolicy = policy_any\n\
         [policy_any]\ncommonName = supplied\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "01\n").unwrap();
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.crt",
            "-keyfile",
            "ca.key",
            "-in",
            "server.csr",
            "-out",
            "server.crt",
            "-notext",
            "-extfile",
            "server.ext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
        ],
    );
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let (server_crt, server_key) = (read("server.crt"), read("server.key"));
    let cluster = Cluster::start_with(ClusterSetup {
        settings: "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'",
        hba: Some("local all all trust\nhostssl all all 127.0.0.1/32 trust\n"),
        files: &[("server.crt", &server_crt), ("server.key", &server_key)],
    });
    let home = tempfile::tempdir().unwrap();
    let input = format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
        cluster.addr().port(),
        dir.join("ca.crt").display()
    );
    let config =
        ConnConfig::parse_with(&input, &Environment::default().with_home(home.path())).unwrap();
    let error = pgconn::connect(&config, "test").await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::CertificateNotTrusted {
                problem: CertificateProblem::Expired,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .ends_with("is not trusted: it has expired"),
        "{error}"
    );
}

/// sslmode=require against a server without TLS says the server does not support it.
#[tokio::test]
async fn require_against_a_server_without_tls_says_so() {
    let cluster = Cluster::start_with(ClusterSetup {
        settings: "ssl = off",
        ..ClusterSetup::default()
    });
    let home = tempfile::tempdir().unwrap();
    let env = Environment::default().with_home(home.path());
    let input = |sslmode: &str| {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode={sslmode}",
            cluster.addr().port()
        )
    };
    let required = ConnConfig::parse_with(&input("require"), &env).unwrap();
    let error = pgconn::connect(&required, "test").await.unwrap_err();
    assert!(matches!(error, Error::TlsUnsupported { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .ends_with("does not support TLS, but sslmode=require requires it"),
        "{error}"
    );
    // prefer falls back to plain text.
    let preferred = ConnConfig::parse_with(&input("prefer"), &env).unwrap();
    let (client, _task) = pgconn::connect(&preferred, "test").await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
}
