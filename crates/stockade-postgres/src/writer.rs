//! The node's one writer: every append queued by any SKU goes into one transaction.
//!
//! A group's transaction first locks the log's head row. That lock is the log's only
//! point of mutual exclusion: it orders every node's commits, so positions are handed out
//! in commit order with no gap (schema.rs), and the expected-revision checks read stream
//! rows no other writer can change until this one commits. Under load, everything queued
//! during one commit shares the next, as on SQLite; across nodes, the groups take turns.
//!
//! Invariant: a caller is answered only after its group committed, and the head watch
//! moves only then, so nothing acknowledged or delivered can be rolled back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use stockade_store::plan::{Plan, plan_append};
use stockade_store::subscription::advance_head;
use stockade_store::{AppendResult, EventData, ExpectedRevision, Position, StoreError, StreamName};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use crate::conn::{connect, describe, prepare};

/// Bytes of event payload one group carries at most (beyond its first append), so one
/// transaction's parameters stay a few megabytes.
const GROUP_BYTES: usize = 8 * 1024 * 1024;

pub(crate) struct Request {
    pub stream: StreamName,
    pub expected: ExpectedRevision,
    pub events: Vec<EventData>,
    pub reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

/// Commits and appends so far, for the stats and the benchmarks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub appends: AtomicU64,
    pub events: AtomicU64,
}

struct Statements {
    client: Client,
    lock: Statement,
    streams: Statement,
    stored: Statement,
    insert: Statement,
    upsert_streams: Statement,
    set_head: Statement,
    notify: Statement,
}

impl Statements {
    async fn open(pg: &tokio_postgres::Config, schema: &str) -> Result<Self, String> {
        let client = connect(pg).await?;
        let s = schema;
        let on = &client;
        let prepare = |sql: String| async move { prepare(on, &sql).await };
        Ok(Self {
            lock: prepare(format!("SELECT head FROM {s}.log WHERE id = 1 FOR UPDATE")).await?,
            streams: prepare(format!(
                "SELECT name, last_revision, open_subjects FROM {s}.streams \
                 WHERE name = ANY($1::text[])"
            ))
            .await?,
            stored: prepare(format!(
                "SELECT revision, event_id, position FROM {s}.events \
                 WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3"
            ))
            .await?,
            insert: prepare(format!(
                "INSERT INTO {s}.events (position, stream, revision, event_id, event_type, \
                 data, metadata, recorded_at, subject, correlation) \
                 SELECT p, st, r, i, t, d, m, \
                 (extract(epoch FROM statement_timestamp()) * 1000)::bigint, sub, c \
                 FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], \
                 $6::bytea[], $7::bytea[], $8::uuid[], $9::text[]) \
                 AS u(p, st, r, i, t, d, m, sub, c)"
            ))
            .await?,
            upsert_streams: prepare(format!(
                "INSERT INTO {s}.streams (name, last_revision, open_subjects) \
                 SELECT n, r, o FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(n, r, o) \
                 ON CONFLICT (name) DO UPDATE SET last_revision = excluded.last_revision, \
                 open_subjects = excluded.open_subjects"
            ))
            .await?,
            set_head: prepare(format!("UPDATE {s}.log SET head = $1 WHERE id = 1")).await?,
            notify: prepare("SELECT pg_notify($1, $2)".into()).await?,
            client,
        })
    }
}

pub(crate) struct Writer {
    pub pg: tokio_postgres::Config,
    pub schema: String,
    pub channel: String,
    pub max_group: usize,
    pub head: Arc<watch::Sender<Position>>,
    pub counters: Arc<Counters>,
    conn: Option<Statements>,
}

impl Writer {
    pub fn new(
        pg: tokio_postgres::Config,
        schema: String,
        max_group: usize,
        head: Arc<watch::Sender<Position>>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            channel: crate::schema::channel(&schema),
            pg,
            schema,
            max_group,
            head,
            counters,
            conn: None,
        }
    }

    pub async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut group = Vec::with_capacity(self.max_group);
        while let Some(first) = requests.recv().await {
            let mut bytes = first.events.iter().map(|e| e.data.len()).sum::<usize>();
            group.push(first);
            while group.len() < self.max_group && bytes < GROUP_BYTES {
                match requests.try_recv() {
                    Ok(request) => {
                        bytes += request.events.iter().map(|e| e.data.len()).sum::<usize>();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(&mut group).await;
        }
    }

    async fn commit_group(&mut self, group: &mut Vec<Request>) {
        // A caller that gave up (deadline) is not written for: nobody would be answered.
        group.retain(|r| !r.reply.is_closed());
        if group.is_empty() {
            return;
        }
        if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.conn = None;
            match Statements::open(&self.pg, &self.schema).await {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => {
                    let message = format!("the writer cannot connect: {e}");
                    for r in group.drain(..) {
                        let _ = r.reply.send(Err(StoreError::Unavailable(message.clone())));
                    }
                    return;
                }
            }
        }
        let Some(conn) = self.conn.as_ref() else {
            return;
        };
        match write_group(conn, &self.channel, group).await {
            Ok((answers, head)) => {
                if let Some(head) = head {
                    advance_head(&self.head, head);
                }
                let (mut appends, mut events) = (0, 0);
                for (request, answer) in group.drain(..).zip(answers) {
                    if let Ok(landed) = &answer
                        && !landed.deduplicated
                    {
                        appends += 1;
                        events += request.events.len() as u64;
                    }
                    let _ = request.reply.send(answer);
                }
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                self.counters.appends.fetch_add(appends, Ordering::Relaxed);
                self.counters.events.fetch_add(events, Ordering::Relaxed);
            }
            Err(e) => {
                // Rolled back, or the commit's fate is unknown (the connection broke on
                // COMMIT): nobody is acknowledged, and each caller must read to find out.
                if !conn.client.is_closed() {
                    let _ = conn.client.batch_execute("ROLLBACK").await;
                }
                if conn.client.is_closed() {
                    self.conn = None;
                }
                let message = format!("commit failed, outcome unknown: {e}");
                for r in group.drain(..) {
                    let _ = r.reply.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// Where a stream stands inside the group being written.
#[derive(Clone, Copy, Default)]
struct StreamState {
    last: Option<u64>,
    open_subjects: i64,
    touched: bool,
}

/// Rows to insert, column by column (the shape `unnest` takes).
#[derive(Default)]
struct Rows {
    position: Vec<i64>,
    stream: Vec<String>,
    revision: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<String>,
    data: Vec<Vec<u8>>,
    metadata: Vec<Vec<u8>>,
    subject: Vec<Option<Uuid>>,
    correlation: Vec<Option<String>>,
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::InvalidRequest(format!("{what} {v} is out of range")))
}

/// Writes one group in one transaction. A conflict or an invalid request is that
/// request's answer alone; a database error fails the group.
async fn write_group(
    c: &Statements,
    channel: &str,
    group: &mut [Request],
) -> Result<(Vec<Result<AppendResult, StoreError>>, Option<Position>), String> {
    let sql = |e: tokio_postgres::Error| describe(&e);
    let mut names: Vec<&str> = group.iter().map(|r| r.stream.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    // Pipelined: one round trip. The streams are read after the lock is granted (each
    // statement of a READ COMMITTED transaction takes its own snapshot), so they include
    // every commit of the previous holder.
    let streams_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&names];
    let (_, locked, rows) = futures::try_join!(
        c.client.batch_execute("BEGIN"),
        c.client.query_one(&c.lock, &[]),
        c.client.query(&c.streams, &streams_params),
    )
    .map_err(sql)?;
    let head: i64 = locked.try_get(0).map_err(sql)?;
    let mut streams: HashMap<String, StreamState> = HashMap::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get(0).map_err(sql)?;
        let last: i64 = row.try_get(1).map_err(sql)?;
        let open_subjects: i64 = row.try_get(2).map_err(sql)?;
        streams.insert(
            name,
            StreamState {
                last: u64::try_from(last).ok(),
                open_subjects,
                touched: false,
            },
        );
    }
    let mut next = u64::try_from(head).map_err(|_| format!("the log's head is {head}"))? + 1;
    let mut rows = Rows::default();
    let mut answers = Vec::with_capacity(group.len());
    for request in group.iter_mut() {
        let state = streams
            .get(request.stream.as_str())
            .copied()
            .unwrap_or_default();
        let ids: Vec<Uuid> = request.events.iter().map(|e| e.event_id).collect();
        // Decide without the stored events first: the usual append (the expectation
        // holds) never needs them. Only a failed expectation or `Any` on a stream that
        // has events asks for a range, read once and then decided again with it.
        let mut asked = None;
        let probe = plan_append(
            &request.stream,
            request.expected,
            state.last,
            &ids,
            |from, n| {
                asked = Some((from, n));
                Ok(Vec::new())
            },
        );
        let plan = match asked {
            None => probe,
            Some((from, n)) => {
                let stored = stored_range(c, &rows, &request.stream, from, n).await?;
                plan_append(
                    &request.stream,
                    request.expected,
                    state.last,
                    &ids,
                    |_, _| Ok(stored.clone()),
                )
            }
        };
        let first_revision = match plan {
            Err(answer) => {
                answers.push(Err(answer));
                continue;
            }
            Ok(Plan::AlreadyWritten(done)) => {
                answers.push(Ok(done));
                continue;
            }
            Ok(Plan::Write { first_revision }) => first_revision,
        };
        // Both sequences are bigint on the server: refuse what would not fit before
        // pushing anything (plan_append already refused a stream out of revisions).
        let count = request.events.len() as u64;
        let fits = count > 0
            && next
                .checked_add(count - 1)
                .is_some_and(|p| to_i64(p, "position").is_ok())
            && first_revision
                .checked_add(count - 1)
                .is_some_and(|r| to_i64(r, "revision").is_ok());
        if !fits {
            answers.push(Err(StoreError::InvalidRequest(format!(
                "{} events do not fit in {} or in the log",
                count, request.stream
            ))));
            continue;
        }
        let mut opened = state.open_subjects;
        // The payloads move into the rows: nothing reads them after this (a failed
        // group answers every caller with an error; the counters need only the count).
        for (offset, e) in request.events.iter_mut().enumerate() {
            let revision = first_revision + offset as u64;
            opened = opened.saturating_add(e.index.open_delta());
            // In range: `fits` checked the last position and revision above.
            rows.position.push(next as i64);
            rows.stream.push(request.stream.as_str().to_owned());
            rows.revision.push(revision as i64);
            rows.event_id.push(e.event_id);
            rows.event_type.push(std::mem::take(&mut e.event_type));
            rows.data.push(std::mem::take(&mut e.data));
            rows.metadata.push(std::mem::take(&mut e.metadata));
            rows.subject.push(e.index.subject);
            rows.correlation.push(e.index.correlation.take());
            next += 1;
        }
        let revision = first_revision + (count - 1);
        streams.insert(
            request.stream.as_str().to_owned(),
            StreamState {
                last: Some(revision),
                open_subjects: opened.max(0),
                touched: true,
            },
        );
        answers.push(Ok(AppendResult {
            revision,
            position: Position::at(next - 1),
            deduplicated: false,
        }));
    }
    let written = !rows.position.is_empty();
    if written {
        let mut touched: Vec<(&String, &StreamState)> =
            streams.iter().filter(|(_, s)| s.touched).collect();
        touched.sort_by(|a, b| a.0.cmp(b.0));
        let names: Vec<&str> = touched.iter().map(|(n, _)| n.as_str()).collect();
        let lasts = touched
            .iter()
            .map(|(_, s)| to_i64(s.last.unwrap_or(0), "revision"))
            .collect::<Result<Vec<i64>, _>>()
            .map_err(|e| e.to_string())?;
        let opens: Vec<i64> = touched.iter().map(|(_, s)| s.open_subjects).collect();
        let new_head = to_i64(next - 1, "position").map_err(|e| e.to_string())?;
        let head_text = new_head.to_string();
        type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
        let insert: [Param; 9] = [
            &rows.position,
            &rows.stream,
            &rows.revision,
            &rows.event_id,
            &rows.event_type,
            &rows.data,
            &rows.metadata,
            &rows.subject,
            &rows.correlation,
        ];
        let upsert: [Param; 3] = [&names, &lasts, &opens];
        let set_head: [Param; 1] = [&new_head];
        let notify: [Param; 2] = [&channel, &head_text];
        // One round trip: the statements are pipelined, and a failure of any of them
        // fails the COMMIT too (the transaction is aborted), so nothing half-written lands.
        futures::try_join!(
            c.client.execute(&c.insert, &insert),
            c.client.execute(&c.upsert_streams, &upsert),
            c.client.execute(&c.set_head, &set_head),
            // Delivered to listeners on commit only (NOTIFY is transactional).
            c.client.query_one(&c.notify, &notify),
            c.client.batch_execute("COMMIT"),
        )
        .map_err(sql)?;
        Ok((answers, Some(Position::at(next - 1))))
    } else {
        c.client.batch_execute("COMMIT").await.map_err(sql)?;
        Ok((answers, None))
    }
}

/// The ids and positions of `stream`'s events at revisions `from .. from + n`: those
/// committed before this group, then those this group has planned but not yet written.
async fn stored_range(
    c: &Statements,
    pending: &Rows,
    stream: &StreamName,
    from: u64,
    n: usize,
) -> Result<Vec<(Uuid, Position)>, String> {
    let sql = |e: tokio_postgres::Error| describe(&e);
    let from_i = to_i64(from, "revision").map_err(|e| e.to_string())?;
    let n_i = to_i64(n as u64, "count").map_err(|e| e.to_string())?;
    let rows = c
        .client
        .query(&c.stored, &[&stream.as_str(), &from_i, &n_i])
        .await
        .map_err(sql)?;
    let mut found: Vec<(i64, Uuid, Position)> = Vec::with_capacity(n);
    for row in rows {
        let revision: i64 = row.try_get(0).map_err(sql)?;
        let id: Uuid = row.try_get(1).map_err(sql)?;
        let position: i64 = row.try_get(2).map_err(sql)?;
        found.push((
            revision,
            id,
            Position::at(u64::try_from(position).unwrap_or(0)),
        ));
    }
    let end = from_i.saturating_add(n_i);
    for i in 0..pending.position.len() {
        let r = pending.revision[i];
        if pending.stream[i] == stream.as_str() && r >= from_i && r < end {
            let position = Position::at(u64::try_from(pending.position[i]).unwrap_or(0));
            found.push((r, pending.event_id[i], position));
        }
    }
    found.sort_by_key(|f| f.0);
    found.truncate(n);
    Ok(found.into_iter().map(|(_, id, p)| (id, p)).collect())
}
