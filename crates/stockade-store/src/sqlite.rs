//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! One writer thread owns the only write connection. It takes every append queued by any
//! stream, commits them in one transaction (one fsync), then answers each caller and wakes
//! subscribers: the busier the store, the more appends share an fsync. Readers use their
//! own connections, so reads never wait behind a commit.
//!
//! Invariant: an append is acknowledged only after the transaction holding it committed,
//! and the head position is advanced only then, so nothing a caller or subscriber has seen
//! can be rolled back.
//!
//! The file is plain SQLite: `sqlite3 data/stockade.db 'select * from event_log'`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use stockade_domain::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::plan::{Plan, check_batch, plan_append};
use crate::subscription::{advance_head, catch_up_then_live};
use crate::{
    AppendResult, EventData, EventStore, ExpectedRevision, Position, RecordedEvent, Snapshot,
    StoreError, StreamName, Subscription,
};

/// Schema version kept in `PRAGMA user_version`. Version 2 added the history indexes
/// (event id, subject, correlation, open subjects); a version 1 file is migrated at open.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    last_revision INTEGER NOT NULL,
    -- Subjects opened and not yet closed in the stream (live holds): kept with the row
    -- every append updates anyway, so it costs no page of its own.
    open_subjects INTEGER NOT NULL DEFAULT 0
);
-- position is the rowid: it grows with commit order and is never reused (no deletes).
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY,
    stream_id   INTEGER NOT NULL REFERENCES streams (id),
    revision    INTEGER NOT NULL,
    event_id    BLOB    NOT NULL,
    event_type  TEXT    NOT NULL,
    data        BLOB    NOT NULL,
    metadata    BLOB    NOT NULL,
    recorded_at INTEGER NOT NULL,
    subject     BLOB,
    correlation TEXT,
    UNIQUE (stream_id, revision)
);
-- History is found through these, written in the same transaction as the events, so
-- that the engine keeps only live state in memory (see EventIndex).
CREATE INDEX IF NOT EXISTS events_by_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_by_subject ON events (subject) WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_correlation ON events (correlation)
    WHERE correlation IS NOT NULL;
CREATE TABLE IF NOT EXISTS snapshots (
    stream   TEXT    PRIMARY KEY,
    revision INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    taken_at INTEGER NOT NULL
);
-- For people with the sqlite3 shell.
CREATE VIEW IF NOT EXISTS event_log AS
    SELECT e.position, s.name AS stream, e.revision, lower(hex(e.event_id)) AS event_id,
           e.event_type, datetime(e.recorded_at / 1000, 'unixepoch') AS recorded_at,
           length(e.data) AS data_bytes
    FROM events e JOIN streams s ON s.id = e.stream_id;
";

/// The columns [`row_to_event`] reads, in its order, from `events e` and `streams s`: a
/// literal, so that each read below is one `concat!` with its own FROM clause.
macro_rules! select_event_columns {
    () => {
        "SELECT e.position, s.name, e.revision, e.event_id, e.event_type, e.data, \
         e.metadata, e.recorded_at"
    };
}

const SELECT_EVENT: &str = concat!(
    select_event_columns!(),
    " FROM events e JOIN streams s ON s.id = e.stream_id"
);

/// `SELECT_EVENT` for reads by position: the projector's read, once per batch. `NOT
/// INDEXED` keeps the plan (the rowid range, then the stream by its key) and keeps the
/// planner off the partial indexes.
const SELECT_EVENT_BY_POSITION: &str = concat!(
    select_event_columns!(),
    " FROM events e NOT INDEXED JOIN streams s ON s.id = e.stream_id"
);

/// How the embedded store is opened. Defaults work out of the box.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    path: PathBuf,
    max_group: usize,
    queue: usize,
    max_readers: usize,
    cross_process_poll: Duration,
    wal_limit: u64,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_group: 4096,
            queue: 65_536,
            max_readers: 8,
            cross_process_poll: Duration::from_millis(500),
            wal_limit: 64 * 1024 * 1024,
        }
    }

    /// Most write requests committed in one transaction (default 4096).
    pub fn max_group(mut self, n: usize) -> Self {
        self.max_group = n.max(1);
        self
    }

    /// Write requests that may wait for the writer before `append` waits too (default 65536).
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }

    /// Idle reader connections kept open (default 8).
    pub fn max_readers(mut self, n: usize) -> Self {
        self.max_readers = n;
        self
    }

    /// WAL size past which the checkpointer makes room: it waits for the readers of the
    /// WAL to finish (holding appends back meanwhile) and starts the WAL again from an
    /// empty file (default 64 MiB). Passive checkpoints alone cannot, while reads never
    /// stop: the WAL would grow for as long as the load lasts.
    pub fn wal_limit(mut self, bytes: u64) -> Self {
        self.wal_limit = bytes.max(1);
        self
    }

    /// How often a caught-up subscriber looks for events written by *another process*
    /// (default 500 ms). Appends through this handle wake subscribers at once.
    pub fn cross_process_poll(mut self, every: Duration) -> Self {
        self.cross_process_poll = every;
        self
    }
}

/// Counters of the writer, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (one fsync each).
    pub commits: u64,
    /// Appends acknowledged, retries included.
    pub appends: u64,
    /// Events written.
    pub events: u64,
}

impl WriterStats {
    /// Appends that shared one commit, on average.
    pub fn appends_per_commit(&self) -> f64 {
        ratio(self.appends, self.commits)
    }

    /// Events written per commit, on average.
    pub fn events_per_commit(&self) -> f64 {
        ratio(self.events, self.commits)
    }

    /// The counts since `earlier`.
    pub fn since(&self, earlier: &WriterStats) -> WriterStats {
        WriterStats {
            commits: self.commits.saturating_sub(earlier.commits),
            appends: self.appends.saturating_sub(earlier.appends),
            events: self.events.saturating_sub(earlier.events),
        }
    }
}

#[allow(clippy::cast_precision_loss)] // reporting only
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    appends: AtomicU64,
    events: AtomicU64,
}

enum Request {
    Append {
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
        reply: oneshot::Sender<Result<AppendResult, StoreError>>,
    },
    Snapshot {
        stream: StreamName,
        snapshot: Snapshot,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A handle to the embedded store; clones share one writer.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SqliteConfig,
    requests: Option<mpsc::Sender<Request>>,
    readers: Mutex<Vec<Connection>>,
    head: Arc<watch::Sender<Position>>,
    counters: Arc<Counters>,
    writer: Option<JoinHandle<()>>,
    /// Dropping it tells the checkpointer to do a last pass and stop.
    checkpoints: Option<std::sync::mpsc::Sender<()>>,
    checkpointer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer commit what is queued and stop.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.checkpoints.take();
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = checkpointer.join();
        }
    }
}

fn unavailable(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{context}: {e}"))
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    fixed_plans(&conn)?;
    Ok(conn)
}

/// Turns on SQLite's query planner stability guarantee for `conn`: a cached statement
/// keeps the plan it was prepared with, whatever values are bound to it later.
///
/// Without it, SQLite prepares a statement again when a new value is bound to a
/// parameter whose value the planner looked at, such as `LIMIT ?2`: the projector's read
/// of the log was parsed and planned afresh about one time in three (found with a
/// breakpoint on `sqlite3Reprepare` under load). Every statement Stockade caches is
/// written for one plan, so nothing is lost. Every connection Stockade opens (log, read
/// models, idempotency keys) goes through this.
pub fn fixed_plans(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with default settings.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_with(SqliteConfig::new(path))
    }

    /// Opens (or creates) the store. Blocks briefly on file I/O.
    pub fn open_with(config: SqliteConfig) -> Result<Self, StoreError> {
        let path = config.path.clone();
        let context = format!("open {}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::files::private_dir(parent).map_err(|e| unavailable(&context, e))?;
        }
        if path.as_os_str() != ":memory:" {
            crate::files::private_file(&path).map_err(|e| unavailable(&context, e))?;
        }
        let mut conn =
            open_connection(&path, OpenFlags::default()).map_err(|e| unavailable(&context, e))?;
        let head = prepare(&mut conn).map_err(|e| match e {
            SchemaError::Sql(e) => unavailable(&context, e),
            SchemaError::TooNew(v) => StoreError::Unavailable(format!(
                "{context}: schema version {v} is newer than this build reads ({SCHEMA_VERSION})"
            )),
        })?;
        // The writer resets the WAL after a RESTART checkpoint; this cuts the file back.
        conn.pragma_update(None, "journal_size_limit", clamp(config.wal_limit))
            .map_err(|e| unavailable(&context, e))?;
        let head = Arc::new(watch::channel(head).0);
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(config.queue);
        let writer = Writer {
            conn,
            head: head.clone(),
            counters: counters.clone(),
            max_group: config.max_group,
        };
        let writer = std::thread::Builder::new()
            .name("stockade-sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| unavailable("start the writer thread", e))?;
        let (checkpoints, stop) = std::sync::mpsc::channel();
        let checkpoint_conn = open_connection(&path, OpenFlags::default())
            .and_then(|c| {
                c.pragma_update(None, "journal_size_limit", clamp(config.wal_limit))?;
                Ok(c)
            })
            .map_err(|e| unavailable("open the checkpointer", e))?;
        let checkpointer = std::thread::Builder::new()
            .name("stockade-sqlite-checkpoint".into())
            .spawn({
                let wal = wal_path(&path);
                let limit = config.wal_limit;
                move || checkpoint_loop(&checkpoint_conn, &wal, limit, &stop)
            })
            .map_err(|e| unavailable("start the checkpointer thread", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                requests: Some(tx),
                readers: Mutex::new(Vec::new()),
                head,
                counters,
                writer: Some(writer),
                checkpoints: Some(checkpoints),
                checkpointer: Some(checkpointer),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        WriterStats {
            commits: c.commits.load(Ordering::Relaxed),
            appends: c.appends.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
        }
    }

    async fn send(&self, request: Request) -> Result<(), StoreError> {
        let Some(requests) = &self.inner.requests else {
            return Err(StoreError::Unavailable("the store is closed".into()));
        };
        requests
            .send(request)
            .await
            .map_err(|_| StoreError::Unavailable("the writer thread has stopped".into()))
    }

    /// Runs `read` on a pooled reader connection, off the async threads.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner
                .readers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_reader(&inner.config.path)?,
            };
            let result = read(&conn);
            let mut pool = inner
                .readers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pool.len() < inner.config.max_readers {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| unavailable("read task", e))?
    }
}

impl SqliteStore {
    /// Events read by `SELECT_EVENT` followed by `filter` (its WHERE, ORDER BY and LIMIT),
    /// with `values` bound in order, on a pooled reader.
    async fn select_events(
        &self,
        filter: &'static str,
        values: Vec<Value>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.select_events_from(SELECT_EVENT, filter, values).await
    }

    /// `select_events` with another `select` (one of the `SELECT_EVENT` constants).
    async fn select_events_from(
        &self,
        select: &'static str,
        filter: &'static str,
        values: Vec<Value>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(move |conn| {
            let sql = format!("{select} {filter}");
            let mut stmt = conn.prepare_cached(&sql).map_err(read_error)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(values), row_to_event)
                .map_err(read_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(read_error)
        })
        .await
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| {
        c.pragma_update(None, "query_only", true)?;
        Ok(c)
    })
    .map_err(|e| unavailable("open a reader", e))?;
    Ok(conn)
}

/// Why the log's schema could not be created or checked at open.
enum SchemaError {
    Sql(rusqlite::Error),
    TooNew(i64),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(e: rusqlite::Error) -> Self {
        SchemaError::Sql(e)
    }
}

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies committed WAL frames into the database file, beside the writer (a passive
/// checkpoint never blocks it), until `stop` is dropped; then one last pass.
fn checkpoint_loop(
    conn: &Connection,
    wal: &Path,
    limit: u64,
    stop: &std::sync::mpsc::Receiver<()>,
) {
    loop {
        let last = matches!(
            stop.recv_timeout(CHECKPOINT_EVERY),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
        // A busy or failed pass is retried on the next tick; the WAL keeps every commit
        // durable meanwhile, it only grows.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        // A passive checkpoint copies frames but never starts the WAL again: that needs a
        // moment when no reader is in it, and under steady reads there is none. Past the
        // limit, RESTART makes that moment (new appends wait for it, a few milliseconds,
        // within the writer's busy timeout); the next commit writes from the start of the
        // file, which `journal_size_limit` then cuts back to the limit.
        if std::fs::metadata(wal).is_ok_and(|m| m.len() > limit) {
            let _ = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
        }
        if last {
            return;
        }
    }
}

/// The WAL file beside the database at `path`.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Sets durability pragmas, creates or checks the schema, returns the head position.
fn prepare(conn: &mut Connection) -> Result<Position, SchemaError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: every commit is fsynced; an acknowledged append survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The writer never checkpoints: copying the WAL into the database (and its fsync)
    // would stall every append queued behind that commit. A separate thread does it.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(SchemaError::TooNew(version));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if version == 1 {
        tx.execute_batch(
            "ALTER TABLE events ADD COLUMN subject BLOB;
             ALTER TABLE events ADD COLUMN correlation TEXT;
             ALTER TABLE streams ADD COLUMN open_subjects INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    tx.execute_batch(SCHEMA)?;
    if version == 1 {
        backfill_indexes(&tx)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    let head: i64 = tx.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
        r.get(0)
    })?;
    tx.commit()?;
    Ok(Position::at(u64::try_from(head).unwrap_or(0)))
}

/// Files every event of a version 1 log under its subject and correlation, and records the
/// open subjects: once, at the first open by a build that reads version 2. It reads the
/// whole log, in the same transaction as the schema change, so a crash leaves version 1.
/// An event the codec cannot read is left unfiled (audit verify reports it).
fn backfill_indexes(tx: &Connection) -> Result<(), rusqlite::Error> {
    let mut read = tx.prepare(&format!(
        "{SELECT_EVENT} WHERE e.position > ?1 ORDER BY e.position LIMIT 8192"
    ))?;
    let mut update =
        tx.prepare("UPDATE events SET subject = ?2, correlation = ?3 WHERE position = ?1")?;
    let mut after = 0i64;
    loop {
        let page = read
            .query_map([after], row_to_event)?
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = clamp(last.position.commit);
        for recorded in &page {
            let Ok((event, meta)) = crate::codec::decode(recorded) else {
                continue;
            };
            let index = crate::codec::index_of(&event, &meta);
            let position = clamp(recorded.position.commit);
            update.execute(params![
                position,
                index.subject.as_ref().map(Uuid::as_bytes),
                index.correlation
            ])?;
            let opened = index.open_delta();
            if opened != 0 {
                tx.prepare_cached(
                    "UPDATE streams SET open_subjects = max(0, open_subjects + ?2) \
                     WHERE id = (SELECT stream_id FROM events WHERE position = ?1)",
                )?
                .execute(params![position, opened])?;
            }
        }
    }
}

/// A row that cannot be turned into a `RecordedEvent`; carried through rusqlite's error
/// type so that `read_error` can report the position.
#[derive(Debug)]
struct CorruptRow {
    position: u64,
    reason: String,
}

impl std::fmt::Display for CorruptRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row at position {}: {}", self.position, self.reason)
    }
}

impl std::error::Error for CorruptRow {}

fn corrupt(position: i64, reason: impl Into<String>) -> rusqlite::Error {
    let row = CorruptRow {
        position: u64::try_from(position).unwrap_or(0),
        reason: reason.into(),
    };
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(row))
}

fn to_u64(position: i64, what: &str, v: i64) -> Result<u64, rusqlite::Error> {
    u64::try_from(v).map_err(|_| corrupt(position, format!("negative {what} {v}")))
}

fn row_to_event(row: &rusqlite::Row<'_>) -> Result<RecordedEvent, rusqlite::Error> {
    let position: i64 = row.get(0)?;
    let name: String = row.get(1)?;
    let id: Vec<u8> = row.get(3)?;
    Ok(RecordedEvent {
        stream: StreamName::new(name).map_err(|e| corrupt(position, e.to_string()))?,
        revision: to_u64(position, "revision", row.get(2)?)?,
        position: Position::at(to_u64(position, "position", position)?),
        event_id: Uuid::from_slice(&id)
            .map_err(|_| corrupt(position, format!("event id of {} bytes", id.len())))?,
        event_type: row
            .get(4)
            .map_err(|e| corrupt(position, format!("event type: {e}")))?,
        data: row
            .get(5)
            .map_err(|e| corrupt(position, format!("data: {e}")))?,
        metadata: row
            .get(6)
            .map_err(|e| corrupt(position, format!("metadata: {e}")))?,
        recorded_at: Timestamp::from_millis(to_u64(position, "recorded_at", row.get(7)?)?),
    })
}

fn read_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(_, _, reason) => {
            match reason.downcast::<CorruptRow>() {
                Ok(row) => StoreError::Corrupt {
                    position: Position::at(row.position),
                    reason: row.reason,
                },
                Err(other) => StoreError::Corrupt {
                    position: Position::START,
                    reason: other.to_string(),
                },
            }
        }
        rusqlite::Error::InvalidColumnType(_, column, kind) => StoreError::Corrupt {
            position: Position::START,
            reason: format!("column {column} holds {kind}"),
        },
        other => unavailable("read", other),
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        check_batch(&events)?;
        let (reply, answer) = oneshot::channel();
        self.send(Request::Append {
            stream: stream.clone(),
            expected,
            events,
            reply,
        })
        .await?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the writer stopped before answering; outcome unknown".into())
        })?
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.select_events(
            "WHERE s.name = ?1 AND e.revision >= ?2 ORDER BY e.revision LIMIT ?3",
            vec![
                Value::Text(stream.as_str().to_owned()),
                Value::Integer(clamp(from)),
                Value::Integer(clamp(max as u64)),
            ],
        )
        .await
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.select_events_from(
            SELECT_EVENT_BY_POSITION,
            "WHERE e.position > ?1 ORDER BY e.position LIMIT ?2",
            vec![
                Value::Integer(clamp(after.commit)),
                Value::Integer(clamp(max as u64)),
            ],
        )
        .await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.read(|conn| {
            let head: i64 = conn
                .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                    r.get(0)
                })
                .map_err(read_error)?;
            Ok(Position::at(u64::try_from(head).unwrap_or(0)))
        })
        .await
    }

    fn subscribe_all(&self, after: Position) -> Subscription {
        catch_up_then_live(
            Arc::new(self.clone()),
            after,
            self.inner.head.subscribe(),
            Some(self.inner.config.cross_process_poll),
        )
    }

    async fn save_snapshot(
        &self,
        stream: &StreamName,
        snapshot: Snapshot,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Snapshot {
            stream: stream.clone(),
            snapshot,
            reply,
        })
        .await?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
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
        self.read(move |conn| {
            // By the id index, always: left to itself the planner picks the stream's
            // name and scans all of its events (a hot SKU's whole history per lookup).
            let sql = concat!(
                select_event_columns!(),
                " FROM events e INDEXED BY events_by_id JOIN streams s ON s.id = e.stream_id \
                 WHERE e.event_id = ?1 AND s.name = ?2"
            );
            let mut stmt = conn.prepare_cached(sql).map_err(read_error)?;
            let mut found = Vec::new();
            for id in &ids {
                let rows = stmt
                    .query_map(params![id.as_bytes(), name], row_to_event)
                    .map_err(read_error)?;
                for row in rows {
                    found.push(row.map_err(read_error)?);
                }
            }
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
        self.select_events(
            "WHERE e.subject = ?1 ORDER BY e.position LIMIT ?2",
            vec![
                Value::Blob(subject.as_bytes().to_vec()),
                Value::Integer(clamp(max as u64)),
            ],
        )
        .await
    }

    async fn read_correlation(
        &self,
        correlation: &str,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.select_events(
            "WHERE e.correlation = ?1 ORDER BY e.position LIMIT ?2",
            vec![
                Value::Text(correlation.to_owned()),
                Value::Integer(clamp(max as u64)),
            ],
        )
        .await
    }

    async fn streams_with_open_subjects(&self) -> Result<Vec<StreamName>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT name FROM streams WHERE open_subjects > 0 ORDER BY name")
                .map_err(read_error)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(read_error)?;
            let mut streams = Vec::new();
            for name in rows {
                let name = name.map_err(read_error)?;
                streams.push(StreamName::new(name).map_err(|e| StoreError::Corrupt {
                    position: Position::START,
                    reason: e.to_string(),
                })?);
            }
            Ok(streams)
        })
        .await
    }

    async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>, StoreError> {
        let name = stream.as_str().to_owned();
        self.read(move |conn| {
            let row: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT revision, data FROM snapshots WHERE stream = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(read_error)?;
            row.map(|(revision, data)| {
                Ok(Snapshot {
                    revision: u64::try_from(revision).map_err(|_| StoreError::Corrupt {
                        position: Position::START,
                        reason: format!("snapshot revision {revision}"),
                    })?,
                    data,
                })
            })
            .transpose()
        })
        .await
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    head: Arc<watch::Sender<Position>>,
    counters: Arc<Counters>,
    max_group: usize,
}

/// The answer to one request, sent only after its group committed.
enum Answer {
    /// The result, and how many events it wrote.
    Append(Result<AppendResult, StoreError>, u64),
    Snapshot(Result<(), StoreError>),
}

impl Writer {
    fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut group = Vec::with_capacity(self.max_group);
        // Block for the first request, then take whatever else is already queued: under
        // load, everything that arrived during the previous fsync shares the next one.
        while let Some(first) = requests.blocking_recv() {
            group.push(first);
            while group.len() < self.max_group {
                match requests.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            self.commit_group(&mut group);
        }
    }

    fn commit_group(&mut self, group: &mut Vec<Request>) {
        let now = Timestamp::from_system_time(SystemTime::now());
        // Fast path: one plain transaction. Only if SQLite refused one request's content is
        // the group re-run with a savepoint per request, to answer that request alone.
        let written = match write_group(&mut self.conn, group, now, false) {
            Err(e) if is_about_the_request(&e) => write_group(&mut self.conn, group, now, true),
            other => other,
        };
        match written {
            Ok((answers, head)) => {
                let (mut appends, mut events) = (0, 0);
                if let Some(head) = head {
                    advance_head(&self.head, head);
                }
                for (request, answer) in group.drain(..).zip(answers) {
                    match (request, answer) {
                        (Request::Append { reply, .. }, Answer::Append(result, written)) => {
                            if result.is_ok() {
                                appends += 1;
                                events += written;
                            }
                            let _ = reply.send(result);
                        }
                        (Request::Snapshot { reply, .. }, Answer::Snapshot(result)) => {
                            let _ = reply.send(result);
                        }
                        // write_group answers each request in order with its own kind.
                        (Request::Append { reply, .. }, Answer::Snapshot(_)) => {
                            let _ = reply.send(Err(StoreError::Unavailable("writer bug".into())));
                        }
                        (Request::Snapshot { reply, .. }, Answer::Append(..)) => {
                            let _ = reply.send(Err(StoreError::Unavailable("writer bug".into())));
                        }
                    }
                }
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                self.counters.appends.fetch_add(appends, Ordering::Relaxed);
                self.counters.events.fetch_add(events, Ordering::Relaxed);
            }
            Err(e) => {
                // The transaction rolled back (or its commit failed): nobody is acknowledged.
                let message = format!("commit failed, outcome unknown: {e}");
                for request in group.drain(..) {
                    let error = StoreError::Unavailable(message.clone());
                    match request {
                        Request::Append { reply, .. } => {
                            let _ = reply.send(Err(error));
                        }
                        Request::Snapshot { reply, .. } => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            }
        }
    }
}

/// Writes a group in one transaction. A conflict is an answer for its request only.
///
/// With `isolate`, each request runs inside its own savepoint, and an error SQLite raises
/// about one request's content (too big, a constraint) rolls back that request only and is
/// its answer. Without it (the fast path: savepoints cost throughput at high concurrency;
/// `docs/benchmarks.md`, "Embedded store") any SQL error aborts the group. I/O errors abort
/// it either way.
fn write_group(
    conn: &mut Connection,
    group: &[Request],
    now: Timestamp,
    isolate: bool,
) -> Result<(Vec<Answer>, Option<Position>), rusqlite::Error> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut answers = Vec::with_capacity(group.len());
    let mut head = None;
    for request in group {
        if !isolate {
            answers.push(write_request(&tx, request, now, &mut head)?);
            continue;
        }
        let sp = tx.savepoint()?;
        match write_request(&sp, request, now, &mut head) {
            Ok(answer) => {
                sp.commit()?;
                answers.push(answer);
            }
            Err(e) if is_about_the_request(&e) => {
                drop(sp); // rolls back to the savepoint and releases it
                let refused = StoreError::InvalidRequest(format!("refused by SQLite: {e}"));
                answers.push(match request {
                    Request::Append { .. } => Answer::Append(Err(refused), 0),
                    Request::Snapshot { .. } => Answer::Snapshot(Err(refused)),
                });
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit()?;
    Ok((answers, head))
}

/// One request inside the group's transaction; `head` follows the last position written.
fn write_request(
    db: &Connection,
    request: &Request,
    now: Timestamp,
    head: &mut Option<Position>,
) -> Result<Answer, rusqlite::Error> {
    Ok(match request {
        Request::Append {
            stream,
            expected,
            events,
            ..
        } => {
            let result = append_one(db, stream, *expected, events, now)?;
            let written = match &result {
                Ok((r, true)) => {
                    *head = Some(r.position);
                    events.len() as u64
                }
                _ => 0,
            };
            Answer::Append(result.map(|(r, _)| r), written)
        }
        Request::Snapshot {
            stream, snapshot, ..
        } => {
            save_snapshot(db, stream, snapshot, now)?;
            Answer::Snapshot(Ok(()))
        }
    })
}

/// Errors caused by one request's content rather than by the database or the disk.
fn is_about_the_request(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{ConstraintViolation, TooBig, TypeMismatch};
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, TooBig | ConstraintViolation | TypeMismatch)
    )
}

fn save_snapshot(
    conn: &Connection,
    stream: &StreamName,
    snapshot: &Snapshot,
    now: Timestamp,
) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO snapshots (stream, revision, data, taken_at) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (stream) DO UPDATE SET revision = excluded.revision, \
         data = excluded.data, taken_at = excluded.taken_at \
         WHERE excluded.revision >= snapshots.revision",
    )?
    .execute(params![
        stream.as_str(),
        clamp(snapshot.revision),
        snapshot.data,
        clamp(now.as_millis())
    ])?;
    Ok(())
}

/// One append inside the group's transaction: `Ok(Ok((result, wrote)))`, or a conflict
/// answer, or an SQL error for the whole group.
#[allow(clippy::type_complexity)]
fn append_one(
    tx: &Connection,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: &[EventData],
    now: Timestamp,
) -> Result<Result<(AppendResult, bool), StoreError>, rusqlite::Error> {
    let row: Option<(i64, i64)> = tx
        .prepare_cached("SELECT id, last_revision FROM streams WHERE name = ?1")?
        .query_row([stream.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    // -1 is how a stream row without events records its revision: no last event.
    let last = row.and_then(|(_, rev)| u64::try_from(rev).ok());
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let mut sql_error = None;
    let plan = plan_append(stream, expected, last, &ids, |from, n| {
        let Some((stream_id, _)) = row else {
            return Ok(Vec::new());
        };
        let found = (|| {
            let mut stmt = tx.prepare_cached(
                "SELECT event_id, position FROM events \
                 WHERE stream_id = ?1 AND revision >= ?2 ORDER BY revision LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![stream_id, clamp(from), clamp(n as u64)], |r| {
                let id: Vec<u8> = r.get(0)?;
                let position: i64 = r.get(1)?;
                Ok((
                    Uuid::from_slice(&id).unwrap_or(Uuid::nil()),
                    Position::at(u64::try_from(position).unwrap_or(0)),
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })();
        found.map_err(|e| {
            let message = e.to_string();
            sql_error = Some(e);
            StoreError::Unavailable(message)
        })
    });
    if let Some(e) = sql_error {
        return Err(e);
    }
    let first_revision = match plan {
        Err(answer) => return Ok(Err(answer)),
        Ok(Plan::AlreadyWritten(done)) => return Ok(Ok((done, false))),
        Ok(Plan::Write { first_revision }) => first_revision,
    };
    let stream_id = match row {
        Some((id, _)) => id,
        None => {
            tx.prepare_cached("INSERT INTO streams (name, last_revision) VALUES (?1, -1)")?
                .execute([stream.as_str()])?;
            tx.last_insert_rowid()
        }
    };
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (stream_id, revision, event_id, event_type, data, metadata, \
         recorded_at, subject, correlation) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut result = AppendResult {
        revision: first_revision,
        position: Position::START,
        deduplicated: false,
    };
    let mut opened = 0i64;
    for (offset, e) in events.iter().enumerate() {
        let revision = first_revision + offset as u64;
        opened += e.index.open_delta();
        insert.execute(params![
            stream_id,
            clamp(revision),
            e.event_id.as_bytes(),
            e.event_type,
            e.data,
            e.metadata,
            clamp(now.as_millis()),
            e.index.subject.as_ref().map(Uuid::as_bytes),
            e.index.correlation,
        ])?;
        let position = tx.last_insert_rowid();
        result = AppendResult {
            revision,
            position: Position::at(u64::try_from(position).unwrap_or(0)),
            deduplicated: false,
        };
    }
    tx.prepare_cached(
        "UPDATE streams SET last_revision = ?2, open_subjects = max(0, open_subjects + ?3) \
         WHERE id = ?1",
    )?
    .execute(params![stream_id, clamp(result.revision), opened])?;
    Ok(Ok((result, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version 1 layout, as files written before the history indexes have it.
    const SCHEMA_V1: &str = "
        CREATE TABLE streams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
            last_revision INTEGER NOT NULL);
        CREATE TABLE events (position INTEGER PRIMARY KEY, stream_id INTEGER NOT NULL,
            revision INTEGER NOT NULL, event_id BLOB NOT NULL, event_type TEXT NOT NULL,
            data BLOB NOT NULL, metadata BLOB NOT NULL, recorded_at INTEGER NOT NULL,
            UNIQUE (stream_id, revision));
        CREATE TABLE snapshots (stream TEXT PRIMARY KEY, revision INTEGER NOT NULL,
            data BLOB NOT NULL, taken_at INTEGER NOT NULL);
        PRAGMA user_version = 1;";

    /// Under steady reads a passive checkpoint never starts the WAL again; past its limit
    /// the checkpointer makes it, so the WAL does not grow with the load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_emptied_past_its_limit_even_while_reads_never_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("busy.db");
        let limit = 256 * 1024;
        let store =
            SqliteStore::open_with(SqliteConfig::new(&path).wal_limit(limit)).expect("open");
        let stream = StreamName::new("sku-BUSY").expect("name");
        // Readers that overlap, so that some read is always in the WAL.
        let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (store, stream, reading) = (store.clone(), stream.clone(), reading.clone());
                tokio::spawn(async move {
                    while reading.load(Ordering::Relaxed) {
                        let _ = store.read_stream(&stream, 0, 200).await;
                    }
                })
            })
            .collect();
        let event = |n: u64| EventData {
            event_id: Uuid::new_v4(),
            event_type: "Test".into(),
            data: vec![n as u8; 300],
            metadata: vec![],
            index: crate::EventIndex {
                subject: Some(Uuid::new_v4()),
                lifecycle: crate::Lifecycle::Opens,
                correlation: None,
            },
        };
        let mut written = 0u64;
        for _ in 0..200 {
            let batch: Vec<EventData> = (0..50).map(|i| event(written + i)).collect();
            let expected = ExpectedRevision::at_version(written);
            store
                .append(&stream, expected, batch)
                .await
                .expect("append");
            written += 50;
        }
        // The checkpointer restarts the WAL; the next commit writes from its start and
        // cuts the file back to the limit.
        let wal = wal_path(&path);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut size = u64::MAX;
        while tokio::time::Instant::now() < deadline {
            let expected = ExpectedRevision::at_version(written);
            store
                .append(&stream, expected, vec![event(written)])
                .await
                .expect("append");
            written += 1;
            size = std::fs::metadata(&wal).map_or(0, |m| m.len());
            if size <= limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reading.store(false, Ordering::Relaxed);
        for reader in readers {
            reader.await.expect("reader");
        }
        assert!(size <= limit, "the WAL is still {size} bytes");
        let all = store.read_stream(&stream, 0, 20_000).await.expect("read");
        assert_eq!(all.len() as u64, written);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_file_is_indexed_when_opened() {
        use stockade_domain::{Channel, Event, EventMetadata, Quantity, ReservationId};
        use stockade_domain::{ReservationReleased, StockReserved};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db");
        let (live, gone) = (ReservationId::from_u128(1), ReservationId::from_u128(2));
        let reserved = |id| {
            Event::StockReserved(StockReserved {
                customer: None,
                waitlist: None,
                parts: Vec::new(),
                reservation_id: id,
                order_id: None,
                lines: Vec::new(),
                qty: Quantity::new(1),
                channel: Channel::new("web").expect("channel"),
                at: Timestamp::from_millis(1),
                expires_at: Timestamp::from_millis(60_000),
            })
        };
        let released = Event::ReservationReleased(ReservationReleased {
            reservation_id: gone,
            qty: Quantity::new(1),
            at: Timestamp::from_millis(2),
        });
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(SCHEMA_V1).expect("v1 schema");
            conn.execute("INSERT INTO streams VALUES (1, 'sku-OLD', 2)", [])
                .expect("stream");
            for (revision, event) in [reserved(live), reserved(gone), released]
                .iter()
                .enumerate()
            {
                let meta = EventMetadata {
                    correlation_id: Some("order-9".into()),
                    ..EventMetadata::new(Uuid::new_v4(), Timestamp::from_millis(1))
                };
                let data = crate::codec::encode(event, &meta).expect("encode");
                conn.execute(
                    "INSERT INTO events (stream_id, revision, event_id, event_type, data, \
                     metadata, recorded_at) VALUES (1, ?1, ?2, ?3, ?4, ?5, 1)",
                    params![
                        revision as i64,
                        data.event_id.as_bytes(),
                        data.event_type,
                        data.data,
                        data.metadata
                    ],
                )
                .expect("insert");
            }
        }
        let store = SqliteStore::open(&path).expect("migrated");
        let stream = StreamName::new("sku-OLD").expect("name");
        assert_eq!(
            store.streams_with_open_subjects().await.expect("open"),
            [stream]
        );
        assert_eq!(
            store
                .read_subject(*gone.as_uuid(), 9)
                .await
                .expect("subject")
                .len(),
            2
        );
        assert_eq!(
            store
                .read_correlation("order-9", 9)
                .await
                .expect("order")
                .len(),
            3
        );
        drop(store);
        let conn = Connection::open(&path).expect("reopen");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn only_content_errors_are_answered_per_request() {
        assert!(is_about_the_request(&failure(rusqlite::ffi::SQLITE_TOOBIG)));
        assert!(is_about_the_request(&failure(
            rusqlite::ffi::SQLITE_CONSTRAINT
        )));
        // The disk and the database failing are everybody's problem: abort the group.
        assert!(!is_about_the_request(&failure(rusqlite::ffi::SQLITE_IOERR)));
        assert!(!is_about_the_request(&failure(rusqlite::ffi::SQLITE_FULL)));
        assert!(!is_about_the_request(&failure(
            rusqlite::ffi::SQLITE_CORRUPT
        )));
    }

    /// A cached read bound with new values each time (as the projector binds its read of
    /// the log with a new position and page size) keeps its plan: SQLite never prepares it
    /// again. Without `fixed_plans`, the `LIMIT` parameter alone makes SQLite re-plan the
    /// statement whenever its value changes.
    #[test]
    fn cached_reads_are_not_prepared_again_when_their_parameters_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plans.db");
        let mut conn = open_connection(&path, OpenFlags::default()).expect("open");
        prepare(&mut conn).map_err(|_| "prepare").expect("schema");
        let sql = format!(
            "{SELECT_EVENT_BY_POSITION} WHERE e.position > ?1 ORDER BY e.position LIMIT ?2"
        );
        for (after, max) in [(0i64, 10i64), (5, 100), (7, 3), (9, 4096)] {
            let mut stmt = conn.prepare_cached(&sql).expect("prepare");
            let rows = stmt
                .query_map(params![after, max], row_to_event)
                .expect("query")
                .count();
            assert_eq!(rows, 0);
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "prepared again after binding ({after}, {max})"
            );
        }
    }
}
