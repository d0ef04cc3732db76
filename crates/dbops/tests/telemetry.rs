//! OpenTelemetry export: a real OTLP/HTTP receiver, in-process, receives the run's spans and metrics.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use assert_cmd::cargo::CommandCargoExt;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use testdb::TestDb;

mod support;

/// Every request body the receiver got, by path.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal OTLP/HTTP receiver: answers every POST with 200 and keeps the body.
fn start_receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    sink.lock().unwrap().push((path, body));
                    writer
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (endpoint, received)
}

fn string_attributes(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => s.clone(),
                Value::IntValue(i) => i.to_string(),
                Value::BoolValue(b) => b.to_string(),
                Value::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

#[tokio::test]
async fn spans_and_metrics_reach_an_otlp_receiver() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("202501010000_widgets.up.sql"), "CREATE TABLE widgets (id bigint GENERATED ALWAYS AS IDENTITY, CONSTRAINT widgets_pkey PRIMARY KEY (id));").unwrap();
    std::fs::write(
        dir.path().join("202501010000_widgets.down.sql"),
        "DROP TABLE widgets;",
    )
    .unwrap();
    let (endpoint, received) = start_receiver();

    let output = Command::cargo_bin("dbops")
        .unwrap()
        .env("DBOPS_CONFIG", support::standalone_config())
        .env("DB_URL", db.url())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20sekrit",
        )
        .args(["migrate", "up", "--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("sekrit"),
        "the OTLP header leaked into logs"
    );

    let received = received.lock().unwrap().clone();
    let mut spans = Vec::new();
    let mut metrics = Vec::new();
    for (path, body) in &received {
        match path.as_str() {
            "/v1/traces" => {
                let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                for resource in request.resource_spans {
                    let service = string_attributes(&resource.resource.unwrap().attributes);
                    assert_eq!(
                        service.get("service.name").map(String::as_str),
                        Some("dbops")
                    );
                    for scope in resource.scope_spans {
                        spans.extend(scope.spans);
                    }
                }
            }
            "/v1/metrics" => {
                let request = ExportMetricsServiceRequest::decode(body.as_slice()).unwrap();
                for resource in request.resource_metrics {
                    for scope in resource.scope_metrics {
                        metrics.extend(scope.metrics.into_iter().map(|m| m.name));
                    }
                }
            }
            other => panic!("unexpected OTLP path {other}"),
        }
    }

    let migration = spans
        .iter()
        .find(|s| s.name == "migrate.migration")
        .expect("a migrate.migration span");
    let attributes = string_attributes(&migration.attributes);
    assert_eq!(
        attributes.get("target").map(String::as_str),
        Some("operational")
    );
    assert_eq!(
        attributes.get("version").map(String::as_str),
        Some("202501010000")
    );
    assert_eq!(attributes.get("slug").map(String::as_str), Some("widgets"));
    assert_eq!(
        attributes.get("outcome").map(String::as_str),
        Some("succeeded")
    );
    assert!(
        attributes.contains_key("checksum") && attributes.contains_key("duration_ms"),
        "{attributes:?}"
    );
    // The audit chain's new head, published outside the database.
    let head = attributes
        .get("audit.head")
        .expect("an audit.head attribute");
    assert!(
        head.split_once(':')
            .is_some_and(|(seq, hash)| seq.parse::<i64>().is_ok() && hash.len() == 64),
        "{head}"
    );
    let run = spans
        .iter()
        .find(|s| s.name == "migrate.run")
        .expect("a migrate.run span");
    assert_eq!(
        migration.parent_span_id, run.span_id,
        "the migration span is a child of the run span"
    );
    assert_eq!(
        string_attributes(&run.attributes)
            .get("outcome")
            .map(String::as_str),
        Some("succeeded")
    );

    assert!(
        metrics.iter().any(|m| m == "dbops.migration.duration_ms"),
        "metrics: {metrics:?}"
    );
    assert!(
        metrics.iter().any(|m| m == "dbops.migrations"),
        "metrics: {metrics:?}"
    );
}

/// The `name=` of each field of a human log line, in order.
fn field_names(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .filter_map(|word| word.split_once('=').map(|(name, _)| name))
        .filter(|name| {
            name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
        .collect()
}

#[tokio::test]
async fn human_log_lines_carry_each_field_once() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    for (version, table) in [(202501010000u64, "widgets"), (202501010100, "gadgets")] {
        std::fs::write(
            dir.path().join(format!("{version}_{table}.up.sql")),
            format!("CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY, CONSTRAINT {table}_pkey PRIMARY KEY (id));"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(format!("{version}_{table}.down.sql")),
            format!("DROP TABLE {table};"),
        )
        .unwrap();
    }
    let dir = dir.path().to_str().unwrap();
    for args in [
        ["migrate", "up", "--dir", dir],
        ["migrate", "down", "--dir", dir],
    ] {
        let output = Command::cargo_bin("dbops")
            .unwrap()
            .env("DBOPS_CONFIG", support::standalone_config())
            .env("DB_URL", db.url())
            .env("RUST_LOG", "info,migrate_core=debug,migrate_hooks=debug")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let in_a_migration: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("migrate.run:migrate.migration: "))
            .collect();
        assert!(
            !in_a_migration.is_empty(),
            "no line logged inside a migration's span:\n{stderr}"
        );
        for line in stderr.lines() {
            let names = field_names(line);
            let mut seen = std::collections::HashSet::new();
            let repeated: Vec<&str> = names.iter().copied().filter(|n| !seen.insert(*n)).collect();
            assert!(repeated.is_empty(), "{repeated:?} repeated in: {line}");
        }
        assert!(
            in_a_migration
                .iter()
                .any(|line| ["target", "direction", "version"]
                    .iter()
                    .all(|name| field_names(line).contains(name))),
            "the lines of a migration name its target, direction and version:\n{stderr}"
        );
    }
}
