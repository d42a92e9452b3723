//! Rebuilding a SKU from the store: the latest snapshot, then the events after it.
//!
//! The engine's snapshot wraps the domain state (encoded by the store codec, which
//! validates it on the way back) with the idempotency table, because keys written before
//! the snapshot must still be recognised after it. A snapshot that cannot be read is
//! ignored and the stream replayed from its first event: a snapshot is a cache, never the
//! only copy of a fact.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stockade_domain::{Event, EventMetadata, SkuState};
use stockade_store::{EventStore, Snapshot, StoreError, StreamName, codec, scan_stream};
use uuid::Uuid;

use crate::idempotency::{KeyScope, KeyTable, Recorded};

/// Layout version of [`EngineSnapshot`].
const ENGINE_SNAPSHOT_FORMAT: u16 = 1;
/// Events read per page while recovering.
pub const READ_PAGE: usize = 4_096;

#[derive(Serialize, Deserialize)]
struct EngineSnapshot {
    format: u16,
    /// `codec::encode_snapshot` of the SKU state.
    state: Vec<u8>,
    keys: Vec<(KeyScope, Recorded)>,
}

/// A SKU as rebuilt from the store.
#[derive(Debug)]
pub struct Loaded {
    pub state: SkuState,
    /// Events in the stream (the next event's revision).
    pub version: u64,
    pub keys: KeyTable,
    /// Version at which the snapshot used was taken (0 when none was used).
    pub snapshot_version: u64,
}

/// One event read back, decoded.
#[derive(Debug)]
pub struct TailEvent {
    pub event: Event,
    pub meta: EventMetadata,
    pub event_id: Uuid,
    /// Stream version after this event.
    pub version: u64,
}

/// Encodes the state and keys of a SKU at `version` as a store snapshot.
pub fn encode(state: &SkuState, keys: &KeyTable, version: u64) -> Result<Snapshot, String> {
    let revision = version
        .checked_sub(1)
        .ok_or_else(|| "an empty stream has nothing to snapshot".to_owned())?;
    let body = EngineSnapshot {
        format: ENGINE_SNAPSHOT_FORMAT,
        state: codec::encode_snapshot(state).map_err(|e| e.to_string())?,
        keys: keys.to_entries(),
    };
    let data = rmp_serde::to_vec_named(&body).map_err(|e| e.to_string())?;
    Ok(Snapshot { revision, data })
}

fn decode(snapshot: &Snapshot, keys: KeyTable) -> Result<Loaded, String> {
    let body: EngineSnapshot = rmp_serde::from_slice(&snapshot.data).map_err(|e| e.to_string())?;
    if body.format != ENGINE_SNAPSHOT_FORMAT {
        return Err(format!(
            "engine snapshot format {}, this build reads {ENGINE_SNAPSHOT_FORMAT}",
            body.format
        ));
    }
    let state = codec::decode_snapshot(&body.state).map_err(|e| e.to_string())?;
    let version = snapshot
        .revision
        .checked_add(1)
        .ok_or_else(|| "snapshot revision out of range".to_owned())?;
    Ok(Loaded {
        state,
        version,
        keys: keys.with_entries(body.keys),
        snapshot_version: version,
    })
}

/// The SKU state held by `stream`'s latest snapshot and the version it was taken at, if
/// the snapshot is readable and taken at or before `version`. Lets a reader that checks
/// a stream at some version (reconciliation) start near it without keeping a state per
/// SKU. An unreadable snapshot is `None`: the reader folds from the start instead.
pub async fn snapshot_at_or_before(
    store: &Arc<dyn EventStore>,
    stream: &StreamName,
    version: u64,
) -> Result<Option<(SkuState, u64)>, StoreError> {
    let Some(snapshot) = store.load_snapshot(stream).await? else {
        return Ok(None);
    };
    if snapshot.revision >= version {
        return Ok(None);
    }
    let keys = KeyTable::complete(Duration::ZERO);
    Ok(decode(&snapshot, keys)
        .ok()
        .filter(|l| l.state.validate().is_ok())
        .map(|l| (l.state, l.version)))
}

/// Why reading a stream's events stopped early.
enum Stop {
    Store(StoreError),
    /// An event contradicts the state folded so far.
    Contradiction(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

/// Decodes the events of `stream` from version `from` to its end, one page at a time,
/// and hands each to `visit`. A revision out of sequence is corruption.
async fn for_each_after(
    store: &Arc<dyn EventStore>,
    stream: &StreamName,
    from: u64,
    mut visit: impl FnMut(TailEvent) -> Result<(), Stop>,
) -> Result<(), Stop> {
    let mut next = from;
    scan_stream(store.as_ref(), stream, from, READ_PAGE, |recorded| {
        if recorded.revision != next {
            return Err(Stop::Store(StoreError::Corrupt {
                position: recorded.position,
                reason: format!(
                    "{stream} jumps from revision {next} to {}",
                    recorded.revision
                ),
            }));
        }
        let (event, meta) = codec::decode_stored(recorded)?;
        next += 1;
        visit(TailEvent {
            event,
            meta,
            event_id: recorded.event_id,
            version: next,
        })
    })
    .await
    .map(|_| ())
}

/// Reads and decodes the events of `stream` from version `from` to its end.
pub async fn read_tail(
    store: &Arc<dyn EventStore>,
    stream: &StreamName,
    from: u64,
) -> Result<Vec<TailEvent>, StoreError> {
    let mut tail = Vec::new();
    let read = for_each_after(store, stream, from, |t| {
        tail.push(t);
        Ok(())
    });
    match read.await {
        Ok(()) => Ok(tail),
        Err(Stop::Store(e)) => Err(e),
        // `visit` above never stops.
        Err(Stop::Contradiction(reason)) => Err(StoreError::Unavailable(reason)),
    }
}

/// Folds one event into `state` and `keys`. An event that contradicts the state is
/// corruption.
fn fold_one(state: &mut SkuState, keys: &mut KeyTable, t: &TailEvent) -> Result<(), String> {
    state
        .apply(&t.event)
        .map_err(|e| format!("event at version {}: {e}", t.version))?;
    keys.observe(&t.event, &t.meta, t.version);
    Ok(())
}

/// Folds `tail` into `state` and `keys`. An event that contradicts the state is corruption.
pub fn fold_tail(
    state: &mut SkuState,
    keys: &mut KeyTable,
    tail: &[TailEvent],
) -> Result<(), String> {
    tail.iter().try_for_each(|t| fold_one(state, keys, t))
}

/// Rebuilds `stream` from its latest readable snapshot and the events after it. A snapshot
/// that does not agree with the events after it is dropped and the stream replayed whole.
pub async fn load(
    store: &Arc<dyn EventStore>,
    stream: &StreamName,
    retention: Duration,
) -> Result<Loaded, StoreError> {
    let keys = || KeyTable::for_store(store.as_ref(), retention);
    if let Some(snapshot) = store.load_snapshot(stream).await? {
        match decode(&snapshot, keys()) {
            Ok(base) => match continue_from(store, stream, base).await? {
                Ok(loaded) => return Ok(loaded),
                Err(reason) => {
                    tracing::warn!(%stream, %reason, "snapshot disagrees with the log; replaying")
                }
            },
            Err(reason) => {
                tracing::warn!(%stream, %reason, "snapshot unreadable; replaying the stream")
            }
        }
    }
    let empty = Loaded {
        state: SkuState::default(),
        version: 0,
        keys: keys(),
        snapshot_version: 0,
    };
    continue_from(store, stream, empty)
        .await?
        .map_err(|reason| StoreError::Corrupt {
            position: stockade_store::Position::START,
            reason: format!("{stream}: {reason}"),
        })
}

/// Folds the events after `base` into it; the inner error is a contradiction in the log.
async fn continue_from(
    store: &Arc<dyn EventStore>,
    stream: &StreamName,
    mut base: Loaded,
) -> Result<Result<Loaded, String>, StoreError> {
    if let Some(revision) = stockade_store::last_revision(base.version) {
        // A snapshot is only good if the log reaches it (a restored or truncated log
        // may not).
        let at = store.read_stream(stream, revision, 1).await?;
        if at.first().map(|e| e.revision) != Some(revision) {
            return Ok(Err(format!(
                "snapshot at revision {revision} is past the end of the log"
            )));
        }
    }
    // Page by page: a stream replayed whole may hold millions of events, and only the
    // state they fold into needs to be in memory.
    let folded = for_each_after(store, stream, base.version, |t| {
        fold_one(&mut base.state, &mut base.keys, &t).map_err(Stop::Contradiction)?;
        base.version = t.version;
        Ok(())
    });
    match folded.await {
        Ok(()) => Ok(Ok(base)),
        Err(Stop::Store(e)) => Err(e),
        Err(Stop::Contradiction(reason)) => Ok(Err(reason)),
    }
}
