//! Smoke step: roll the newest migration back and apply it again with
//! telemetry on (an in-process OTLP/HTTP receiver), then show the health
//! probe and check the audit chain, as an operator watching a change would.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use super::Context;
use crate::{Result, cmd};

/// Requests received by path, with the bytes they carried.
type Received = Arc<Mutex<BTreeMap<String, (usize, usize)>>>;

pub fn run(ctx: &Context) -> Result {
    let (endpoint, received) = receiver()?;
    eprintln!("smoke: OTLP/HTTP receiver at {endpoint}");
    let with_telemetry = |args: &[&str]| -> Result {
        let mut dbops = ctx.dbops();
        dbops
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("DBOPS_ACTOR", "xtask-smoke")
            .args(args);
        if let Some(env) = &ctx.env {
            dbops.args(["--env", env, "--yes"]);
        }
        cmd::run(&mut dbops)
    };
    with_telemetry(&["migrate", "down", "--steps", "1"])?;
    with_telemetry(&["migrate", "up"])?;

    let received = received
        .lock()
        .map_err(|_| "the OTLP receiver panicked")?
        .clone();
    for (path, (requests, bytes)) in &received {
        eprintln!("smoke: OTLP {path}: {requests} request(s), {bytes} bytes");
    }
    for path in ["/v1/traces", "/v1/metrics"] {
        if received.get(path).is_none_or(|(_, bytes)| *bytes == 0) {
            return Err(format!("no telemetry arrived at {path}: {received:?}").into());
        }
    }

    let health = cmd::read(ctx.dbops().args(["health", "--json"]))?;
    eprintln!("smoke: dbops health --json\n{health}");
    if !health.contains("\"ready\": true") {
        return Err(format!("dbops health does not report ready:\n{health}").into());
    }
    let audit = cmd::read(ctx.dbops().args(["audit", "verify"]))?;
    eprint!("smoke: dbops audit verify\n{audit}");
    Ok(())
}

/// Starts a minimal OTLP/HTTP receiver on a free loopback port: it answers
/// every POST with 200 and counts what it got.
fn receiver() -> Result<(String, Received)> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding the OTLP receiver: {e}"))?;
    let endpoint = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || {
                let Ok(mut writer) = stream.try_clone() else {
                    return;
                };
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
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(mut sink) = sink.lock() {
                        let entry = sink.entry(path).or_default();
                        entry.0 += 1;
                        entry.1 += length;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if writer.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((endpoint, received))
}
