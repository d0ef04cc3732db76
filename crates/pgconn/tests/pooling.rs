//! `check_session_kept` against the server directly and through a real PgBouncer in each pooling mode.

use testdb::{PgBouncer, PoolMode, TestDb};

async fn connect(url: &str) -> tokio_postgres::Client {
    let config = pgconn::ConnConfig::parse(url).unwrap();
    pgconn::connect(&config, "dbops pooling test")
        .await
        .unwrap()
        .0
}

/// The check's verdict on two connections to `url`.
async fn check(url: &str) -> Result<(), pgconn::Error> {
    let first = connect(url).await;
    let second = connect(url).await;
    pgconn::check_session_kept(&first, Some(&second)).await
}

#[tokio::test]
async fn a_direct_connection_and_session_pooling_keep_their_session() {
    let db = TestDb::new().await;
    check(db.url()).await.unwrap();
    let bouncer = PgBouncer::start(PoolMode::Session);
    check(&bouncer.url_for(db.name())).await.unwrap();
}

#[tokio::test]
async fn transaction_pooling_hands_the_session_to_another_client() {
    let db = TestDb::new().await;
    let bouncer = PgBouncer::start(PoolMode::Transaction);
    let error = check(&bouncer.url_for(db.name())).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, pgconn::Error::SessionNotKept { .. }),
        "{message}"
    );
    assert!(
        message.contains("a second connection was handed the same server session"),
        "{message}"
    );
    assert!(
        message.contains(
            "connect to the server directly, or through the pooler in session pooling mode"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn transaction_pooling_that_resets_sessions_loses_the_setting() {
    let db = TestDb::new().await;
    // With a reset after every transaction, the second connection finds no
    // mark; the first finds its own gone.
    let bouncer = PgBouncer::start_with(PoolMode::Transaction, "server_reset_query_always = 1");
    let error = check(&bouncer.url_for(db.name())).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("its server session changed between two of its transactions")
            && message.contains("a session setting lost"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failed_check_query_is_its_own_error() {
    let db = TestDb::new().await;
    let first = connect(db.url()).await;
    let second = connect(db.url()).await;
    // A failed transaction makes every query fail until it ends.
    first.batch_execute("BEGIN; SELECT 1/0").await.unwrap_err();
    let error = pgconn::check_session_kept(&first, Some(&second))
        .await
        .unwrap_err();
    assert!(
        matches!(error, pgconn::Error::SessionCheck { .. }),
        "{error}"
    );
}
