//! [`EsdbStore`]: the event store port over EventStoreDB's gRPC client.
//!
//! All gRPC I/O runs on the store's own small runtime, whichever runtime the caller is on
//! (the engine's actors live on actix arbiters): a call is spawned there and its result
//! awaited, as the SQLite backend hands appends to its writer thread. Every call is bounded
//! by the configured deadline twice over: the gRPC deadline the server also sees, and a
//! timer around the whole call, which covers finding a node to talk to.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kurrentdb::{
    AppendToStreamOptions, Client, ReadAllOptions, ReadStreamOptions, StreamMetadataBuilder,
    StreamPosition, SubscriptionFilter,
};
use stockade_store::plan::check_batch;
use stockade_store::{
    AppendResult, EventData, EventStore, ExpectedRevision, Position, RecordedEvent, Snapshot,
    StoreError, StreamName, Subscription,
};
use tokio::runtime::Runtime;

use crate::batch::split;
use crate::config::{EsdbConfig, redact};
use crate::convert::{self, ServerEvent, append_error, call_error, incoming, read_error};
use crate::subscription;

/// Attempts at an append the leader refused because it was not the leader (nothing was
/// written), while the client finds the new leader.
const NOT_LEADER_ATTEMPTS: usize = 3;
/// Attempts at saving a snapshot that races another writer of the same snapshot stream.
const SNAPSHOT_ATTEMPTS: usize = 3;

/// What the store's tasks share: the client, the settings, the runtime's handle. The
/// runtime itself is owned by [`EsdbStore`] alone, so tasks holding this never keep it alive.
pub(crate) struct Inner {
    pub client: Client,
    pub config: EsdbConfig,
    pub handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("url", &redact(&self.config.url))
            .field("namespace", &self.config.namespace)
            .finish_non_exhaustive()
    }
}

/// EventStoreDB behind the [`EventStore`] port. Cheap to share behind an `Arc`.
pub struct EsdbStore {
    inner: Arc<Inner>,
    /// Dropped without blocking (see `Drop`), so the store may be dropped on any thread.
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for EsdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsdbStore")
            .field("url", &redact(&self.inner.config.url))
            .field("namespace", &self.inner.config.namespace)
            .finish()
    }
}

impl Drop for EsdbStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Subscriptions and calls still running end here; their callers see the
            // store as closed.
            runtime.shutdown_background();
        }
    }
}

impl EsdbStore {
    /// Validates `config` and creates the client. No connection is made yet: the first
    /// call connects (and [`EsdbStore::ping`] checks that one can be made).
    pub fn open(config: EsdbConfig) -> Result<Self, StoreError> {
        let settings = config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads)
            .thread_name("stockade-esdb")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("start the EventStoreDB runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let client = Client::with_runtime_handle(handle.clone(), settings).map_err(|e| {
            StoreError::InvalidRequest(format!(
                "EventStoreDB client for {}: {e}",
                redact(&config.url)
            ))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                handle,
            }),
            runtime: Some(runtime),
        })
    }

    /// Opens the store and reads the end of `$all` once, so that a wrong address or
    /// credentials fail here, with a clear message, instead of on the first append.
    pub async fn connect(config: EsdbConfig) -> Result<Self, StoreError> {
        let store = Self::open(config)?;
        store.head().await.map_err(|e| {
            let why = match e {
                StoreError::Unavailable(why) => why,
                other => other.to_string(),
            };
            StoreError::Unavailable(format!(
                "cannot reach EventStoreDB at {}: {why}",
                redact(&store.inner.config.url)
            ))
        })?;
        Ok(store)
    }

    pub fn config(&self) -> &EsdbConfig {
        &self.inner.config
    }

    /// Runs `call` on the store's runtime within the deadline.
    async fn run<T, F>(
        &self,
        what: String,
        call: impl FnOnce(Arc<Inner>) -> F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let deadline = self.inner.config.deadline;
        let task = self.inner.handle.spawn(call(self.inner.clone()));
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(joined)) => Err(StoreError::Unavailable(format!("{what}: {joined}"))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "{what}: no answer within {deadline:?}; the outcome is unknown"
            ))),
        }
    }

    fn server_stream(&self, stream: &StreamName) -> String {
        server_stream(&self.inner.config.namespace, stream)
    }
}

pub(crate) fn server_stream(namespace: &str, stream: &StreamName) -> String {
    format!("{namespace}{stream}")
}

/// The filter that selects this store's SKU streams in `$all`.
pub(crate) fn sku_filter(namespace: &str) -> SubscriptionFilter {
    SubscriptionFilter::on_stream_name()
        .add_prefix(format!("{namespace}{}", StreamName::SKU_PREFIX))
}

/// What a read reads.
enum Source<'a> {
    Stream(&'a str, &'a ReadStreamOptions),
    All(&'a ReadAllOptions),
}

impl Inner {
    fn deadline(&self) -> Duration {
        self.config.deadline
    }

    /// One append of events that fit one server append.
    async fn append_once(
        &self,
        stream: &StreamName,
        server_stream: &str,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        let options = AppendToStreamOptions::default()
            .stream_state(convert::stream_state(expected))
            .deadline(self.deadline())
            .requires_leader(true);
        let outgoing: Vec<_> = events.into_iter().map(convert::outgoing).collect();
        let mut attempt = 1;
        loop {
            match self
                .client
                .append_to_stream(server_stream, &options, outgoing.clone())
                .await
            {
                Ok(written) => {
                    let revision = written.next_expected_version;
                    let mut position = convert::position(written.position);
                    if position == Position::START {
                        // The server does not report positions for a retry it recognised
                        // as already written; the stream knows where it landed.
                        if let Some(last) = self
                            .read_stream_page(server_stream, revision, 1)
                            .await?
                            .pop()
                        {
                            position = last.position;
                        }
                    }
                    return Ok(AppendResult { revision, position });
                }
                // Refused before writing anything; the client is already finding the
                // leader. Sending the same ids at the same expectation again is safe.
                Err(kurrentdb::Error::NotLeaderException(_)) if attempt < NOT_LEADER_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
                }
                Err(e) => return Err(append_error(stream, expected, e)),
            }
        }
    }

    /// Reads `source` into up to `max` items: `keep` maps each event, or skips it with
    /// `None`. A missing stream reads as empty.
    async fn read<T>(
        &self,
        source: Source<'_>,
        what: &str,
        max: usize,
        mut keep: impl FnMut(&kurrentdb::RecordedEvent) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let opened = match source {
            Source::Stream(name, options) => self.client.read_stream(name, options).await,
            Source::All(options) => self.client.read_all(options).await,
        };
        let mut reader = match opened {
            Ok(reader) => reader,
            Err(e) => return read_error(what, e),
        };
        let mut items = Vec::new();
        while items.len() < max {
            match reader.next().await {
                Ok(Some(resolved)) => {
                    if let Some(recorded) = resolved.event.as_ref()
                        && let Some(item) = keep(recorded)?
                    {
                        items.push(item);
                    }
                }
                Ok(None) => break,
                Err(e) => return read_error(what, e),
            }
        }
        Ok(items)
    }

    fn ours(&self, recorded: &kurrentdb::RecordedEvent) -> Option<RecordedEvent> {
        incoming(&self.config.namespace, ServerEvent::from(recorded))
    }

    /// Up to `max` events of a stream from revision `from`, in order.
    async fn read_stream_page(
        &self,
        server_stream: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let options = ReadStreamOptions::default()
            .position(StreamPosition::Position(from))
            .forwards()
            .max_count(max)
            .deadline(self.deadline())
            .requires_leader(true);
        let source = Source::Stream(server_stream, &options);
        self.read(source, &format!("read {server_stream}"), max, |recorded| {
            let event = self.ours(recorded).ok_or_else(|| StoreError::Corrupt {
                position: convert::position(recorded.position),
                reason: format!(
                    "{server_stream} returned an event of {}",
                    recorded.stream_id()
                ),
            })?;
            Ok(Some(event))
        })
        .await
    }

    /// Up to `max` of this store's SKU events after `after`, in commit order.
    pub(crate) async fn read_all_page(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // The server includes the event at `after`; ask for one more and drop it.
        let options = ReadAllOptions::default()
            .position(convert::start_after(after))
            .forwards()
            .filter(sku_filter(&self.config.namespace))
            .max_count(max.saturating_add(1))
            .deadline(self.deadline())
            .requires_leader(true);
        self.read(Source::All(&options), "read $all", max, |recorded| {
            Ok(self.ours(recorded).filter(|e| e.position > after))
        })
        .await
    }

    /// The position of this store's last SKU event.
    async fn head(&self) -> Result<Position, StoreError> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .filter(sku_filter(&self.config.namespace))
            .max_count(1)
            .deadline(self.deadline())
            .requires_leader(true);
        let last = self
            .read(
                Source::All(&options),
                "read the end of $all",
                1,
                |recorded| Ok(self.ours(recorded).map(|e| e.position)),
            )
            .await?;
        Ok(last.first().copied().unwrap_or(Position::START))
    }

    /// The latest snapshot event of a snapshot stream, with its revision in that stream.
    async fn last_snapshot(
        &self,
        snapshot_stream: &str,
    ) -> Result<Option<(Snapshot, u64)>, StoreError> {
        let options = ReadStreamOptions::default()
            .position(StreamPosition::End)
            .max_count(1)
            .deadline(self.deadline())
            .requires_leader(true);
        let source = Source::Stream(snapshot_stream, &options);
        let what = format!("read {snapshot_stream}");
        let mut last = self
            .read(source, &what, 1, |recorded| {
                let snapshot = convert::snapshot_of(ServerEvent::from(recorded))?;
                Ok(Some((snapshot, recorded.revision)))
            })
            .await?;
        Ok(last.pop())
    }

    async fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> Result<(), StoreError> {
        let snapshot_stream = convert::snapshot_stream(&self.config.namespace, stream);
        let event = convert::snapshot_event(stream, snapshot)?;
        let revision = snapshot_revision(&event)?;
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let expected = match self.last_snapshot(&snapshot_stream).await? {
                Some((stored, _)) if stored.revision >= revision => return Ok(()),
                Some((_, at)) => ExpectedRevision::Exact(at),
                None => {
                    // A new snapshot stream keeps only its latest event.
                    let metadata = StreamMetadataBuilder::new().max_count(1).build();
                    let options = AppendToStreamOptions::default()
                        .deadline(self.deadline())
                        .requires_leader(true);
                    self.client
                        .set_stream_metadata(snapshot_stream.as_str(), &options, &metadata)
                        .await
                        .map_err(|e| {
                            call_error(&format!("set $maxCount on {snapshot_stream}"), e)
                        })?;
                    ExpectedRevision::NoStream
                }
            };
            let name = StreamName::new(snapshot_stream.clone())?;
            match self
                .append_once(&name, &snapshot_stream, expected, vec![event.clone()])
                .await
            {
                Ok(_) => return Ok(()),
                // Another engine saved one meanwhile: look again, it may be newer.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{snapshot_stream}: kept racing other writers; snapshot skipped"
        )))
    }
}

/// The revision a snapshot event was built for (it is in the metadata we just encoded).
fn snapshot_revision(event: &EventData) -> Result<u64, StoreError> {
    let parsed = convert::ServerEvent {
        stream_id: "",
        revision: 0,
        position: kurrentdb::Position::start(),
        id: event.event_id,
        event_type: &event.event_type,
        data: &event.data,
        metadata: &event.metadata,
        created_millis: 0,
    };
    Ok(convert::snapshot_of(parsed)?.revision)
}

#[async_trait]
impl EventStore for EsdbStore {
    /// Appends as one server append when the batch fits the server's limit, which is
    /// always so for the engine's batches at the default limit. Otherwise the batch goes
    /// out as consecutive appends, each expecting where the previous one ended; if a later
    /// one fails, the first ones stand and the error says the outcome must be read (the
    /// engine does exactly that, and answers each command by what landed).
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        check_batch(&events)?;
        let chunks = split(&events, self.inner.config.max_append_bytes)?;
        let server_stream = self.server_stream(stream);
        let stream = stream.clone();
        let total = events.len();
        self.run(format!("append to {stream}"), move |inner| async move {
            let mut expected = expected;
            let mut landed: Option<AppendResult> = None;
            for chunk in chunks {
                let written = chunk.start;
                let part = events[chunk].to_vec();
                match inner
                    .append_once(&stream, &server_stream, expected, part)
                    .await
                {
                    Ok(result) => {
                        expected = ExpectedRevision::Exact(result.revision);
                        landed = Some(result);
                    }
                    Err(e) if landed.is_none() => return Err(e),
                    Err(e) => {
                        return Err(StoreError::Unavailable(format!(
                            "{stream}: the first {written} of {total} events landed, then: {e}; \
                             read the stream for the outcome"
                        )));
                    }
                }
            }
            landed.ok_or_else(|| {
                StoreError::InvalidRequest("an append needs at least one event".into())
            })
        })
        .await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let server_stream = self.server_stream(stream);
        self.run(format!("read {stream}"), move |inner| async move {
            inner.read_stream_page(&server_stream, from, max).await
        })
        .await
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.run("read $all".into(), move |inner| async move {
            inner.read_all_page(after, max).await
        })
        .await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.run("read the end of $all".into(), |inner| async move {
            inner.head().await
        })
        .await
    }

    fn subscribe_all(&self, after: Position) -> Subscription {
        subscription::subscribe(self.inner.clone(), after)
    }

    async fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> Result<(), StoreError> {
        let stream = stream.clone();
        self.run(
            format!("save a snapshot of {stream}"),
            move |inner| async move { inner.save_snapshot(&stream, snapshot).await },
        )
        .await
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>, StoreError> {
        let snapshot_stream = convert::snapshot_stream(&self.inner.config.namespace, stream);
        self.run(format!("load the snapshot of {stream}"), move |inner| async move {
            Ok(inner.last_snapshot(&snapshot_stream).await?.map(|(s, _)| s))
        })
        .await
    }
}
