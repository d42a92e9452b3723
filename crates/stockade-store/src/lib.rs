//! The event store port and its embedded backends.
//!
//! Semantics follow EventStoreDB so that the embedded default and production behave alike:
//! one stream per SKU, revisions from 0, optimistic concurrency by expected revision, a
//! global commit order (positions), idempotent retries by event id, catch-up subscriptions.
//!
//! # Layout
//! - this file: the [`EventStore`] trait and the types it speaks.
//! - [`plan`]: the expected-revision and idempotency rule, shared by every backend.
//! - [`memory`]: [`MemoryStore`], the port's simplest implementation (tests, simulations).
//! - [`sqlite`]: [`SqliteStore`], the embedded default: WAL, `synchronous=FULL`, one
//!   writer thread committing many appends per fsync.
//! - [`codec`]: domain events and snapshots to and from MessagePack.
//! - `subscription`: catch-up-then-live over any backend that announces its head.
//! - `testkit` (feature `testkit`): the conformance suite every backend must pass.
//!
//! # Example
//!
//! ```
//! use stockade_store::{EventData, EventStore, ExpectedRevision, SqliteStore, StreamName};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # runtime.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path().join("stockade.db"))?;
//! let stream = StreamName::new("sku-SKU-1")?;
//! let event = EventData {
//!     event_id: uuid::Uuid::new_v4(),
//!     event_type: "Example".into(),
//!     data: vec![],
//!     metadata: vec![],
//!     index: Default::default(),
//! };
//! // The first append expects an empty stream; a retry of the same ids would be a no-op.
//! let landed = store.append(&stream, ExpectedRevision::NoStream, vec![event]).await?;
//! assert_eq!(landed.revision, 0);
//! assert_eq!(store.read_stream(&stream, 0, 10).await?.len(), 1);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

use std::fmt;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use stockade_domain::{Sku, Timestamp};
use thiserror::Error;
use uuid::Uuid;

pub mod codec;
pub mod files;
pub mod memory;
pub mod plan;
pub mod sqlite;
pub mod subscription;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use memory::MemoryStore;
pub use sqlite::{SqliteConfig, SqliteStore, WriterStats};

/// Longest stream name accepted, in bytes.
pub const MAX_STREAM_NAME: usize = 256;

/// A stream's name: `sku-{SKU}` for SKU streams.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamName(String);

impl StreamName {
    pub const SKU_PREFIX: &'static str = "sku-";

    pub fn new(name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        if name.is_empty() || name.len() > MAX_STREAM_NAME || name.chars().any(char::is_control) {
            return Err(StoreError::InvalidRequest(format!(
                "stream name must be 1-{MAX_STREAM_NAME} bytes without control characters"
            )));
        }
        Ok(Self(name))
    }

    /// The stream that holds `sku`'s events.
    pub fn for_sku(sku: &Sku) -> Self {
        Self(format!("{}{sku}", Self::SKU_PREFIX))
    }

    /// The SKU whose stream this is, if it is a SKU stream.
    pub fn sku(&self) -> Option<Sku> {
        self.0
            .strip_prefix(Self::SKU_PREFIX)
            .and_then(|s| Sku::new(s).ok())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A place in the global log. Positions order by commit order; `Position::START` is before
/// the first event. Reads and subscriptions "after" a position exclude it.
///
/// EventStoreDB names a place by two log offsets: the commit position and the prepare
/// position. They are equal for events appended over gRPC. Events of the legacy explicit
/// transactions share the position of the commit record written after them, and keep their
/// own prepare positions (smaller than the commit's). A read must hand the exact
/// pair back to resume there, so both are kept. The embedded backends number events
/// 1, 2, 3, ... and use that number for both ([`Position::at`]). Ordering is by commit,
/// then prepare, as on the server.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    pub commit: u64,
    pub prepare: u64,
}

impl Position {
    pub const START: Position = Position::at(0);

    /// The position of a backend that numbers its events with one sequence.
    pub const fn at(sequence: u64) -> Self {
        Self {
            commit: sequence,
            prepare: sequence,
        }
    }
}

/// Positions print as `N` when both offsets agree (every embedded position) and as
/// `COMMIT/PREPARE` otherwise; [`str::parse`] reads both forms back.
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.commit == self.prepare {
            write!(f, "{}", self.commit)
        } else {
            write!(f, "{}/{}", self.commit, self.prepare)
        }
    }
}

impl std::str::FromStr for Position {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            StoreError::InvalidRequest(format!(
                "{s:?} is not a log position: expected N or COMMIT/PREPARE"
            ))
        };
        let number = |part: &str| part.trim().parse::<u64>().map_err(|_| bad());
        match s.split_once('/') {
            None => number(s).map(Position::at),
            Some((commit, prepare)) => {
                let (commit, prepare) = (number(commit)?, number(prepare)?);
                Ok(Position { commit, prepare })
            }
        }
    }
}

/// The stream's version once the event at `revision` is in it.
///
/// Two counts meet at the store's edge. An event's *revision* is its place in its stream,
/// from 0 (the store's term, as in EventStoreDB). A stream's *version* is how many events
/// it holds, 0 before the first (the engine's term: what SKUs, notices and read models
/// carry). So the event at revision `r` leaves its stream at version `r + 1`, which is
/// also the revision the next event takes; a writer that has seen version `v` expects
/// revision `v − 1` ([`last_revision`], [`ExpectedRevision::at_version`]). Every crossing
/// goes through these, so the ±1 is written in one place.
pub const fn version_after(revision: u64) -> u64 {
    revision.saturating_add(1)
}

/// The revision of the last event of a stream at `version`: none at version 0.
pub const fn last_revision(version: u64) -> Option<u64> {
    version.checked_sub(1)
}

/// What the writer believes about the stream before appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// The stream has no events.
    NoStream,
    /// The stream's last event has this revision.
    Exact(u64),
    /// The stream has at least one event.
    StreamExists,
    /// No check.
    Any,
}

impl ExpectedRevision {
    /// What a writer that has seen its stream at `version` expects: no stream before the
    /// first event, else the revision of the last one (see [`version_after`]).
    pub const fn at_version(version: u64) -> Self {
        match last_revision(version) {
            None => ExpectedRevision::NoStream,
            Some(revision) => ExpectedRevision::Exact(revision),
        }
    }
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::Exact(r) => write!(f, "revision {r}"),
            ExpectedRevision::StreamExists => f.write_str("stream exists"),
            ExpectedRevision::Any => f.write_str("any"),
        }
    }
}

/// What the stream actually holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CurrentRevision {
    NoStream,
    Current(u64),
}

impl CurrentRevision {
    pub fn from_last(last: Option<u64>) -> Self {
        last.map_or(CurrentRevision::NoStream, CurrentRevision::Current)
    }
}

impl fmt::Display for CurrentRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrentRevision::NoStream => f.write_str("no stream"),
            CurrentRevision::Current(r) => write!(f, "revision {r}"),
        }
    }
}

/// An event to append. `event_id` identifies it for idempotent retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData {
    pub event_id: Uuid,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    /// What an indexing backend files the event under (see [`EventIndex`]).
    pub index: EventIndex,
}

/// What an event is filed under besides its stream and id, so that history can be found
/// on disk instead of being kept in memory. A backend that indexes
/// ([`EventStore::indexed`]) writes these in the same transaction as the event; one that
/// does not ignores them and answers the lookups by scanning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventIndex {
    /// The entity the event is about: for Stockade, a reservation.
    pub subject: Option<Uuid>,
    /// What the event does to its subject within its stream.
    pub lifecycle: Lifecycle,
    /// The business transaction the event belongs to: for Stockade, an order.
    pub correlation: Option<String>,
}

impl EventIndex {
    /// How this event changes its stream's count of open subjects: +1, -1 or 0. The
    /// indexing backends keep that count per stream for
    /// [`EventStore::streams_with_open_subjects`].
    pub fn open_delta(&self) -> i64 {
        match (self.subject, self.lifecycle) {
            (Some(_), Lifecycle::Opens) => 1,
            (Some(_), Lifecycle::Closes) => -1,
            _ => 0,
        }
    }
}

/// A subject is open in a stream from the event that opens it to the one that closes it.
/// The open subjects are what a restart must wake (live holds, with expiries to fire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lifecycle {
    #[default]
    Touches,
    Opens,
    Closes,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub stream: StreamName,
    pub revision: u64,
    pub position: Position,
    pub event_id: Uuid,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    /// When the store committed it (the store's clock).
    pub recorded_at: Timestamp,
}

impl RecordedEvent {
    /// The stream's version once this event is in it ([`version_after`]).
    pub const fn version(&self) -> u64 {
        version_after(self.revision)
    }
}

/// Where an append landed: the revision and position of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Pass `ExpectedRevision::Exact(revision)` to append after it.
    pub revision: u64,
    pub position: Position,
    /// The events were already stored (a retry of the same ids) and nothing was written:
    /// what the stream holds is the stored events, which may differ from the ones sent
    /// under the same ids (a writer that decided again after losing track of an append).
    pub deduplicated: bool,
}

impl AppendResult {
    /// The stream's version after the append ([`version_after`]).
    pub const fn version(&self) -> u64 {
        version_after(self.revision)
    }
}

/// The latest snapshot of a stream's state, taken at `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub revision: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// Someone else wrote first: the expected revision did not hold.
    #[error("wrong expected revision on {stream}: expected {expected}, actual {actual}")]
    Conflict {
        stream: StreamName,
        expected: ExpectedRevision,
        actual: CurrentRevision,
    },
    /// The request itself is malformed (empty batch, bad stream name).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Stored bytes that cannot be read back.
    #[error("corrupt data at position {position}: {reason}")]
    Corrupt { position: Position, reason: String },
    /// The infrastructure failed (I/O, disk full, store closed). The outcome of an append
    /// that fails this way is unknown: read the stream to find out.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
}

/// Events after a position: first the ones already stored, then new ones as they commit.
/// An `Err` item ends the subscription.
pub type Subscription = BoxStream<'static, Result<RecordedEvent, StoreError>>;

/// The event store port.
#[async_trait]
pub trait EventStore: fmt::Debug + Send + Sync + 'static {
    /// Appends `events` to `stream` if `expected` holds, atomically. Appending the same
    /// event ids again at the same expected revision succeeds without writing them twice.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError>;

    /// Up to `max` events of `stream` from revision `from` (inclusive). A missing stream
    /// reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max` events of all streams after `after`, in commit order.
    async fn read_all(&self, after: Position, max: usize)
    -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of the last committed event (`Position::START` when empty).
    async fn head(&self) -> Result<Position, StoreError>;

    /// Events after `after`: catch-up, then live, in commit order.
    fn subscribe_all(&self, after: Position) -> Subscription;

    /// Stores `snapshot` unless a newer one (higher revision) is already stored.
    async fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> Result<(), StoreError>;

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>, StoreError>;

    /// Whether the lookups below answer from indexes written with the events. When not,
    /// they scan (correct, but their cost grows with history): callers that look up on
    /// a hot path keep their own in-memory index instead.
    fn indexed(&self) -> bool {
        false
    }

    /// The events of `stream` whose ids are among `ids`, in revision order.
    async fn find_events(
        &self,
        stream: &StreamName,
        ids: &[Uuid],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut found = Vec::new();
        scan_stream(self, stream, 0, SCAN_PAGE, |e| {
            if ids.contains(&e.event_id) {
                found.push(e.clone());
            }
            Ok::<_, StoreError>(())
        })
        .await?;
        Ok(found)
    }

    /// Up to `max` events filed under `subject`, in every stream, in commit order.
    async fn read_subject(
        &self,
        subject: Uuid,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut found = Vec::new();
        scan_all(self, Position::START, SCAN_PAGE, |e| {
            if found.len() < max && stored_index(e).subject == Some(subject) {
                found.push(e.clone());
            }
            Ok(())
        })
        .await?;
        Ok(found)
    }

    /// Up to `max` events filed under `correlation`, in commit order.
    async fn read_correlation(
        &self,
        correlation: &str,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut found = Vec::new();
        scan_all(self, Position::START, SCAN_PAGE, |e| {
            if found.len() < max && stored_index(e).correlation.as_deref() == Some(correlation) {
                found.push(e.clone());
            }
            Ok(())
        })
        .await?;
        Ok(found)
    }

    /// The streams that hold at least one open subject (opened and not yet closed).
    async fn streams_with_open_subjects(&self) -> Result<Vec<StreamName>, StoreError> {
        let mut open: std::collections::HashMap<StreamName, std::collections::HashSet<Uuid>> =
            std::collections::HashMap::new();
        scan_all(self, Position::START, SCAN_PAGE, |e| {
            let i = stored_index(e);
            if let Some(subject) = i.subject {
                let subjects = open.entry(e.stream.clone()).or_default();
                match i.lifecycle {
                    Lifecycle::Opens => {
                        subjects.insert(subject);
                    }
                    Lifecycle::Closes => {
                        subjects.remove(&subject);
                    }
                    Lifecycle::Touches => {}
                }
            }
            Ok(())
        })
        .await?;
        let mut streams: Vec<StreamName> = open
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(stream, _)| stream)
            .collect();
        streams.sort();
        Ok(streams)
    }
}

/// Events read per page by the scanning lookups.
const SCAN_PAGE: usize = 4_096;

/// What a stored event is filed under, found by decoding it (a backend without indexes
/// does not keep [`EventIndex`]). An event the codec cannot read is filed under nothing.
fn stored_index(e: &RecordedEvent) -> EventIndex {
    codec::decode(e)
        .map(|(event, meta)| codec::index_of(&event, &meta))
        .unwrap_or_default()
}

/// Calls `visit` on every event of `stream` from revision `from`, in revision order,
/// reading `page` events at a time, until a page comes back shorter than asked (the
/// stream's end) or `visit` fails. Returns the revision after the last event read.
pub async fn scan_stream<S: EventStore + ?Sized, E: From<StoreError>>(
    store: &S,
    stream: &StreamName,
    from: u64,
    page: usize,
    mut visit: impl FnMut(&RecordedEvent) -> Result<(), E>,
) -> Result<u64, E> {
    let page = page.max(1);
    let mut next = from;
    loop {
        let events = store.read_stream(stream, next, page).await?;
        for recorded in &events {
            visit(recorded)?;
            next = recorded.version();
        }
        if events.len() < page {
            return Ok(next);
        }
    }
}

/// Calls `visit` on every event after `after`, in commit order, reading `page` events at
/// a time. Stops at the first empty page (a backend may return fewer than asked before the
/// end) or at `visit`'s first error. Returns the position of the last event visited.
pub async fn scan_all<S: EventStore + ?Sized>(
    store: &S,
    after: Position,
    page: usize,
    mut visit: impl FnMut(&RecordedEvent) -> Result<(), StoreError>,
) -> Result<Position, StoreError> {
    let mut after = after;
    loop {
        let events = store.read_all(after, page).await?;
        let Some(last) = events.last() else {
            return Ok(after);
        };
        after = last.position;
        for recorded in &events {
            visit(recorded)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Versions count events, revisions index them: the two helpers are each other's
    /// inverse, and the first event is revision 0, version 1.
    #[test]
    fn versions_and_revisions_meet_at_one_place() {
        assert_eq!(version_after(0), 1);
        assert_eq!(last_revision(0), None);
        assert_eq!(last_revision(1), Some(0));
        for revision in [0, 1, 41, u64::MAX - 1] {
            assert_eq!(last_revision(version_after(revision)), Some(revision));
        }
        assert_eq!(ExpectedRevision::at_version(0), ExpectedRevision::NoStream);
        assert_eq!(ExpectedRevision::at_version(3), ExpectedRevision::Exact(2));
        // The stream's version after an append is what the next append expects from.
        let landed = AppendResult {
            revision: 6,
            position: Position::at(100),
            deduplicated: false,
        };
        assert_eq!(
            ExpectedRevision::at_version(landed.version()),
            ExpectedRevision::Exact(6)
        );
    }
}
