//! Smoke step: roll the newest migration back and apply it again with
//! telemetry on (an in-process OTLP/HTTP receiver), then show the health
//! probe and check the audit chain, as an operator watching a change would.

use super::Context;
use crate::{Result, cmd, otlp};

pub fn run(ctx: &Context) -> Result {
    let (endpoint, received) = otlp::receiver()?;
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
    with_telemetry(&["migrate", "down", "--target", "operational", "--steps", "1"])?;
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
