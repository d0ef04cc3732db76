//! A steady load of short reads and writes against the core tables of the
//! database named by `DB_URL`, run until stdin closes; then prints, per
//! request kind, how long any request waited or failed.
//!
//! `cargo xtask measure-window` runs it (release build) around a rollback
//! and re-apply of the newest migration. Output, tab-separated: `ready` once
//! the load runs; then one `task` line per request kind (name, succeeded,
//! failed, longest stall in ms, median latency in ms, first error) and a
//! last `longest_stall_ms` line (milliseconds, request kind).

mod load;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(url) = std::env::var("DB_URL") else {
        eprintln!("steady_load: set DB_URL to the database to load");
        return ExitCode::FAILURE;
    };
    let pause = std::env::var("STEADY_LOAD_PAUSE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_millis(5), Duration::from_millis);
    let load = match load::Load::start(&url, pause).await {
        Ok(load) => load,
        Err(e) => {
            eprintln!("steady_load: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ready");
    let _ = std::io::stdout().flush();
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    let report = load.stop().await;
    for task in &report.tasks {
        println!(
            "task\t{}\t{}\t{}\t{:.1}\t{:.2}\t{}",
            task.name,
            task.succeeded,
            task.failed,
            task.longest_stall.as_secs_f64() * 1000.0,
            task.median.as_secs_f64() * 1000.0,
            task.first_error
                .as_deref()
                .unwrap_or("")
                .replace(['\t', '\n'], " ")
        );
    }
    let worst = report.worst();
    println!(
        "longest_stall_ms\t{:.1}\t{}",
        worst.longest_stall.as_secs_f64() * 1000.0,
        worst.name
    );
    ExitCode::SUCCESS
}
