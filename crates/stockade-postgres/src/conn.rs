//! Connections to the server: made on the store's runtime, each driven by its own task,
//! and replaced by the next caller once broken.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Statement};

use crate::config::redact;

/// Opens one connection and spawns the task that drives it (on the current runtime,
/// which is always the store's own).
pub(crate) async fn connect(pg: &tokio_postgres::Config) -> Result<Client, String> {
    let (client, connection) = pg.connect(NoTls).await.map_err(|e| describe(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    // Every statement is prepared once per connection, often while the log is still
    // small; a cached generic plan made then (a sequential scan of a then-tiny `events`)
    // would stay while the table grows past millions of rows. Custom plans are made
    // with each call's values and the table's current size, and cost little here.
    client
        .batch_execute("SET plan_cache_mode = force_custom_plan")
        .await
        .map_err(|e| describe(&e))?;
    Ok(client)
}

/// Prepares `sql` on `client`; an error names the statement.
pub(crate) async fn prepare(client: &Client, sql: &str) -> Result<Statement, String> {
    client
        .prepare(sql)
        .await
        .map_err(|e| format!("prepare {sql:?}: {}", describe(&e)))
}

/// A client error with the server's own message, code and detail when it sent one.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}): {detail}", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => e.to_string(),
    }
}

/// A read connection and its prepared statements.
pub(crate) struct Reader {
    pub client: Client,
    pub read_all: Statement,
    pub read_stream: Statement,
    pub head: Statement,
    pub find_events: Statement,
    pub read_subject: Statement,
    pub read_correlation: Statement,
    pub open_streams: Statement,
    pub load_snapshot: Statement,
    pub save_snapshot: Statement,
}

/// The columns `store::row_to_event` reads, in its order.
pub(crate) const EVENT_COLUMNS: &str =
    "position, stream, revision, event_id, event_type, data, metadata, recorded_at";

impl Reader {
    async fn open(pg: &tokio_postgres::Config, schema: &str) -> Result<Self, String> {
        let client = connect(pg).await?;
        let s = schema;
        let c = EVENT_COLUMNS;
        let on = &client;
        let prepare = |sql: String| async move { prepare(on, &sql).await };
        Ok(Self {
            read_all: prepare(format!(
                "SELECT {c} FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
            ))
            .await?,
            read_stream: prepare(format!(
                "SELECT {c} FROM {s}.events WHERE stream = $1 AND revision >= $2 \
                 ORDER BY revision LIMIT $3"
            ))
            .await?,
            head: prepare(format!("SELECT head FROM {s}.log WHERE id = 1")).await?,
            // By the id index alone, the stream checked by the caller: with `stream = $1`
            // in the query, the generic plan also scans the stream's index entries, all of
            // a hot SKU's history, on every lookup (ten times slower keyed requests at
            // 170 000 events).
            find_events: prepare(format!(
                "SELECT {c} FROM {s}.events WHERE event_id = ANY($1::uuid[])"
            ))
            .await?,
            read_subject: prepare(format!(
                "SELECT {c} FROM {s}.events WHERE subject = $1 ORDER BY position LIMIT $2"
            ))
            .await?,
            read_correlation: prepare(format!(
                "SELECT {c} FROM {s}.events WHERE correlation = $1 ORDER BY position LIMIT $2"
            ))
            .await?,
            open_streams: prepare(format!(
                "SELECT name FROM {s}.streams WHERE open_subjects > 0 ORDER BY name"
            ))
            .await?,
            load_snapshot: prepare(format!(
                "SELECT revision, data FROM {s}.snapshots WHERE stream = $1"
            ))
            .await?,
            // Kept only if no newer one is stored: a slow snapshot never replaces a later one.
            save_snapshot: prepare(format!(
                "INSERT INTO {s}.snapshots AS old (stream, revision, data, taken_at) \
                 VALUES ($1, $2, $3, (extract(epoch FROM statement_timestamp()) * 1000)::bigint) \
                 ON CONFLICT (stream) DO UPDATE SET revision = excluded.revision, \
                 data = excluded.data, taken_at = excluded.taken_at \
                 WHERE excluded.revision >= old.revision"
            ))
            .await?,
            client,
        })
    }
}

/// A few read connections shared by every caller: a `Client` pipelines concurrent
/// queries, so callers take turns round-robin instead of checking one out.
pub(crate) struct Readers {
    pg: tokio_postgres::Config,
    schema: String,
    url: String,
    slots: Vec<Mutex<Option<Arc<Reader>>>>,
    next: AtomicUsize,
}

impl Readers {
    pub fn new(pg: tokio_postgres::Config, schema: String, url: String, n: usize) -> Self {
        Self {
            pg,
            schema,
            url,
            slots: (0..n.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A live reader: the slot's current one, or a new connection if it has none or its
    /// connection broke.
    pub async fn get(&self) -> Result<Arc<Reader>, String> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(reader) = slot.as_ref()
            && !reader.client.is_closed()
        {
            return Ok(reader.clone());
        }
        *slot = None;
        let reader = Arc::new(
            Reader::open(&self.pg, &self.schema)
                .await
                .map_err(|e| format!("connect to PostgreSQL at {}: {e}", redact(&self.url)))?,
        );
        *slot = Some(reader.clone());
        Ok(reader)
    }
}
