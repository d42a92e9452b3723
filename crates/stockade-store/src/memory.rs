//! The in-memory backend: the port's simplest implementation, for tests and simulations.
//! Same semantics as the durable backends, nothing survives the process.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use stockade_domain::Timestamp;
use tokio::sync::watch;

use crate::plan::{Plan, check_batch, plan_append};
use crate::subscription::{advance_head, catch_up_then_live};
use crate::{
    AppendResult, EventData, EventStore, ExpectedRevision, Lifecycle, Position, RecordedEvent,
    Snapshot, StoreError, StreamName, Subscription,
};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct MemoryStore {
    shared: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Mutex<Log>,
    head: watch::Sender<Position>,
}

#[derive(Debug, Default)]
struct Log {
    /// All events in commit order; `all[i]` has position `i + 1`.
    all: Vec<RecordedEvent>,
    /// Per stream, indexes into `all` by revision.
    streams: HashMap<StreamName, Vec<usize>>,
    snapshots: HashMap<StreamName, Snapshot>,
    /// The indexes an indexing backend keeps, as indexes into `all` in commit order.
    by_id: HashMap<Uuid, Vec<usize>>,
    by_subject: HashMap<Uuid, Vec<usize>>,
    by_correlation: HashMap<String, Vec<usize>>,
    open: BTreeSet<(StreamName, Uuid)>,
}

impl Log {
    fn lookup(&self, indexes: Option<&Vec<usize>>, max: usize) -> Vec<RecordedEvent> {
        indexes
            .map(|found| {
                found
                    .iter()
                    .take(max)
                    .map(|&i| self.all[i].clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Inner {
                log: Mutex::new(Log::default()),
                head: watch::channel(Position::START).0,
            }),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave `Log` half-written: every mutation
        // below is a push after all checks. So a poisoned lock is still consistent.
        self.shared
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        check_batch(&events)?;
        let mut log = self.log();
        let plan = {
            let log = &*log;
            let revisions = log.streams.get(stream).map_or(&[][..], Vec::as_slice);
            let last = revisions.len().checked_sub(1).map(|r| r as u64);
            let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
            plan_append(stream, expected, last, &ids, |from, n| {
                Ok(revisions
                    .iter()
                    .skip(usize::try_from(from).unwrap_or(usize::MAX))
                    .take(n)
                    .map(|&i| (log.all[i].event_id, log.all[i].position))
                    .collect())
            })?
        };
        let first_revision = match plan {
            Plan::AlreadyWritten(done) => return Ok(done),
            Plan::Write { first_revision } => first_revision,
        };
        let recorded_at = Timestamp::from_system_time(SystemTime::now());
        let mut result = AppendResult {
            revision: first_revision,
            position: Position::START,
            deduplicated: false,
        };
        for (offset, e) in events.into_iter().enumerate() {
            let index = log.all.len();
            result = AppendResult {
                revision: first_revision + offset as u64,
                position: Position::at(index as u64 + 1),
                deduplicated: false,
            };
            log.by_id.entry(e.event_id).or_default().push(index);
            if let Some(subject) = e.index.subject {
                log.by_subject.entry(subject).or_default().push(index);
                match e.index.lifecycle {
                    Lifecycle::Opens => {
                        log.open.insert((stream.clone(), subject));
                    }
                    Lifecycle::Closes => {
                        log.open.remove(&(stream.clone(), subject));
                    }
                    Lifecycle::Touches => {}
                }
            }
            if let Some(correlation) = e.index.correlation {
                log.by_correlation
                    .entry(correlation)
                    .or_default()
                    .push(index);
            }
            log.all.push(RecordedEvent {
                stream: stream.clone(),
                revision: result.revision,
                position: result.position,
                event_id: e.event_id,
                event_type: e.event_type,
                data: e.data,
                metadata: e.metadata,
                recorded_at,
            });
            log.streams.entry(stream.clone()).or_default().push(index);
        }
        // Announce while still holding the lock: two appends cannot announce out of order,
        // so the head never moves backwards past a parked subscriber.
        advance_head(&self.shared.head, result.position);
        drop(log);
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        Ok(log
            .streams
            .get(stream)
            .map(|revisions| {
                revisions
                    .iter()
                    .skip(usize::try_from(from).unwrap_or(usize::MAX))
                    .take(max)
                    .map(|&i| log.all[i].clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        let start = usize::try_from(after.commit).unwrap_or(usize::MAX);
        Ok(log.all.iter().skip(start).take(max).cloned().collect())
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Ok(Position::at(self.log().all.len() as u64))
    }

    fn subscribe_all(&self, after: Position) -> Subscription {
        catch_up_then_live(
            Arc::new(self.clone()),
            after,
            self.shared.head.subscribe(),
            None,
        )
    }

    async fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> Result<(), StoreError> {
        let mut log = self.log();
        match log.snapshots.get(stream) {
            Some(existing) if existing.revision > snapshot.revision => {}
            _ => {
                log.snapshots.insert(stream.clone(), snapshot);
            }
        }
        Ok(())
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.log().snapshots.get(stream).cloned())
    }

    fn indexed(&self) -> bool {
        true
    }

    async fn find_events(
        &self,
        stream: &StreamName,
        ids: &[Uuid],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        let mut found: Vec<usize> = ids
            .iter()
            .filter_map(|id| log.by_id.get(id))
            .flatten()
            .copied()
            .filter(|&i| log.all[i].stream == *stream)
            .collect();
        found.sort_unstable();
        found.dedup();
        Ok(found.into_iter().map(|i| log.all[i].clone()).collect())
    }

    async fn read_subject(
        &self,
        subject: Uuid,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        Ok(log.lookup(log.by_subject.get(&subject), max))
    }

    async fn read_correlation(
        &self,
        correlation: &str,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        Ok(log.lookup(log.by_correlation.get(correlation), max))
    }

    async fn streams_with_open_subjects(&self) -> Result<Vec<StreamName>, StoreError> {
        let log = self.log();
        let mut streams: Vec<StreamName> = log.open.iter().map(|(s, _)| s.clone()).collect();
        streams.dedup();
        Ok(streams)
    }
}
