//! A minimal OTLP/HTTP receiver on a loopback port, for runs with telemetry
//! on: it answers every POST with 200 and counts what arrived, by path.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::Result;

/// Requests received by path (`/v1/traces`, `/v1/metrics`), with the bytes they carried.
pub type Received = Arc<Mutex<BTreeMap<String, (usize, usize)>>>;

/// Starts a minimal OTLP/HTTP receiver on a free loopback port: it answers
/// every POST with 200 and counts what it got.
pub fn receiver() -> Result<(String, Received)> {
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
