//! [`PostgresStore`]: the [`EventStore`] port over one PostgreSQL schema.
//!
//! All I/O runs on the store's own small runtime, whichever runtime the caller is on (an
//! actix arbiter, a test's), and every call has a deadline. Appends go to the node's one
//! writer (writer.rs); reads share a few pipelined connections (conn.rs); one more
//! connection `LISTEN`s for other nodes' commits and moves the head that wakes
//! subscribers, with a slow re-read beneath it in case a notification was missed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use stockade_domain::Timestamp;
use stockade_store::plan::check_batch;
use stockade_store::subscription::{advance_head, catch_up_then_live};
use stockade_store::{
    AppendResult, EventData, EventStore, ExpectedRevision, Position, RecordedEvent, Snapshot,
    StoreError, StreamName, Subscription,
};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use crate::config::{PgConfig, redact};
use crate::conn::{Readers, connect, describe};
use crate::writer::{Counters, Request, Writer};

/// Appends waiting for the writer before callers wait for room.
const QUEUE: usize = 8_192;

/// What every handle and task shares.
pub(crate) struct Inner {
    pub config: PgConfig,
    /// `config`, parsed once by `PgConfig::validate`.
    pub pg: tokio_postgres::Config,
    pub handle: tokio::runtime::Handle,
    pub readers: Readers,
    requests: mpsc::Sender<Request>,
    head: Arc<watch::Sender<Position>>,
    counters: Arc<Counters>,
}

/// Owns the runtime; the last handle to go shuts it down without blocking.
struct Owner {
    runtime: Option<Runtime>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// PostgreSQL behind the [`EventStore`] port. Clones share one writer and one runtime;
/// several processes (nodes) may open the same schema at once.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &redact(&self.inner.config.url))
            .field("schema", &self.inner.config.schema)
            .finish()
    }
}

/// Writer statistics: how many appends shared each commit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PgStats {
    pub commits: u64,
    pub appends: u64,
    pub events: u64,
}

impl PostgresStore {
    /// Checks `config`, connects, creates the log's tables if they are missing (or checks
    /// their version), and starts the writer and the listener. A wrong address, wrong
    /// credentials or missing rights fail here with the server's reason.
    pub async fn connect(config: PgConfig) -> Result<Self, StoreError> {
        let pg = config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stockade-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("start the PostgreSQL runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let owner = Arc::new(Owner {
            runtime: Some(runtime),
        });
        let schema = config.schema.clone();
        let url = config.url.clone();
        let setup_pg = pg.clone();
        let deadline = config.deadline;
        let head: Position = spawn_within(&handle, deadline, "set up the log", async move {
            let mut client = connect(&setup_pg).await?;
            crate::schema::prepare(&mut client, &schema).await?;
            crate::schema::read_head(&client, &schema).await
        })
        .await
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot use PostgreSQL at {}: {e}", redact(&url)))
        })?;
        let head = Arc::new(watch::Sender::new(head));
        let counters = Arc::new(Counters::default());
        let (requests, queue) = mpsc::channel(QUEUE);
        let writer = Writer::new(
            pg.clone(),
            config.schema.clone(),
            config.max_group,
            head.clone(),
            counters.clone(),
        );
        handle.spawn(writer.run(queue));
        handle.spawn(listen(pg.clone(), config.schema.clone(), head.clone()));
        let readers = Readers::new(pg.clone(), config.schema.clone(), url, config.readers);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                pg,
                handle,
                readers,
                requests,
                head,
                counters,
            }),
            _owner: owner,
        })
    }

    pub fn config(&self) -> &PgConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> PgStats {
        let c = &self.inner.counters;
        PgStats {
            commits: c.commits.load(Ordering::Relaxed),
            appends: c.appends.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
        }
    }

    /// The shared HTTP idempotency table of this log (see [`crate::RequestKeyTable`]).
    pub fn request_keys(&self) -> crate::RequestKeyTable {
        crate::RequestKeyTable::new(self.clone())
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Runs `call` with a read connection on the store's runtime, within the deadline.
    pub(crate) async fn read<T, F, Fut>(&self, what: &str, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<crate::conn::Reader>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, String>> + Send,
    {
        let inner = self.inner.clone();
        spawn_within(
            &self.inner.handle,
            self.inner.config.deadline,
            what,
            async move {
                let reader = inner.readers.get().await?;
                call(reader).await
            },
        )
        .await
        .map_err(|e| StoreError::Unavailable(format!("{what}: {e}")))
    }
}

/// Runs `work` on `handle` and waits at most `deadline` for it. A caller that stops
/// waiting stops the work too.
async fn spawn_within<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    deadline: Duration,
    what: &str,
    work: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    let task = handle.spawn(work);
    let abort = task.abort_handle();
    let _stop = AbortOnDrop(abort);
    match tokio::time::timeout(deadline, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(joined)) => Err(format!("{what}: {joined}")),
        Err(_) => Err(format!("no answer within {deadline:?}")),
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows other nodes' commits: `LISTEN`s on the log's channel and moves the head to
/// each announced position. Reconnects after a pause when the connection breaks, and
/// reads the head then, so nothing announced while it was away is waited for in vain.
///
/// It runs until the store's runtime shuts down (the last handle dropped).
async fn listen(pg: tokio_postgres::Config, schema: String, head: Arc<watch::Sender<Position>>) {
    let channel = crate::schema::channel(&schema);
    loop {
        match pg.connect(tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                // The connection is driven by a task of its own, which also receives the
                // notifications; it ends when the connection does (or the client is
                // dropped).
                let announced = head.clone();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx)).boxed();
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if let Ok(to) = n.payload().parse() {
                                    advance_head(&announced, Position::at(to));
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the listening connection broke");
                                break;
                            }
                        }
                    }
                });
                let listening = async {
                    client
                        .batch_execute(&format!("LISTEN {channel}"))
                        .await
                        .map_err(|e| describe(&e))?;
                    crate::schema::read_head(&client, &schema).await
                };
                match listening.await {
                    Ok(at) => {
                        advance_head(&head, at);
                        let _ = driver.await;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot listen for other nodes' commits"),
                }
                drop(client);
            }
            Err(e) => tracing::warn!(error = %describe(&e), "cannot connect to listen"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn corrupt(position: i64, reason: impl Into<String>) -> String {
    format!("corrupt row at position {position}: {}", reason.into())
}

/// One `EVENT_COLUMNS` row.
fn row_to_event(row: &tokio_postgres::Row) -> Result<RecordedEvent, String> {
    let sql = |e: tokio_postgres::Error| describe(&e);
    let position: i64 = row.try_get(0).map_err(sql)?;
    let stream: String = row.try_get(1).map_err(sql)?;
    let revision: i64 = row.try_get(2).map_err(sql)?;
    let recorded_at: i64 = row.try_get(7).map_err(sql)?;
    Ok(RecordedEvent {
        stream: StreamName::new(stream).map_err(|e| corrupt(position, e.to_string()))?,
        revision: u64::try_from(revision).map_err(|_| corrupt(position, "negative revision"))?,
        position: Position::at(
            u64::try_from(position).map_err(|_| corrupt(position, "negative position"))?,
        ),
        event_id: row.try_get(3).map_err(sql)?,
        event_type: row.try_get(4).map_err(sql)?,
        data: row.try_get(5).map_err(sql)?,
        metadata: row.try_get(6).map_err(sql)?,
        recorded_at: Timestamp::from_millis(u64::try_from(recorded_at).unwrap_or(0)),
    })
}

fn events(rows: Vec<tokio_postgres::Row>) -> Result<Vec<RecordedEvent>, String> {
    rows.iter().map(row_to_event).collect()
}

/// A count or revision as a bigint parameter; larger values mean "no limit".
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        check_batch(&events)?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            stream: stream.clone(),
            expected,
            events,
            reply,
        };
        let deadline = self.inner.config.deadline;
        let queued = tokio::time::timeout(deadline, self.inner.requests.send(request)).await;
        match queued {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Unavailable("the writer stopped".into())),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "the writer's queue stayed full for {deadline:?}"
                )));
            }
        }
        match tokio::time::timeout(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Unavailable(
                "the writer stopped before answering; the outcome is unknown".into(),
            )),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no commit within {deadline:?}; the outcome is unknown"
            ))),
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let name = stream.as_str().to_owned();
        let (from, max) = (clamp(from), clamp(max as u64));
        self.read("read a stream", move |r| async move {
            let rows = r
                .client
                .query(&r.read_stream, &[&name, &from, &max])
                .await
                .map_err(|e| describe(&e))?;
            events(rows)
        })
        .await
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (after, max) = (clamp(after.commit), clamp(max as u64));
        self.read("read the log", move |r| async move {
            let rows = r
                .client
                .query(&r.read_all, &[&after, &max])
                .await
                .map_err(|e| describe(&e))?;
            events(rows)
        })
        .await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.read("read the head", |r| async move {
            let head: i64 = r
                .client
                .query_one(&r.head, &[])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| describe(&e))?;
            Ok(Position::at(u64::try_from(head).unwrap_or(0)))
        })
        .await
    }

    fn subscribe_all(&self, after: Position) -> Subscription {
        catch_up_then_live(
            Arc::new(self.clone()),
            after,
            self.inner.head.subscribe(),
            Some(self.inner.config.poll),
        )
    }

    async fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> Result<(), StoreError> {
        let name = stream.as_str().to_owned();
        let revision = clamp(snapshot.revision);
        self.read("save a snapshot", move |r| async move {
            r.client
                .execute(&r.save_snapshot, &[&name, &revision, &snapshot.data])
                .await
                .map_err(|e| describe(&e))?;
            Ok(())
        })
        .await
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>, StoreError> {
        let name = stream.as_str().to_owned();
        self.read("load a snapshot", move |r| async move {
            let row = r
                .client
                .query_opt(&r.load_snapshot, &[&name])
                .await
                .map_err(|e| describe(&e))?;
            row.map(|row| {
                let revision: i64 = row.try_get(0).map_err(|e| describe(&e))?;
                Ok(Snapshot {
                    revision: u64::try_from(revision)
                        .map_err(|_| format!("snapshot of {name} at revision {revision}"))?,
                    data: row.try_get(1).map_err(|e| describe(&e))?,
                })
            })
            .transpose()
        })
        .await
    }

    fn indexed(&self) -> bool {
        true
    }

    async fn find_events(
        &self,
        stream: &StreamName,
        ids: &[Uuid],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let name = stream.as_str().to_owned();
        let ids = ids.to_vec();
        self.read("find events", move |r| async move {
            let rows = r
                .client
                .query(&r.find_events, &[&ids])
                .await
                .map_err(|e| describe(&e))?;
            let mut found = events(rows)?;
            found.retain(|e| e.stream.as_str() == name);
            found.sort_by_key(|e| e.revision);
            found.dedup_by_key(|e| e.revision);
            Ok(found)
        })
        .await
    }

    async fn read_subject(
        &self,
        subject: Uuid,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = clamp(max as u64);
        self.read("read a subject", move |r| async move {
            let rows = r
                .client
                .query(&r.read_subject, &[&subject, &max])
                .await
                .map_err(|e| describe(&e))?;
            events(rows)
        })
        .await
    }

    async fn read_correlation(
        &self,
        correlation: &str,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let correlation = correlation.to_owned();
        let max = clamp(max as u64);
        self.read("read a correlation", move |r| async move {
            let rows = r
                .client
                .query(&r.read_correlation, &[&correlation, &max])
                .await
                .map_err(|e| describe(&e))?;
            events(rows)
        })
        .await
    }

    async fn streams_with_open_subjects(&self) -> Result<Vec<StreamName>, StoreError> {
        self.read("list streams with open subjects", |r| async move {
            let rows = r
                .client
                .query(&r.open_streams, &[])
                .await
                .map_err(|e| describe(&e))?;
            rows.iter()
                .map(|row| {
                    let name: String = row.try_get(0).map_err(|e| describe(&e))?;
                    StreamName::new(name).map_err(|e| e.to_string())
                })
                .collect()
        })
        .await
    }
}
