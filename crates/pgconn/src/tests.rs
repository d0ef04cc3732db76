//! Unit tests of reading and redacting connection configs.

use std::path::Path;

use crate::{ConnConfig, Environment, Host, SslMode};

fn env() -> Environment {
    Environment::default().with_var("USER", "osuser")
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// Every input shape of issue 12's "Passwords printed in clear": whether it
/// parses or not, no Display, Debug or error message holds the password.
#[test]
fn no_input_shape_prints_the_password() {
    let shapes = [
        "postgres://u:2024/Canary@host/db",
        "postgres://u:2024%2FCanary@host/db",
        "host=db user=u password = Canary dbname=db",
        "host=db user=u password='x Canary' dbname=db",
        "host=db user=u password=x Canary dbname=db",
        "postgresql+psycopg2://u:Canary@host/db",
        "jdbc:postgresql://host:5432/db?user=u&password=Canary",
        "postgress://u:Canary@host/db",
        "postgres//u:Canary@host/db",
        "POSTGRES://u:Canary@host/db",
        "PostgreSQL://u:Canary@host/db",
        " postgres://u:Canary@host/db",
        "postgres://u@host/db?pass%77ord=Canary",
        "postgres://u@host/db?password=Canary&sslmode=bogus",
        "postgres://u:Canary@host:notaport/db",
        "postgres://u:Canary@[::1/db",
    ];
    for input in shapes {
        let env = env().with_var("PGPASSWORD", "EnvCanary");
        let shown = match ConnConfig::parse_with(input, &env) {
            Ok(config) => format!("{config} | {config:?} | {}", config.redacted()),
            Err(error) => format!("{error} | {error:?}"),
        };
        assert!(
            !shown.contains("Canary"),
            "{input:?} printed a password: {shown}"
        );
    }
}

#[test]
fn parsed_passwords_reach_the_driver() {
    let cases = [
        ("postgres://u:2024%2FCanary@host/db", "2024/Canary"),
        ("host=h password = Canary", "Canary"),
        ("host=h password='x Canary'", "x Canary"),
        ("POSTGRES://u:Canary@host/db", "Canary"),
        ("postgres://u@host/db?pass%77ord=Canary", "Canary"),
    ];
    for (input, password) in cases {
        let config = ConnConfig::parse_with(input, &env()).unwrap();
        let pg = config.tokio_postgres_config("test");
        assert_eq!(pg.get_password(), Some(password.as_bytes()), "{input}");
    }
}

#[test]
fn display_is_the_redacted_target() {
    let config = ConnConfig::parse_with(
        "postgres://app:secret@db.example:6432,[::1]/app?sslmode=require",
        &env(),
    )
    .unwrap();
    assert_eq!(
        config.to_string(),
        "postgres://app@db.example:6432,[::1]:5432/app?sslmode=require"
    );
    let socket = ConnConfig::parse_with("host=/run/pg port=5433 dbname=x", &env()).unwrap();
    assert_eq!(
        socket.to_string(),
        "postgres://osuser@/x?host=/run/pg:5433&sslmode=prefer"
    );
    assert_eq!(socket.hosts(), [Host::Unix("/run/pg".into())]);
}

#[test]
fn the_string_wins_over_the_environment_and_the_environment_fills_the_rest() {
    let env = env()
        .with_var("PGHOST", "envhost")
        .with_var("PGPORT", "6000")
        .with_var("PGUSER", "envuser")
        .with_var("PGPASSWORD", "envpw")
        .with_var("PGDATABASE", "envdb")
        .with_var("PGSSLMODE", "require")
        .with_var("PGAPPNAME", "envapp")
        .with_var("PGCONNECT_TIMEOUT", "7");
    let config = ConnConfig::parse_with("postgres://urluser@urlhost/urldb", &env).unwrap();
    let pg = config.tokio_postgres_config("fallback");
    assert_eq!(config.hosts(), [Host::Tcp("urlhost".into())]);
    assert_eq!(config.ports(), [6000]);
    assert_eq!(config.user(), "urluser");
    assert_eq!(config.dbname(), "urldb");
    assert_eq!(pg.get_password(), Some(&b"envpw"[..]));
    assert_eq!(config.sslmode(), SslMode::Require);
    assert_eq!(pg.get_application_name(), Some("envapp"));
    assert_eq!(
        config.connect_timeout(),
        Some(std::time::Duration::from_secs(7))
    );

    let empty = ConnConfig::parse_with("", &env).unwrap();
    assert_eq!(
        empty.to_string(),
        "postgres://envuser@envhost:6000/envdb?sslmode=require"
    );

    let defaults = ConnConfig::parse_with("", &self::env()).unwrap();
    assert_eq!(defaults.user(), "osuser");
    assert_eq!(defaults.dbname(), "osuser");
    assert_eq!(defaults.ports(), [5432]);
    assert!(matches!(defaults.hosts(), [Host::Unix(_)]));
    assert_eq!(
        defaults
            .tokio_postgres_config("fallback")
            .get_application_name(),
        Some("fallback")
    );
}

#[test]
fn pgpass_is_read_only_when_no_password_is_given() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".pgpass",
        "db:5432:app:app:frompass\n*:*:*:*:wild\n",
    );
    let env = env().with_home(dir.path());
    let from_file = ConnConfig::parse_with("postgres://app@db/app", &env).unwrap();
    assert_eq!(
        from_file.tokio_postgres_config("x").get_password(),
        Some(&b"frompass"[..])
    );
    let given = ConnConfig::parse_with("postgres://app:given@db/app", &env).unwrap();
    assert_eq!(
        given.tokio_postgres_config("x").get_password(),
        Some(&b"given"[..])
    );
    let env_pw = env.clone().with_var("PGPASSWORD", "envpw");
    let from_env = ConnConfig::parse_with("postgres://app@db/app", &env_pw).unwrap();
    assert_eq!(
        from_env.tokio_postgres_config("x").get_password(),
        Some(&b"envpw"[..])
    );

    let other = write(dir.path(), "other.pgpass", "db:5432:app:app:other\n");
    let env_file = env.clone().with_var("PGPASSFILE", other.to_str().unwrap());
    let from_other = ConnConfig::parse_with("postgres://app@db/app", &env_file).unwrap();
    assert_eq!(
        from_other.tokio_postgres_config("x").get_password(),
        Some(&b"other"[..])
    );

    // A socket host is looked up as localhost, as libpq does.
    let socket = ConnConfig::parse_with("host=/tmp user=u", &env).unwrap();
    assert_eq!(
        socket.tokio_postgres_config("x").get_password(),
        Some(&b"wild"[..])
    );
}

#[cfg(unix)]
#[test]
fn a_pgpass_readable_by_others_is_ignored() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), ".pgpass", "*:*:*:*:open\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config =
        ConnConfig::parse_with("postgres://app@db/app", &env().with_home(dir.path())).unwrap();
    assert!(!config.has_password());
}

#[test]
fn services_sit_between_the_string_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        ".pg_service.conf",
        "[prod]\nhost=svchost\nport=6432\ndbname=svcdb\nuser=svcuser\n",
    );
    let env = env()
        .with_home(dir.path())
        .with_var("PGHOST", "envhost")
        .with_var("PGSSLMODE", "require");
    let config = ConnConfig::parse_with("service=prod dbname=override", &env).unwrap();
    assert_eq!(
        config.to_string(),
        "postgres://svcuser@svchost:6432/override?sslmode=require"
    );
    let from_env = ConnConfig::parse_with("", &env.clone().with_var("PGSERVICE", "prod")).unwrap();
    assert_eq!(from_env.hosts(), [Host::Tcp("svchost".into())]);
    let elsewhere = write(dir.path(), "services.conf", "[prod]\nhost=elsewhere\n");
    let from_file = ConnConfig::parse_with(
        "service=prod",
        &env.clone()
            .with_var("PGSERVICEFILE", elsewhere.to_str().unwrap()),
    )
    .unwrap();
    assert_eq!(from_file.hosts(), [Host::Tcp("elsewhere".into())]);
    let system_dir = tempfile::tempdir().unwrap();
    write(
        system_dir.path(),
        "pg_service.conf",
        "[sys]\nhost=systemhost\n",
    );
    let from_system = ConnConfig::parse_with(
        "service=sys",
        &env.clone()
            .with_var("PGSYSCONFDIR", system_dir.path().to_str().unwrap()),
    )
    .unwrap();
    assert_eq!(from_system.hosts(), [Host::Tcp("systemhost".into())]);
    let missing = ConnConfig::parse_with("service=nope", &env).unwrap_err();
    assert!(
        missing.to_string().contains("\"nope\" not found"),
        "{missing}"
    );
}

#[test]
fn sslmode_rules() {
    let dir = tempfile::tempdir().unwrap();
    let env = env().with_home(dir.path());
    let verify = ConnConfig::parse_with("host=h sslmode=verify-full", &env).unwrap_err();
    assert!(
        verify.to_string().contains("needs a root certificate"),
        "{verify}"
    );
    let system = ConnConfig::parse_with("host=h sslrootcert=system", &env).unwrap();
    assert_eq!(system.sslmode(), SslMode::VerifyFull);
    let weak =
        ConnConfig::parse_with("host=h sslrootcert=system sslmode=require", &env).unwrap_err();
    assert!(weak.to_string().contains("weak sslmode"), "{weak}");
    let missing = ConnConfig::parse_with(
        "host=h sslmode=verify-ca sslrootcert=/nonexistent/ca.crt",
        &env,
    )
    .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/ca.crt"),
        "{missing}"
    );
    let jdbc_ssl = ConnConfig::parse_with("postgres://h/db?ssl=true", &env).unwrap();
    assert_eq!(jdbc_ssl.sslmode(), SslMode::Require);
    let bad = ConnConfig::parse_with("host=h sslmode=on", &env).unwrap_err();
    assert_eq!(
        bad.to_string(),
        "sslmode: must be disable, allow, prefer, require, verify-ca or verify-full"
    );
    let crl = ConnConfig::parse_with("host=h sslcrl=/x", &env).unwrap_err();
    assert!(crl.to_string().contains("not supported"), "{crl}");
}

#[test]
fn unparsable_inputs_say_why_without_echoing() {
    let error = ConnConfig::parse_with("postgres//u:pw@h/db", &env()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the connection string is not valid: a URL must start with postgres:// or postgresql://"
    );
}
