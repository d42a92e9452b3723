//! [`EsdbStore`]: the event store port over EventStoreDB's gRPC client.
//!
//! All gRPC I/O runs on the store's own small runtime, whichever runtime the caller is on
//! (the engine's actors live on actix arbiters): a call is spawned there and its result
//! awaited, as the SQLite backend hands appends to its writer thread. Every call is bounded
//! by the configured deadline twice over: the gRPC deadline the server also sees, and a
//! timer around the whole call, which covers finding a node to talk to. A call that runs
//! out of time is aborted, so it cannot land later behind the caller's back.
//!
//! The client is replaced when it fails in a way it cannot recover from (`connection`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kurrentdb::{
    AppendToStreamOptions, ClientSettings, ReadAllOptions, ReadStreamOptions,
    StreamMetadataBuilder, StreamPosition, SubscriptionFilter,
};
use stockade_store::plan::check_batch;
use stockade_store::{
    AppendResult, EventData, EventStore, ExpectedRevision, Position, RecordedEvent, Snapshot,
    StoreError, StreamName, Subscription,
};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::batch::split;
use crate::config::{EsdbConfig, redact};
use crate::connection::Connection;
use crate::convert::{self, ServerEvent, append_error, call_error, incoming, read_error};
use crate::subscription;

/// Attempts at a call a node refused because it was not the leader (nothing was written,
/// nothing read), while the client follows the redirect to the new leader.
const NOT_LEADER_ATTEMPTS: usize = 3;
/// Attempts at saving a snapshot that races another writer of the same snapshot stream.
const SNAPSHOT_ATTEMPTS: usize = 3;

/// What the store's tasks share: the client, the settings, the runtime's handle. The
/// runtime itself is owned by [`EsdbStore`] alone, so tasks holding this never keep it alive.
pub(crate) struct Inner {
    pub connection: Connection,
    /// For subscriptions, which run their own clients (see `subscription`).
    pub settings: ClientSettings,
    pub config: EsdbConfig,
    pub handle: tokio::runtime::Handle,
    /// Changes to `true` (or closes) when the store is dropped; subscriptions end then.
    pub closing: watch::Receiver<bool>,
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
    /// Dropping it tells subscriptions that the store is gone.
    _closing: watch::Sender<bool>,
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
    /// call connects ([`EsdbStore::connect`] makes one at once).
    pub fn open(config: EsdbConfig) -> Result<Self, StoreError> {
        let settings = config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads)
            .thread_name("stockade-esdb")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("start the EventStoreDB runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let connection = Connection::new(settings.clone(), handle.clone(), config.reconnect_min)
            .map_err(|e| {
                StoreError::InvalidRequest(format!(
                    "EventStoreDB client for {}: {e}",
                    redact(&config.url)
                ))
            })?;
        let (closing_tx, closing) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(Inner {
                connection,
                settings,
                config,
                handle,
                closing,
            }),
            runtime: Some(runtime),
            _closing: closing_tx,
        })
    }

    /// Opens the store and reads the last event of `$all` once (unfiltered, so it costs
    /// one event whatever the log holds). A wrong address, wrong credentials, or a user
    /// who may not read `$all` fail here, with a clear message, not on the first append.
    pub async fn connect(config: EsdbConfig) -> Result<Self, StoreError> {
        let store = Self::open(config)?;
        let probe = store.run("read the end of $all".into(), |inner| async move {
            inner.probe().await
        });
        probe.await.map_err(|e| {
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
        let mut task = self.inner.handle.spawn(call(self.inner.clone()));
        // If the caller stops waiting (its own timeout, or it was dropped), or the deadline
        // passes, the call stops too: nothing of it may happen after its caller was told
        // it failed, except what was already on the wire, which is why such an outcome is
        // "unknown".
        let _stop = AbortOnDrop(task.abort_handle());
        match tokio::time::timeout(deadline, &mut task).await {
            Ok(Ok(result)) => result,
            // A panic inside the client ends only this call.
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
            let (client, generation) = self.connection.client();
            let written = client
                .append_to_stream(server_stream, &options, outgoing.clone())
                .await;
            if let Err(e) = &written {
                self.connection.failed(generation, e);
            }
            match written {
                Ok(written) => {
                    let revision = written.next_expected_version;
                    let mut position = convert::position(written.position);
                    let deduplicated = position == Position::START;
                    if deduplicated {
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
                    return Ok(AppendResult {
                        revision,
                        position,
                        deduplicated,
                    });
                }
                // Refused before writing anything; the client is already finding the
                // leader. Sending the same ids at the same expectation again is safe.
                Err(kurrentdb::Error::NotLeaderException(_)) if attempt < NOT_LEADER_ATTEMPTS => {
                    attempt += 1;
                    redirect_pause(attempt).await;
                }
                Err(e) => return Err(append_error(stream, expected, e)),
            }
        }
    }

    /// Reads `source` into up to `max` items: `keep` maps each event, or skips it with
    /// `None`. A missing stream reads as empty; `$all` is never missing, so there a
    /// "not found" is an error. A "not leader" refusal is retried from the start.
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
        let mut attempt = 1;
        loop {
            let (client, generation) = self.connection.client();
            let failed = match self.read_once(&client, &source, max, &mut keep).await {
                Ok(items) => return Ok(items),
                Err(ReadFailure::Store(e)) => return Err(e),
                Err(ReadFailure::Client(e)) => e,
            };
            self.connection.failed(generation, &failed);
            match failed {
                kurrentdb::Error::NotLeaderException(_) if attempt < NOT_LEADER_ATTEMPTS => {
                    attempt += 1;
                    redirect_pause(attempt).await;
                }
                kurrentdb::Error::ResourceNotFound if matches!(source, Source::All(_)) => {
                    return Err(call_error(what, failed));
                }
                other => return read_error(what, other),
            }
        }
    }

    async fn read_once<T>(
        &self,
        client: &kurrentdb::Client,
        source: &Source<'_>,
        max: usize,
        keep: &mut impl FnMut(&kurrentdb::RecordedEvent) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, ReadFailure> {
        let mut reader = match source {
            Source::Stream(name, options) => client.read_stream(*name, options).await,
            Source::All(options) => client.read_all(options).await,
        }
        .map_err(ReadFailure::Client)?;
        let mut items = Vec::new();
        while items.len() < max {
            match reader.next().await.map_err(ReadFailure::Client)? {
                Some(resolved) => {
                    if let Some(recorded) = resolved.event.as_ref()
                        && let Some(item) = keep(recorded).map_err(ReadFailure::Store)?
                    {
                        items.push(item);
                    }
                }
                None => break,
            }
        }
        Ok(items)
    }

    /// Reads the last event of `$all`, unfiltered: proof that the server answers, the
    /// credentials work and the user may read `$all`.
    async fn probe(&self) -> Result<(), StoreError> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .max_count(1)
            .deadline(self.deadline())
            .requires_leader(true);
        self.read(Source::All(&options), "read the end of $all", 1, |_| {
            Ok(Some(()))
        })
        .await
        .map(drop)
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

    /// The position of this store's last SKU event. The server filters while reading
    /// backwards from the end, so this is quick when SKU events are recent and reads the
    /// whole log for a namespace that has none.
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

    /// The latest snapshot event of a snapshot stream and its revision in that stream.
    /// An unreadable snapshot is reported (`None` beside its revision), so that loading
    /// replays the stream and saving replaces it.
    async fn last_snapshot(
        &self,
        snapshot_stream: &str,
    ) -> Result<Option<(Option<Snapshot>, u64)>, StoreError> {
        let options = ReadStreamOptions::default()
            .position(StreamPosition::End)
            .max_count(1)
            .deadline(self.deadline())
            .requires_leader(true);
        let source = Source::Stream(snapshot_stream, &options);
        let what = format!("read {snapshot_stream}");
        let mut last = self
            .read(source, &what, 1, |recorded| {
                let snapshot = match convert::snapshot_of(ServerEvent::from(recorded)) {
                    Ok(snapshot) => Some(snapshot),
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable snapshot ignored; the stream will be replayed");
                        None
                    }
                };
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
        let revision = snapshot.revision;
        let event = convert::snapshot_event(stream, snapshot)?;
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let expected = match self.last_snapshot(&snapshot_stream).await? {
                Some((Some(stored), _)) if stored.revision >= revision => return Ok(()),
                Some((_, at)) => ExpectedRevision::Exact(at),
                None => {
                    // A new snapshot stream keeps only its latest event.
                    let metadata = StreamMetadataBuilder::new().max_count(1).build();
                    let options = AppendToStreamOptions::default()
                        .deadline(self.deadline())
                        .requires_leader(true);
                    let (client, generation) = self.connection.client();
                    let set = client
                        .set_stream_metadata(snapshot_stream.as_str(), &options, &metadata)
                        .await;
                    if let Err(e) = set {
                        self.connection.failed(generation, &e);
                        return Err(call_error(
                            &format!("set $maxCount on {snapshot_stream}"),
                            e,
                        ));
                    }
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

/// Why a read failed: the client (retry or map it), or our own check of what it read.
enum ReadFailure {
    Client(kurrentdb::Error),
    Store(StoreError),
}

/// Aborts a task when dropped; a no-op once the task has finished.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A short pause before retrying a call a node refused as not the leader.
async fn redirect_pause(attempt: usize) {
    tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
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
        self.run(
            format!("load the snapshot of {stream}"),
            move |inner| async move {
                Ok(inner
                    .last_snapshot(&snapshot_stream)
                    .await?
                    .and_then(|(snapshot, _)| snapshot))
            },
        )
        .await
    }
}
