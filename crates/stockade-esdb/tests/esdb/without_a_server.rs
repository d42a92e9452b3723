//! What the backend does when no server answers: every call ends by its deadline with a
//! clear "unavailable" error, subscriptions keep trying quietly, and dropping the store
//! inside async code is fine. Uses a closed port on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use stockade_esdb::{EsdbConfig, EsdbStore};
use stockade_store::{EventData, EventStore, ExpectedRevision, Position, StoreError, StreamName};

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A store that dials a closed port (two discovery attempts: the client's first attempt
/// only picks the node, the second dials it).
fn unreachable_config() -> EsdbConfig {
    EsdbConfig::new(format!(
        "esdb://127.0.0.1:{}?tls=false&maxDiscoverAttempts=2&discoveryInterval=50",
        closed_port()
    ))
    .deadline(Duration::from_millis(1500))
}

fn an_event() -> EventData {
    EventData {
        event_id: uuid::Uuid::new_v4(),
        event_type: "StockReserved".into(),
        data: vec![0x80],
        metadata: vec![0x80],
        index: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_fails_clearly_within_the_deadline() {
    let started = Instant::now();
    let err = EsdbStore::connect(unreachable_config()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        err.to_string().contains("cannot reach EventStoreDB"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_with_no_server_is_unavailable_not_a_hang_or_a_panic() {
    let store = EsdbStore::open(unreachable_config()).unwrap();
    let stream = StreamName::new("sku-A").unwrap();
    let started = Instant::now();
    let err = store
        .append(&stream, ExpectedRevision::NoStream, vec![an_event()])
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    // Requests that could never succeed are refused before any I/O.
    let err = store
        .append(&stream, ExpectedRevision::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)));
    // Dropped inside a runtime: the store's own runtime shuts down without blocking.
    drop(store);
}

/// The client gives up for good after one failed connection attempt; the store must then
/// build a new one, or the store would never work again once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_connection_the_next_call_tries_again_with_a_new_client() {
    let store = EsdbStore::open(unreachable_config()).unwrap();
    let stream = StreamName::new("sku-B").unwrap();
    for attempt in 0..3 {
        let err = store
            .read_stream(&stream, 0, 10)
            .await
            .unwrap_err()
            .to_string();
        // A spent client answers "Connection is closed." without trying; a new one dials.
        assert!(
            !err.contains("Connection is closed"),
            "attempt {attempt}: {err}"
        );
        assert!(
            err.contains("gRPC connection error"),
            "attempt {attempt}: {err}"
        );
        tokio::time::sleep(store.config().reconnect_min + Duration::from_millis(50)).await;
    }
    let err = store
        .append(&stream, ExpectedRevision::NoStream, vec![an_event()])
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("Connection is closed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_ends_its_subscriptions() {
    let store = EsdbStore::open(unreachable_config()).unwrap();
    let mut subscription = store.subscribe_all(Position::START);
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(store);
    let ended = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the subscription should end once the store is dropped");
    assert!(ended.is_none(), "{:?}", ended.map(|r| r.map(|_| ())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_keeps_retrying_quietly_until_dropped() {
    let store = EsdbStore::open(unreachable_config()).unwrap();
    let mut subscription = store.subscribe_all(Position::START);
    // A server that is away is not an error for a subscription: it waits and reconnects.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), subscription.next()).await;
    assert!(
        quiet.is_err(),
        "expected nothing yet, got {:?}",
        quiet.map(|e| e.map(|r| r.map(|_| ())))
    );
    drop(subscription);
    drop(store);
}

#[test]
fn a_bad_url_is_refused_before_connecting() {
    let err = EsdbStore::open(EsdbConfig::new("postgres://localhost")).unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err}");
}
