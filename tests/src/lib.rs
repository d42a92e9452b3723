//! Helpers shared by the black-box scenarios in `tests/tests/scenarios/`, one behaviour per
//! module.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use stockade_domain::testing::{registered_physical, reserved, secs};
use stockade_domain::{Event, EventMetadata, SkuState, Timestamp};
use stockade_store::{EventData, EventStore, Position, StreamName, codec};
use uuid::Uuid;

/// Encodes a domain event as the engine would, with a fresh event id.
pub fn encoded(event: &Event) -> EventData {
    let metadata = EventMetadata::new(Uuid::new_v4(), event.at());
    codec::encode(event, &metadata).unwrap()
}

/// The `n`-th event of a SKU stream in these scenarios: registration, then reservations of
/// one unit each (stock is ample), so any prefix of the stream folds cleanly.
pub fn nth_event(n: u64) -> Event {
    if n == 0 {
        registered_physical(1_000_000, 0)
    } else {
        reserved(
            u128::from(n),
            1,
            secs(n),
            Timestamp::from_millis(u64::MAX / 2),
        )
    }
}

/// Reads every event in the store and folds each SKU stream, failing on any inconsistency
/// or undecodable payload. Returns the streams' event ids in revision order.
pub async fn fold_everything(
    store: &impl EventStore,
) -> std::collections::BTreeMap<StreamName, Vec<Uuid>> {
    let mut streams: std::collections::BTreeMap<StreamName, (SkuState, Vec<Uuid>)> =
        Default::default();
    for recorded in store.read_all(Position::START, usize::MAX).await.unwrap() {
        let (event, _) = codec::decode(&recorded).unwrap();
        let (state, ids) = streams.entry(recorded.stream.clone()).or_default();
        assert_eq!(
            recorded.revision,
            ids.len() as u64,
            "gap in {}",
            recorded.stream
        );
        state.apply(&event).unwrap();
        ids.push(recorded.event_id);
    }
    streams.into_iter().map(|(s, (_, ids))| (s, ids)).collect()
}

/// A generous bound for anything these scenarios wait on.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub mod backend;
pub mod browser;
pub mod engine;
pub mod fixtures;
pub mod http_receiver;
pub mod linearizability;
pub mod mcp;
pub mod projection;
pub mod scenarios;
pub mod server;
