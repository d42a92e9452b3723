//! Bytes that went bad on disk come back as typed errors naming where they are, never as a
//! panic or a silently wrong state.

use stockade_domain::testing::sku;
use stockade_store::codec::{self, CodecError};
use stockade_store::{EventStore, ExpectedRevision, Position, SqliteStore, StoreError, StreamName};
use stockade_tests::{encoded, nth_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_read_back_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let stream = StreamName::for_sku(&sku());
    let store = SqliteStore::open(&path).unwrap();
    let events = (0..3).map(|n| encoded(&nth_event(n))).collect();
    store
        .append(&stream, ExpectedRevision::NoStream, events)
        .await
        .unwrap();

    // Damage the stored rows behind the store's back, as a bad disk or a hand edit would.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE events SET data = x'c1ffee' WHERE position = 2", [])
        .unwrap();
    raw.execute(
        "UPDATE events SET event_id = x'0102' WHERE position = 3",
        [],
    )
    .unwrap();
    drop(raw);

    // A payload that is no longer MessagePack: the store reads it, the codec refuses it.
    let page = store.read_all(Position::START, 2).await.unwrap();
    assert!(codec::decode(&page[0]).is_ok());
    match codec::decode(&page[1]) {
        Err(CodecError::Corrupt {
            part: "data",
            position,
            ..
        }) => {
            assert_eq!(position, Position::at(2));
        }
        other => panic!("expected a corrupt-data error, got {other:?}"),
    }

    // A row the store itself cannot read (an event id of 2 bytes): a Corrupt error.
    match store.read_all(Position::at(2), 10).await {
        Err(StoreError::Corrupt { position, reason }) => {
            assert_eq!(position, Position::at(3), "{reason}");
        }
        other => panic!("expected Corrupt at position 3, got {other:?}"),
    }
    assert!(matches!(
        store.read_stream(&stream, 0, 10).await,
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn a_file_that_is_not_a_store_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    std::fs::write(&path, vec![0x42; 8192]).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("events.db"), "{message}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[test]
fn a_store_written_by_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    drop(SqliteStore::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    match SqliteStore::open(&path) {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("99"), "{message}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sqlite_refuses_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).unwrap();
    let damaged = StreamName::new("sku-DAMAGED").unwrap();
    let healthy = StreamName::new("sku-HEALTHY").unwrap();
    store
        .append(
            &damaged,
            ExpectedRevision::NoStream,
            vec![encoded(&nth_event(0))],
        )
        .await
        .unwrap();
    // Make the stream table forget the event: the next append to it collides with the row
    // already at revision 0 (a UNIQUE constraint), as a hand edit might cause.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE streams SET last_revision = -1 WHERE name = 'sku-DAMAGED'",
        [],
    )
    .unwrap();
    drop(raw);

    let (bad, good) = tokio::join!(
        store.append(
            &damaged,
            ExpectedRevision::NoStream,
            vec![encoded(&nth_event(0))]
        ),
        store.append(
            &healthy,
            ExpectedRevision::NoStream,
            vec![encoded(&nth_event(0))]
        ),
    );
    assert!(matches!(bad, Err(StoreError::InvalidRequest(_))), "{bad:?}");
    assert_eq!(
        good.unwrap().revision,
        0,
        "the healthy append must still land"
    );
    assert_eq!(store.read_stream(&healthy, 0, 10).await.unwrap().len(), 1);
}
