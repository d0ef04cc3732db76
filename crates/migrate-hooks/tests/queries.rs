//! What the standard checks send PostgreSQL per migration, counted on the
//! wire: a proxy between the checks' connection and the server reads every
//! message the client sends and counts the statements it prepares (`Parse`)
//! and runs (`Execute`, and simple `Query`).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use migrate_core::hooks::{Finding, Hook, Outcome, Statements};
use migrate_hooks::HooksConfig;
use support::context;
use testdb::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::Client;

/// The messages a client sent so far.
#[derive(Debug, Default)]
struct Sent {
    parsed: AtomicUsize,
    executed: AtomicUsize,
}

/// How many statements were prepared and run between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    parsed: usize,
    executed: usize,
}

impl Sent {
    fn counts(&self) -> Counts {
        Counts {
            parsed: self.parsed.load(Ordering::SeqCst),
            executed: self.executed.load(Ordering::SeqCst),
        }
    }

    fn since(&self, earlier: Counts) -> Counts {
        let now = self.counts();
        Counts {
            parsed: now.parsed - earlier.parsed,
            executed: now.executed - earlier.executed,
        }
    }

    /// Reads the frontend messages in `bytes`, the start of `pending` being
    /// an incomplete message of the previous read.
    fn read(&self, pending: &mut Vec<u8>, started: &mut bool, bytes: &[u8]) {
        pending.extend_from_slice(bytes);
        loop {
            // The startup message (and an SSL or GSS encryption request
            // before it) has a length but no type byte.
            let (kind, header) = if *started {
                (pending.first().copied(), 1)
            } else {
                (None, 0)
            };
            let Some(length) = pending.get(header..header + 4) else {
                return;
            };
            let length = u32::from_be_bytes(length.try_into().unwrap()) as usize;
            if pending.len() < header + length {
                return;
            }
            match kind {
                Some(b'P') => {
                    self.parsed.fetch_add(1, Ordering::SeqCst);
                }
                Some(b'E' | b'Q') => {
                    self.executed.fetch_add(1, Ordering::SeqCst);
                }
                Some(_) => {}
                None => {
                    let code = u32::from_be_bytes(pending[4..8].try_into().unwrap());
                    *started = code != 80877103 && code != 80877104;
                }
            }
            pending.drain(..header + length);
        }
    }
}

/// Relays one connection to `upstream`, counting what the client sends.
async fn counting_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Sent>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(Sent::default());
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
        let mut chunk = vec![0; 64 * 1024];
        let mut pending = Vec::new();
        let mut started = false;
        loop {
            let n = client_read.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            counter.read(&mut pending, &mut started, &chunk[..n]);
            if server_write.write_all(&chunk[..n]).await.is_err() {
                return;
            }
        }
    });
    (addr, sent)
}

/// A connection to `db` through a counting proxy.
async fn counted_connection(db: &TestDb) -> (Client, Arc<Sent>) {
    let config: tokio_postgres::Config = db.url().parse().unwrap();
    let upstream = match (&config.get_hosts()[0], config.get_ports().first()) {
        (tokio_postgres::config::Host::Tcp(host), port) => {
            tokio::net::lookup_host((host.as_str(), port.copied().unwrap_or(5432)))
                .await
                .unwrap()
                .next()
                .unwrap()
        }
        (host, _) => panic!("DB_URL must name a TCP host, not {host:?}"),
    };
    let (addr, sent) = counting_proxy(upstream).await;
    let mut proxied = tokio_postgres::Config::new();
    proxied
        .host(addr.ip().to_string())
        .port(addr.port())
        .dbname(config.get_dbname().unwrap())
        .user(config.get_user().unwrap());
    if let Some(password) = config.get_password() {
        proxied.password(password);
    }
    let (client, connection) = proxied.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    (client, sent)
}

/// What the checks sent before and after one migration, and their findings.
struct Checked {
    before: Counts,
    after: Counts,
    findings: Vec<Finding>,
}

/// Runs `sql` between the hook's before- and after-check, as the engine
/// runs a transactional migration, counting what each check sends.
async fn check(
    client: &Client,
    sent: &Sent,
    statements: &Statements,
    hook: &dyn Hook,
    sql: &str,
) -> Checked {
    let ctx = context(client, statements, sql);
    let start = sent.counts();
    let prepared = hook.before(&ctx).await.expect("before-check runs");
    let before = sent.since(start);
    client.batch_execute("BEGIN").await.unwrap();
    client.batch_execute(sql).await.expect("the migration runs");
    let outcome = Outcome {
        succeeded: true,
        duration: std::time::Duration::from_millis(1),
        error: None,
    };
    let start = sent.counts();
    let mut findings = prepared.findings.clone();
    findings.extend(
        hook.after(&ctx, &prepared, &outcome)
            .await
            .expect("after-check runs"),
    );
    let after = sent.since(start);
    client.batch_execute("COMMIT").await.unwrap();
    Checked {
        before,
        after,
        findings,
    }
}

fn standard_hook() -> Arc<dyn Hook> {
    migrate_hooks::standard_hooks(&HooksConfig::default())
        .pop()
        .unwrap()
}

#[tokio::test]
async fn a_migration_touching_several_tables_sends_one_query_before_and_one_after() {
    let db = TestDb::new().await;
    db.connect()
        .await
        .batch_execute(
            "CREATE TABLE organizations (id int PRIMARY KEY);
             CREATE TABLE users (id int PRIMARY KEY, organization_id int);
             CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
             CREATE TABLE events_p1 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2025-02-01');
             INSERT INTO organizations SELECT generate_series(1, 3);
             INSERT INTO users SELECT g, 1 + g % 3 FROM generate_series(1, 20) g;
             INSERT INTO events SELECT g, '2025-01-05' FROM generate_series(1, 5) g;",
        )
        .await
        .unwrap();
    let (client, sent) = counted_connection(&db).await;
    let statements = Statements::default();
    let hook = standard_hook();

    let migration = "ALTER TABLE users ADD CONSTRAINT users_organization_id_fkey
                         FOREIGN KEY (organization_id) REFERENCES organizations (id) NOT VALID;
                     ALTER TABLE users ALTER COLUMN id TYPE bigint;
                     INSERT INTO organizations VALUES (4);
                     DELETE FROM events WHERE id > 3;";
    let checked = check(&client, &sent, &statements, &*hook, migration).await;
    let hooks: Vec<&str> = checked.findings.iter().map(|f| f.hook.as_str()).collect();
    assert_eq!(
        hooks,
        [
            "row-counts",
            "row-counts",
            "row-counts",
            "table-rewrites",
            "not-valid-constraints"
        ],
        "{:#?}",
        checked.findings
    );
    let messages: Vec<&str> = checked
        .findings
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        messages[..3],
        [
            "events: 5 → 3 rows (-2, exact count)",
            "organizations: 3 → 4 rows (+1, exact count)",
            "users: 20 → 20 rows (unchanged, exact count)",
        ]
    );
    assert!(
        messages[3].starts_with("users was rewritten"),
        "{messages:#?}"
    );
    assert!(
        messages[4].contains("users_organization_id_fkey on users was left NOT VALID"),
        "{messages:#?}"
    );
    // The first migration on the connection prepares the two statements.
    assert_eq!(
        checked.before,
        Counts {
            parsed: 1,
            executed: 1
        }
    );
    assert_eq!(
        checked.after,
        Counts {
            parsed: 1,
            executed: 1
        }
    );

    // Later migrations run them again, prepared.
    let checked = check(
        &client,
        &sent,
        &statements,
        &*hook,
        "UPDATE users SET organization_id = 4 WHERE id = 1; INSERT INTO events VALUES (9, '2025-01-09');",
    )
    .await;
    // Two row counts, and the constraint still NOT VALID.
    assert_eq!(checked.findings.len(), 3, "{:#?}", checked.findings);
    assert_eq!(
        checked.before,
        Counts {
            parsed: 0,
            executed: 1
        }
    );
    assert_eq!(
        checked.after,
        Counts {
            parsed: 0,
            executed: 1
        }
    );
}

#[tokio::test]
async fn a_migration_touching_only_tables_it_creates_sends_no_query() {
    let db = TestDb::new().await;
    let (client, sent) = counted_connection(&db).await;
    let statements = Statements::default();
    let checked = check(
        &client,
        &sent,
        &statements,
        &*standard_hook(),
        "CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL);
         CREATE INDEX teams_name_idx ON teams (name);
         INSERT INTO teams VALUES (1, 'core');
         CREATE TABLE members (team_id int REFERENCES teams (id), name text);",
    )
    .await;
    assert!(checked.findings.is_empty(), "{:#?}", checked.findings);
    assert_eq!(
        checked.before,
        Counts {
            parsed: 0,
            executed: 0
        }
    );
    assert_eq!(
        checked.after,
        Counts {
            parsed: 0,
            executed: 0
        }
    );
}
