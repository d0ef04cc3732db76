//! Logging on standard error: human-readable or JSON lines.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;

use crate::opt::{Global, LogFormat};

/// Keeps telemetry alive for the run; dropping it flushes.
#[derive(Debug)]
pub struct Telemetry;

/// Installs the process's subscriber. `RUST_LOG` overrides the default `info` level.
pub fn init(global: &Global) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match global.log_format {
        LogFormat::Human => tracing::subscriber::set_global_default(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_target(false),
            ),
        ),
        LogFormat::Json => tracing::subscriber::set_global_default(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    if let Err(e) = result {
        eprintln!("warning: logging is not set up: {e}");
    }
    Telemetry
}
