//! Logs on standard error and, when an OTLP endpoint is configured, traces and metrics over OTLP.
//!
//! Libraries only emit `tracing` spans and events; this module is the one
//! place that decides where they go. With no endpoint in the environment
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`) or in `configs/migrate.toml`, no exporter
//! is built and nothing but the log layer runs.

mod human;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetryConfig;
use crate::opt::{Global, LogFormat};

/// The target of events that carry metrics rather than log lines.
pub const METRICS_TARGET: &str = "dbops_metrics";

/// The name of the span around each hook's check (migrate-core's).
const HOOK_SPAN: &str = "migrate.hook";

/// Whether the log shows spans and events of this callsite: everything the
/// level filter lets through but the hooks' spans. Those go to the trace
/// exporter; in the log, each migration's line and its findings already
/// say what the hooks found, and formatting a dozen more spans per migration
/// was a good part of the client's work between two migrations.
fn logged(metadata: &tracing::Metadata<'_>) -> bool {
    !(metadata.is_span() && metadata.name() == HOOK_SPAN)
}

/// The exporters of a run; dropping it flushes and stops them.
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: flushing traces failed: {e}");
        }
        if let Some(provider) = self.meter_provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: flushing metrics failed: {e}");
        }
    }
}

/// Which OTLP transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Grpc,
    HttpProtobuf,
}

/// Where to export, if anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sink {
    /// The endpoint from the configuration file; `None` when the environment
    /// names it (the exporter reads the variable itself, signal paths included).
    configured_endpoint: Option<String>,
    protocol: Protocol,
}

fn sink(
    config: &TelemetryConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Sink>, String> {
    let from_env = env("OTEL_EXPORTER_OTLP_ENDPOINT")
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .filter(|v| !v.is_empty());
    let configured_endpoint = match from_env {
        Some(_) => None,
        None => match &config.otlp_endpoint {
            Some(endpoint) if !endpoint.is_empty() => Some(endpoint.clone()),
            _ => return Ok(None),
        },
    };
    let protocol = match env("OTEL_EXPORTER_OTLP_PROTOCOL")
        .or_else(|| config.otlp_protocol.clone())
        .as_deref()
    {
        None | Some("http/protobuf") => Protocol::HttpProtobuf,
        Some("grpc") => Protocol::Grpc,
        Some(other) => {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL (or telemetry.otlp_protocol) is {other:?}; dbops supports \"grpc\" and \"http/protobuf\""
            ));
        }
    };
    Ok(Some(Sink {
        configured_endpoint,
        protocol,
    }))
}

/// Installs the process's subscriber. `RUST_LOG` overrides the default `info` level for logs.
///
/// Must be called inside the Tokio runtime: the gRPC exporter needs it.
pub fn init(global: &Global, config: &TelemetryConfig) -> Result<Telemetry, String> {
    // opentelemetry-otlp's HTTP exporter builds a reqwest client, whose
    // rustls backend (enabled for rollup-clickhouse, which brings its own
    // configuration) takes the process-wide crypto provider and panics
    // without one. Install ring, the provider pgconn uses; a provider
    // installed before us stays.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = || {
        let base = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        base.add_directive(
            format!("{METRICS_TARGET}=off")
                .parse()
                .expect("a valid directive"),
        )
    };
    let log_layer = match global.log_format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .fmt_fields(human::SpanFields)
            .event_format(human::HumanFormat)
            .with_writer(std::io::stderr)
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .with_filter(filter().and(filter_fn(logged)))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .with_filter(filter().and(filter_fn(logged)))
            .boxed(),
    };
    let mut telemetry = Telemetry::default();
    let mut otel_layers = Vec::new();
    if let Some(sink) = sink(config, |name| std::env::var(name).ok())? {
        let resource = Resource::builder()
            .with_service_name(
                config
                    .service_name
                    .clone()
                    .unwrap_or_else(|| "dbops".to_string()),
            )
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let spans =
            span_exporter(&sink).map_err(|e| format!("building the OTLP span exporter: {e}"))?;
        let tracer_provider = SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource.clone())
            .build();
        let metrics = metric_exporter(&sink)
            .map_err(|e| format!("building the OTLP metric exporter: {e}"))?;
        let meter_provider = SdkMeterProvider::builder()
            .with_periodic_exporter(metrics)
            .with_resource(resource)
            .build();
        let tracer = tracer_provider.tracer("dbops");
        let level = tracing_subscriber::filter::LevelFilter::INFO;
        otel_layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(level)
                .boxed(),
        );
        otel_layers.push(
            tracing_opentelemetry::MetricsLayer::new(meter_provider.clone())
                .with_filter(level)
                .boxed(),
        );
        telemetry.tracer_provider = Some(tracer_provider);
        telemetry.meter_provider = Some(meter_provider);
    }
    // An empty `Vec` of layers would answer "never" for every callsite and
    // silence the log layer too; `None` is a true no-op.
    let otel_layers = (!otel_layers.is_empty()).then_some(otel_layers);
    let subscriber = tracing_subscriber::registry()
        .with(log_layer)
        .with(otel_layers);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| format!("installing the log subscriber: {e}"))?;
    Ok(telemetry)
}

fn span_exporter(
    sink: &Sink,
) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    match sink.protocol {
        Protocol::Grpc => {
            let mut builder = builder.with_tonic();
            if let Some(endpoint) = &sink.configured_endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            builder.build()
        }
        Protocol::HttpProtobuf => {
            let mut builder = builder
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            if let Some(endpoint) = &sink.configured_endpoint {
                builder =
                    builder.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
            }
            builder.build()
        }
    }
}

fn metric_exporter(
    sink: &Sink,
) -> Result<opentelemetry_otlp::MetricExporter, opentelemetry_otlp::ExporterBuildError> {
    let builder = opentelemetry_otlp::MetricExporter::builder();
    match sink.protocol {
        Protocol::Grpc => {
            let mut builder = builder.with_tonic();
            if let Some(endpoint) = &sink.configured_endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            builder.build()
        }
        Protocol::HttpProtobuf => {
            let mut builder = builder
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            if let Some(endpoint) = &sink.configured_endpoint {
                builder =
                    builder.with_endpoint(format!("{}/v1/metrics", endpoint.trim_end_matches('/')));
            }
            builder.build()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        config_endpoint: Option<&str>,
        env: &[(&str, &str)],
        expected: Result<Option<Sink>, &str>,
    ) {
        let config = TelemetryConfig {
            otlp_endpoint: config_endpoint.map(str::to_string),
            ..TelemetryConfig::default()
        };
        let got = sink(&config, |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        });
        match expected {
            Ok(expected) => assert_eq!(got, Ok(expected)),
            Err(fragment) => assert!(got.unwrap_err().contains(fragment)),
        }
    }

    #[test]
    fn no_endpoint_means_no_exporter() {
        check(None, &[], Ok(None));
        check(None, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")], Ok(None));
    }

    #[test]
    fn the_environment_wins_and_http_protobuf_is_the_default() {
        check(
            Some("http://config:4318"),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")],
            Ok(Some(Sink {
                configured_endpoint: None,
                protocol: Protocol::HttpProtobuf,
            })),
        );
        check(
            Some("http://config:4317"),
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            Ok(Some(Sink {
                configured_endpoint: Some("http://config:4317".into()),
                protocol: Protocol::Grpc,
            })),
        );
        check(
            Some("http://c"),
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
            Err("\"http/json\""),
        );
    }
}
