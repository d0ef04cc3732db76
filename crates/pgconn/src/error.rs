//! The one error type of pgconn: each way of not getting a connection is its own variant.

use std::path::PathBuf;

use tokio_postgres::error::SqlState;

/// Why a connection could not be configured or opened.
///
/// Targets in messages are always redacted; an input that cannot be parsed
/// is never quoted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string (URL or key=value) cannot be parsed.
    #[error("the connection string is not valid: {reason}")]
    InvalidConnectionString {
        /// What is wrong, without quoting the input.
        reason: String,
    },
    /// A setting is invalid, from the string, the environment or a service file.
    #[error("{origin}: {message}")]
    InvalidSetting {
        /// Where the setting came from: a keyword, variable or file line.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A file the settings name cannot be read or used.
    #[error("cannot use {what} {path}: {message}")]
    File {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The server accepts only TLS connections, and this one was not.
    #[error(
        "the server at {target} accepts only TLS connections for this user and database (pg_hba.conf has no entry without encryption); connect with sslmode=require, verify-ca or verify-full"
    )]
    TlsRequired {
        /// The redacted target.
        target: String,
        /// The server's refusal.
        source: tokio_postgres::Error,
    },
    /// The sslmode requires TLS and the server does not offer it.
    #[error("the server at {target} does not support TLS, but sslmode={sslmode} requires it")]
    TlsUnsupported {
        /// The redacted target.
        target: String,
        /// The sslmode asked for.
        sslmode: String,
    },
    /// The server's certificate failed verification.
    #[error("the certificate of the server at {target} is not trusted: {problem}")]
    CertificateNotTrusted {
        /// The redacted target.
        target: String,
        /// Why it is not trusted.
        problem: CertificateProblem,
        /// The TLS error.
        source: tokio_postgres::Error,
    },
    /// The TLS handshake failed for another reason.
    #[error("the TLS handshake with the server at {target} failed")]
    Tls {
        /// The redacted target.
        target: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// The server rejected the credentials.
    #[error("the database at {target} rejected the credentials of user {user:?}")]
    BadCredentials {
        /// The redacted target.
        target: String,
        /// The user name that was tried.
        user: String,
        /// The server's refusal.
        source: tokio_postgres::Error,
    },
    /// The database does not exist on the server.
    #[error("database {dbname:?} does not exist on the server at {target}")]
    DatabaseMissing {
        /// The redacted target.
        target: String,
        /// The database name.
        dbname: String,
        /// The server's refusal.
        source: tokio_postgres::Error,
    },
    /// The server could not be reached, or is starting up or shutting down.
    #[error("cannot reach the database at {target}")]
    Unreachable {
        /// The redacted target.
        target: String,
        /// The cause.
        source: tokio_postgres::Error,
    },
    /// The connection does not keep a server session of its own: a pooler in
    /// transaction or statement pooling mode hands its statements to
    /// whichever server session is free.
    #[error(
        "the connection does not keep its own server session ({evidence}): a connection pooler in transaction or statement pooling mode (such as PgBouncer with pool_mode = transaction) sits in between, and session-level advisory locks and prepared statements do not work through it; connect to the server directly, or through the pooler in session pooling mode"
    )]
    SessionNotKept {
        /// What showed it.
        evidence: String,
    },
    /// Checking whether the connection keeps its server session failed.
    #[error("checking that the connection keeps its own server session failed")]
    SessionCheck {
        /// The failed query.
        source: tokio_postgres::Error,
    },
    /// The server refused the connection for another reason.
    #[error("the database at {target} refused the connection")]
    Refused {
        /// The redacted target.
        target: String,
        /// The server's error.
        source: tokio_postgres::Error,
    },
}

/// Why a server certificate was not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The certificate does not name the host connected to.
    WrongHostName {
        /// The host name that was expected.
        expected: String,
    },
    /// The certificate chain does not end at a trusted root (sslrootcert).
    UnknownCa,
    /// The certificate was revoked.
    Revoked,
    /// Anything else rustls reports.
    Other(String),
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateProblem::Expired => f.write_str("it has expired"),
            CertificateProblem::NotYetValid => f.write_str("it is not valid yet"),
            CertificateProblem::WrongHostName { expected } => {
                write!(f, "it is not valid for the host name {expected:?}")
            }
            CertificateProblem::UnknownCa => f.write_str(
                "it is not signed by a trusted certificate authority (check sslrootcert)",
            ),
            CertificateProblem::Revoked => f.write_str("it has been revoked"),
            CertificateProblem::Other(reason) => f.write_str(reason),
        }
    }
}

impl Error {
    /// Whether trying again later may succeed: the server was unreachable
    /// or not accepting connections yet.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// Classifies a failed connection attempt to the server at `target`
    /// (redacted), as user `user` to database `dbname`.
    pub fn from_connect(
        error: tokio_postgres::Error,
        target: &str,
        user: &str,
        dbname: &str,
        sslmode: &str,
    ) -> Error {
        let target = target.to_string();
        if let Some(db) = error.as_db_error() {
            let code = db.code();
            return if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && (db.message().contains("no encryption") || db.message().contains("SSL off"))
            {
                Error::TlsRequired {
                    target,
                    source: error,
                }
            } else if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                Error::BadCredentials {
                    target,
                    user: user.to_string(),
                    source: error,
                }
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                Error::DatabaseMissing {
                    target,
                    dbname: dbname.to_string(),
                    source: error,
                }
            } else if *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::TOO_MANY_CONNECTIONS
            {
                Error::Unreachable {
                    target,
                    source: error,
                }
            } else {
                Error::Refused {
                    target,
                    source: error,
                }
            };
        }
        if let Some(rustls_error) = find_rustls_error(&error) {
            return match certificate_problem(rustls_error) {
                Some(problem) => Error::CertificateNotTrusted {
                    target,
                    problem,
                    source: error,
                },
                None => Error::Tls {
                    target,
                    source: error,
                },
            };
        }
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        if cause.as_deref() == Some("server does not support TLS") {
            return Error::TlsUnsupported {
                target,
                sslmode: sslmode.to_string(),
            };
        }
        if error
            .to_string()
            .starts_with("error performing TLS handshake")
        {
            return Error::Tls {
                target,
                source: error,
            };
        }
        Error::Unreachable {
            target,
            source: error,
        }
    }
}

/// The rustls error somewhere in the chain; `io::Error` hides its inner
/// error from `source()`, so it is looked into by hand.
fn find_rustls_error(error: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

fn certificate_problem(error: &rustls::Error) -> Option<CertificateProblem> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(certificate) = error else {
        return None;
    };
    Some(match certificate {
        C::Expired | C::ExpiredContext { .. } => CertificateProblem::Expired,
        C::NotValidYet | C::NotValidYetContext { .. } => CertificateProblem::NotYetValid,
        C::NotValidForName => CertificateProblem::WrongHostName {
            expected: String::new(),
        },
        C::NotValidForNameContext { expected, .. } => CertificateProblem::WrongHostName {
            expected: expected.to_str().into_owned(),
        },
        C::UnknownIssuer => CertificateProblem::UnknownCa,
        C::Revoked => CertificateProblem::Revoked,
        other => CertificateProblem::Other(format!("{other:?}")),
    })
}
