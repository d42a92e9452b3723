//! Two store handles on one SQLite file (as two engines sharing a log would be) never
//! interleave a stream: the expected revision fences them, and each sees the other's
//! commits through its subscription.

use std::time::Duration;

use futures::StreamExt;
use stockade_store::{
    EventStore, ExpectedRevision, Position, SqliteConfig, SqliteStore, StoreError, StreamName,
};
use stockade_tests::{PATIENCE, encoded, fold_everything, nth_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_are_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let open = || {
        SqliteStore::open_with(
            SqliteConfig::new(&path).cross_process_poll(Duration::from_millis(20)),
        )
        .unwrap()
    };
    let (a, b) = (open(), open());
    let stream = StreamName::new("sku-SHARED").unwrap();
    a.append(
        &stream,
        ExpectedRevision::NoStream,
        vec![encoded(&nth_event(0))],
    )
    .await
    .unwrap();

    // B subscribes; A's commits move only A's head, so B finds them by its slow re-check.
    let mut seen_by_b = b.subscribe_all(Position::START);

    let writer = |store: SqliteStore, stream: StreamName| async move {
        let mut written = 0;
        let mut conflicts = 0;
        while written < 40 {
            let last = store
                .read_stream(&stream, 0, usize::MAX)
                .await
                .unwrap()
                .len() as u64
                - 1;
            let event = encoded(&nth_event(last + 1));
            match store
                .append(&stream, ExpectedRevision::Exact(last), vec![event])
                .await
            {
                Ok(_) => written += 1,
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("append failed: {e}"),
            }
        }
        conflicts
    };
    let (ca, cb) = tokio::join!(
        writer(a.clone(), stream.clone()),
        writer(b.clone(), stream.clone())
    );
    eprintln!("conflicts: handle a {ca}, handle b {cb}");

    let streams = fold_everything(&a).await;
    assert_eq!(
        streams[&stream].len(),
        81,
        "1 registration + 2 x 40 reservations"
    );
    for n in 0..81 {
        tokio::time::timeout(PATIENCE, seen_by_b.next())
            .await
            .unwrap_or_else(|_| panic!("handle b's subscription stalled at event {n}"))
            .unwrap()
            .unwrap();
    }
}
