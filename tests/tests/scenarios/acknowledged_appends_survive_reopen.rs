//! Everything acknowledged before the store was closed is there after it is reopened:
//! events, their order, and the latest snapshot.

use stockade_domain::testing::sku;
use stockade_store::{EventStore, ExpectedRevision, Snapshot, SqliteStore, StreamName};
use stockade_tests::{encoded, fold_everything, nth_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let stream = StreamName::for_sku(&sku());
    let mut acked = Vec::new();
    {
        let store = SqliteStore::open(&path).unwrap();
        let mut expected = ExpectedRevision::NoStream;
        for n in 0..50 {
            let data = encoded(&nth_event(n));
            acked.push(data.event_id);
            let r = store.append(&stream, expected, vec![data]).await.unwrap();
            expected = ExpectedRevision::Exact(r.revision);
        }
        store
            .save_snapshot(
                &stream,
                Snapshot {
                    revision: 49,
                    data: b"state".to_vec(),
                },
            )
            .await
            .unwrap();
    } // dropped: the writer drains and the connection closes

    let store = SqliteStore::open(&path).unwrap();
    let streams = fold_everything(&store).await;
    assert_eq!(streams[&stream], acked);
    let snapshot = store.load_snapshot(&stream).await.unwrap().unwrap();
    assert_eq!(snapshot.revision, 49);
    // And the reopened store continues where it left off.
    let r = store
        .append(
            &stream,
            ExpectedRevision::Exact(49),
            vec![encoded(&nth_event(50))],
        )
        .await
        .unwrap();
    assert_eq!(r.revision, 50);
}
