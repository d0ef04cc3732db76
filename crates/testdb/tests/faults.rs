//! The fault proxy and the test-owned cluster do what tests of outages rely on.

use std::time::{Duration, Instant};

use testdb::{Cluster, FaultProxy, TestDb};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

async fn try_connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // A cut connection ends with an error; the client reports it.
        let _ = connection.await;
    });
    Ok(client)
}

async fn connect(url: &str) -> Client {
    try_connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

async fn count_rows(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn select_one(client: &Client) -> Result<i32, tokio_postgres::Error> {
    Ok(client.query_one("SELECT 1", &[]).await?.get(0))
}

/// A database with an empty table `t`, a direct connection to it and a
/// proxy in front of its server.
async fn table_t_behind_a_proxy() -> (TestDb, Client, FaultProxy) {
    let db = TestDb::new().await;
    let direct = db.connect().await;
    direct
        .batch_execute("CREATE TABLE t (x int)")
        .await
        .unwrap();
    let proxy = FaultProxy::in_front_of(db.url());
    (db, direct, proxy)
}

#[tokio::test]
async fn relays_queries() {
    let db = TestDb::new().await;
    let proxy = FaultProxy::in_front_of(db.url());
    let url = proxy.url_for(db.url());
    // The same URL, with the proxy's host and port, whatever the server's.
    assert!(url.contains(&format!("@{}/", proxy.addr())), "{url}");
    assert!(
        url.ends_with(&format!("/{}?sslmode=disable", db.name())),
        "{url}"
    );
    assert_ne!(url, db.url());
    let client = connect(&url).await;
    assert_eq!(select_one(&client).await.unwrap(), 1);
    assert_eq!(proxy.open_connections(), 1);
    assert_eq!(proxy.accepted_connections(), 1);
}

#[tokio::test]
async fn cut_all_closes_open_connections_and_new_ones_work() {
    let db = TestDb::new().await;
    let proxy = FaultProxy::in_front_of(db.url());
    let url = proxy.url_for(db.url());
    let client = connect(&url).await;
    select_one(&client).await.unwrap();

    proxy.cut_all();
    assert_eq!(proxy.open_connections(), 0);
    let error = select_one(&client).await.unwrap_err();
    assert!(
        error.is_closed(),
        "expected a closed connection, got {error:?}"
    );

    let again = connect(&url).await;
    assert_eq!(select_one(&again).await.unwrap(), 1);
}

#[tokio::test]
async fn a_blackout_refuses_connections_for_its_duration() {
    let db = TestDb::new().await;
    let proxy = FaultProxy::in_front_of(db.url());
    let url = proxy.url_for(db.url());
    let client = connect(&url).await;

    let duration = Duration::from_secs(1);
    let end = Instant::now() + duration;
    proxy.blackout(duration);
    assert!(select_one(&client).await.unwrap_err().is_closed());
    // Refused at once, not left hanging.
    let refused = tokio::time::timeout(Duration::from_secs(5), try_connect(&url))
        .await
        .expect("a refused connection fails at once");
    assert!(refused.is_err());
    assert!(
        Instant::now() < end,
        "the test ran slower than the blackout"
    );
    assert_eq!(proxy.refused_connections(), 1);

    tokio::time::sleep_until((end + Duration::from_millis(100)).into()).await;
    let after = connect(&url).await;
    assert_eq!(select_one(&after).await.unwrap(), 1);
}

#[tokio::test]
async fn cut_when_client_sends_commit_cuts_exactly_the_commit() {
    let (db, direct, proxy) = table_t_behind_a_proxy().await;
    let url = proxy.url_for(db.url());

    let mut client = connect(&url).await;
    let transaction = client.transaction().await.unwrap();
    let commit_cut = proxy.cut_when_client_sends(b"COMMIT");
    assert_eq!(
        transaction
            .execute("INSERT INTO t VALUES (1)", &[])
            .await
            .unwrap(),
        1
    );
    assert!(!commit_cut.fired(), "the INSERT does not match");
    let error = transaction.commit().await.unwrap_err();
    assert!(
        error.is_closed(),
        "expected a closed connection, got {error:?}"
    );
    assert!(commit_cut.fired());
    assert_eq!(
        count_rows(&direct, "t").await,
        0,
        "the server never saw COMMIT"
    );

    // The trigger fired once: the next COMMIT goes through.
    let mut again = connect(&url).await;
    let transaction = again.transaction().await.unwrap();
    transaction
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(count_rows(&direct, "t").await, 1);
}

#[tokio::test]
async fn cut_after_server_replies_to_commit_loses_only_the_acknowledgement() {
    let (db, direct, proxy) = table_t_behind_a_proxy().await;

    let mut client = connect(&proxy.url_for(db.url())).await;
    let transaction = client.transaction().await.unwrap();
    transaction
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .unwrap();
    let ack_cut = proxy.cut_after_server_replies_to(b"COMMIT");
    let error = transaction.commit().await.unwrap_err();
    assert!(
        error.is_closed(),
        "expected a closed connection, got {error:?}"
    );
    assert!(ack_cut.fired());
    assert_eq!(count_rows(&direct, "t").await, 1, "the server committed");
}

#[tokio::test]
async fn committed_data_survives_a_crash_of_the_cluster() {
    let mut cluster = Cluster::start_new();
    let client = connect(&cluster.url()).await;
    client
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
        .await
        .unwrap();

    cluster.stop_immediate();
    assert!(select_one(&client).await.is_err());
    assert!(try_connect(&cluster.url()).await.is_err());

    cluster.start();
    let after = connect(&cluster.url()).await;
    assert_eq!(count_rows(&after, "t").await, 2);
}

#[tokio::test]
async fn a_proxy_in_front_of_a_stopped_cluster_closes_its_connections() {
    let mut cluster = Cluster::start_new();
    let proxy = FaultProxy::start(cluster.addr());
    let url = proxy.url_for(&cluster.url());
    let client = connect(&url).await;

    cluster.restart();
    // The server said goodbye before closing, and the proxy relayed it.
    let error = select_one(&client).await.unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{error:?}");
    let after_restart = connect(&url).await;
    assert_eq!(select_one(&after_restart).await.unwrap(), 1);

    cluster.stop();
    let refused = tokio::time::timeout(Duration::from_secs(5), try_connect(&url))
        .await
        .expect("a connection to a stopped server fails at once");
    assert!(refused.is_err());
}
