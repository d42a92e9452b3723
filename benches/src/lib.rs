//! Workloads shared by the benchmarks in `benches/`, kept here so they are compiled (and
//! linted) with the workspace, not only when someone runs `cargo bench`.

use std::time::{Duration, Instant};

use stockade_store::{
    EventData, EventStore, ExpectedRevision, SqliteStore, StoreError, StreamName,
};
use uuid::Uuid;

/// A payload the size of a msgpack-encoded `StockReserved` (~150 bytes).
fn payload() -> Vec<u8> {
    vec![0x5a; 150]
}

/// One event, as the engine would append per reservation.
pub fn bench_event() -> EventData {
    EventData {
        event_id: Uuid::new_v4(),
        event_type: "StockReserved".into(),
        data: payload(),
        metadata: vec![0x80; 60],
    }
}

/// `appenders` tasks, each appending single events to its own stream with exact expected
/// revisions, `total` events in all. Returns the wall time.
pub async fn append_concurrently(
    store: &SqliteStore,
    appenders: usize,
    total: u64,
    round: u64,
) -> Result<Duration, StoreError> {
    let per_task = total.div_ceil(appenders as u64);
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|i| {
            let store = store.clone(); // a handle: clones share one writer
            tokio::spawn(async move {
                // A fresh stream per task and round: the expected revision starts at NoStream.
                let stream = StreamName::new(format!("sku-bench-{round}-{i}"))?;
                let mut expected = ExpectedRevision::NoStream;
                for _ in 0..per_task {
                    let r = store.append(&stream, expected, vec![bench_event()]).await?;
                    expected = ExpectedRevision::Exact(r.revision);
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| StoreError::Unavailable(format!("bench task: {e}")))??;
    }
    Ok(started.elapsed())
}
