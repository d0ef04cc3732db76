//! Steady reads and writes against the core tables, measuring how long any
//! request waited or failed: the downtime a schema change causes.
//!
//! Shared by `tests/rollback_window.rs` and the `steady_load` example that
//! `cargo xtask measure-window` runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// One kind of request, issued in a loop by one task on its own connection.
#[derive(Debug, Clone, Copy)]
struct Request {
    name: &'static str,
    sql: &'static str,
}

/// The requests: an API gateway's hot path (authenticate a key, look up the
/// user and organization, record usage) and a dashboard's usage query.
const REQUESTS: &[Request] = &[
    Request {
        name: "read organizations",
        sql: "SELECT id, slug, status FROM organizations WHERE id = $1",
    },
    Request {
        name: "read users",
        sql: "SELECT id, email, role FROM users WHERE id = $1",
    },
    Request {
        name: "write users",
        sql: "UPDATE users SET display_name = 'load ' || $1::bigint::text WHERE id = $1",
    },
    Request {
        name: "read api_keys",
        sql: "SELECT id, organization_id, scopes FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
    },
    Request {
        name: "write api_keys",
        sql: "UPDATE api_keys SET last_used_at = greatest(now(), created_at) WHERE id = $1",
    },
    Request {
        name: "write usage_events",
        sql: "INSERT INTO usage_events (organization_id, model_id, request_id, status, input_tokens, \
              output_tokens, cost_micros, latency_ms, occurred_at) \
              SELECT $1, min(id), gen_random_uuid(), 'ok', 100, 200, 300, 40, now() FROM models",
    },
    Request {
        name: "read usage_events",
        sql: "SELECT count(*), coalesce(sum(cost_micros), 0)::bigint FROM usage_events \
              WHERE organization_id = $1 AND occurred_at >= now() - interval '1 hour'",
    },
];

/// What one task saw.
#[derive(Debug, Clone)]
pub struct TaskReport {
    /// The request it issued.
    pub name: &'static str,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// The longest time from the start of a request until a request of the
    /// task next succeeded: a slow request's latency, or a run of failures
    /// up to the first success after them.
    pub longest_stall: Duration,
    /// The median latency of the successful requests.
    pub median: Duration,
    /// The first error, for the report.
    pub first_error: Option<String>,
}

/// All tasks' reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// One per task.
    pub tasks: Vec<TaskReport>,
}

impl Report {
    /// The task that stalled longest.
    pub fn worst(&self) -> &TaskReport {
        self.tasks
            .iter()
            .max_by_key(|task| task.longest_stall)
            .expect("a load has tasks")
    }
}

/// A running load.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<TaskReport>>,
}

impl Load {
    /// Connects one task per request kind to `url` and starts them, pausing
    /// `pause` between two requests of a task. Ids are drawn from those
    /// present when the load starts.
    pub async fn start(url: &str, pause: Duration) -> Result<Load, tokio_postgres::Error> {
        let client = connect(url).await?;
        let max_id = |table: &str| format!("SELECT coalesce(max(id), 1) FROM {table}");
        let mut ids = Vec::new();
        for table in ["organizations", "users", "api_keys"] {
            ids.push(
                client
                    .query_one(&max_id(table), &[])
                    .await?
                    .get::<_, i64>(0),
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (i, request) in REQUESTS.iter().enumerate() {
            let max = if request.name.contains("users") {
                ids[1]
            } else if request.name.contains("api_keys") {
                ids[2]
            } else {
                ids[0]
            };
            let client = connect(url).await?;
            let stop = Arc::clone(&stop);
            let url = url.to_string();
            tasks.push(tokio::spawn(run(
                *request,
                client,
                url,
                max,
                pause,
                i as u64 + 1,
                stop,
            )));
        }
        Ok(Load { stop, tasks })
    }

    /// Stops every task and gathers what they saw.
    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut tasks = Vec::new();
        for task in self.tasks {
            tasks.push(task.await.expect("a load task does not panic"));
        }
        Report { tasks }
    }
}

/// Connects through pgconn's TLS connector, as dbops does: the URL's sslmode counts.
async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let config = pgconn::ConnConfig::parse(url).expect("the load's database URL is valid");
    let tls = config
        .tls_connector()
        .expect("the database URL's TLS settings are usable");
    let (client, connection) = config
        .tokio_postgres_config("dbops steady load")
        .connect(tls)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
        .batch_execute("SET application_name = 'dbops steady load'")
        .await?;
    Ok(client)
}

async fn run(
    request: Request,
    mut client: Client,
    url: String,
    max_id: i64,
    pause: Duration,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> TaskReport {
    let mut random = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut report = TaskReport {
        name: request.name,
        succeeded: 0,
        failed: 0,
        longest_stall: Duration::ZERO,
        median: Duration::ZERO,
        first_error: None,
    };
    let mut latencies = Vec::new();
    let mut stalled_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        // xorshift64: ids spread over the table without a dependency.
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let id = 1 + (random % max_id.max(1) as u64) as i64;
        let started = Instant::now();
        match client.query(request.sql, &[&id]).await {
            Ok(_) => {
                let latency = started.elapsed();
                latencies.push(latency);
                report.succeeded += 1;
                let stall = stalled_since
                    .take()
                    .map_or(latency, |since| since.elapsed());
                report.longest_stall = report.longest_stall.max(stall);
            }
            Err(e) => {
                report.failed += 1;
                stalled_since.get_or_insert(started);
                if report.first_error.is_none() {
                    let detail = e
                        .as_db_error()
                        .map_or(e.to_string(), |db| db.message().to_string());
                    report.first_error = Some(detail);
                }
                if client.is_closed()
                    && let Ok(fresh) = connect(&url).await
                {
                    client = fresh;
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
    if let Some(since) = stalled_since {
        // Never recovered: the stall lasted until the end.
        report.longest_stall = report.longest_stall.max(since.elapsed());
    }
    latencies.sort();
    report.median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    report
}
