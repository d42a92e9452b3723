//! The writer never checkpoints (that would stall the appends queued behind it); a
//! separate thread copies the WAL into the database file while the store is open.

use std::time::Duration;

use stockade_domain::testing::sku;
use stockade_store::{EventStore, ExpectedRevision, SqliteStore, StreamName};
use stockade_tests::{PATIENCE, encoded, nth_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_pages_reach_the_database_file_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    let initial = std::fs::metadata(&path).unwrap().len();
    let stream = StreamName::for_sku(&sku());
    let batch: Vec<_> = (0..2_000).map(|n| encoded(&nth_event(n))).collect();
    store
        .append(&stream, ExpectedRevision::NoStream, batch)
        .await
        .unwrap();
    // Two thousand events are far more than the few pages of an empty database: once they
    // are in the main file, a checkpoint has run without the store being closed.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut size = initial;
    while size < initial + 200_000 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        size = std::fs::metadata(&path).unwrap().len();
    }
    assert!(
        size >= initial + 200_000,
        "database file still {size} bytes"
    );
    assert_eq!(
        store.read_stream(&stream, 0, 5_000).await.unwrap().len(),
        2_000
    );
}
