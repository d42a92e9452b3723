//! The HTTP idempotency table in the log's database, shared by every node.
//!
//! A keyed request that is retried against another node (its first node died, or the
//! load balancer moved it) must meet the same record: the table lives beside the events,
//! and the primary key on (principal, key) makes the first digest win across nodes.
//!
//! Its connection writes with `synchronous_commit = off`, as the embedded table writes
//! with `synchronous = NORMAL`: a server crash can lose the last entries, and then the
//! engine's own per-SKU check still refuses a changed request on any SKU the first one
//! touched (docs/api.md, "Idempotency").

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use stockade_store::StoreError;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Statement};

use crate::conn::{connect, describe, prepare};
use crate::store::PostgresStore;

/// Expired keys are pruned once per this many new ones (per node).
const PRUNE_EVERY: u64 = 4_096;
/// At most this many checks share one statement.
const CHECKS_PER_BATCH: usize = 1_024;

/// The shared idempotency table. Cheap to clone: clones share one batching task.
///
/// Every check queued while the previous batch ran goes into the next one: one statement
/// (one transaction) records or compares them all, so keyed requests under load cost a
/// share of a round trip, as on the embedded table.
#[derive(Clone)]
pub struct RequestKeyTable {
    store: PostgresStore,
    checks: mpsc::Sender<Check>,
}

impl std::fmt::Debug for RequestKeyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestKeyTable")
            .field("store", &self.store)
            .finish()
    }
}

struct Check {
    principal: String,
    key: String,
    digest: Vec<u8>,
    now: i64,
    since: i64,
    verdict: oneshot::Sender<Result<bool, String>>,
}

struct KeyConn {
    client: Client,
    claim_many: Statement,
    prune: Statement,
}

impl RequestKeyTable {
    pub(crate) fn new(store: PostgresStore) -> Self {
        let (checks, queue) = mpsc::channel(CHECKS_PER_BATCH * 4);
        let keeper = Keeper {
            store: store.clone(),
            conn: None,
            inserted: AtomicU64::new(0),
        };
        store.inner().handle.spawn(keeper.run(queue));
        Self { store, checks }
    }

    /// Records `digest` for (`principal`, `key`) unless a live record exists, and answers
    /// whether the request may run: `true` when the key is new, expired (older than
    /// `now_millis - retention_millis`) or recorded with the same digest.
    pub async fn check(
        &self,
        principal: &str,
        key: &str,
        digest: &[u8],
        now_millis: u64,
        retention_millis: u64,
    ) -> Result<bool, StoreError> {
        let (verdict, answer) = oneshot::channel();
        let check = Check {
            principal: principal.to_owned(),
            key: key.to_owned(),
            digest: digest.to_vec(),
            now: i64::try_from(now_millis).unwrap_or(i64::MAX),
            since: i64::try_from(now_millis.saturating_sub(retention_millis)).unwrap_or(0),
            verdict,
        };
        let deadline = self.store.inner().config.deadline;
        let asked = async {
            self.checks
                .send(check)
                .await
                .map_err(|_| "the key task stopped".to_owned())?;
            answer
                .await
                .map_err(|_| "the key task stopped before answering".to_owned())?
        };
        match tokio::time::timeout(deadline, asked).await {
            Ok(result) => result.map_err(StoreError::Unavailable),
            Err(_) => Err(StoreError::Unavailable(format!(
                "idempotency keys: no answer within {deadline:?}"
            ))),
        }
    }
}

/// The task that owns the keys' connection.
struct Keeper {
    store: PostgresStore,
    conn: Option<Arc<KeyConn>>,
    inserted: AtomicU64,
}

impl Keeper {
    async fn run(mut self, mut queue: mpsc::Receiver<Check>) {
        let mut batch = Vec::with_capacity(CHECKS_PER_BATCH);
        while let Some(first) = queue.recv().await {
            batch.push(first);
            while batch.len() < CHECKS_PER_BATCH {
                match queue.try_recv() {
                    Ok(check) => batch.push(check),
                    Err(_) => break,
                }
            }
            batch.retain(|c| !c.verdict.is_closed());
            match self.decide(&batch).await {
                Ok(verdicts) => {
                    for (check, fits) in batch.drain(..).zip(verdicts) {
                        let _ = check.verdict.send(Ok(fits));
                    }
                }
                Err(e) => {
                    if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
                        self.conn = None;
                    }
                    for check in batch.drain(..) {
                        let _ = check.verdict.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One statement for the batch's distinct keys, in key order (so that nodes claiming
    /// overlapping keys lock them in one order). A key twice in a batch is decided once;
    /// its later checks compare with what that decision left recorded, as if they had
    /// come one by one.
    async fn decide(&mut self, batch: &[Check]) -> Result<Vec<bool>, String> {
        let conn = self.connection().await?;
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut distinct: Vec<usize> = Vec::new();
        for (i, c) in batch.iter().enumerate() {
            first_of.entry((&c.principal, &c.key)).or_insert_with(|| {
                distinct.push(i);
                i
            });
        }
        distinct.sort_by(|&a, &b| {
            (&batch[a].principal, &batch[a].key).cmp(&(&batch[b].principal, &batch[b].key))
        });
        let principals: Vec<&str> = distinct
            .iter()
            .map(|&i| batch[i].principal.as_str())
            .collect();
        let keys: Vec<&str> = distinct.iter().map(|&i| batch[i].key.as_str()).collect();
        let digests: Vec<&[u8]> = distinct
            .iter()
            .map(|&i| batch[i].digest.as_slice())
            .collect();
        let nows: Vec<i64> = distinct.iter().map(|&i| batch[i].now).collect();
        // The oldest cut-off of the batch: a key is taken over only once it is expired
        // for every check in it.
        let since = batch.iter().map(|c| c.since).min().unwrap_or(0);
        let rows = conn
            .client
            .query(
                &conn.claim_many,
                &[&principals, &keys, &digests, &nows, &since],
            )
            .await
            .map_err(|e| describe(&e))?;
        // What is recorded for each distinct key once the statement ran, and whether
        // this batch wrote it.
        let mut recorded: HashMap<(&str, &str), (Vec<u8>, bool)> = HashMap::new();
        let mut claimed = 0u64;
        for (row, &i) in rows.iter().zip(&distinct) {
            let mine: Option<Vec<u8>> = row.try_get(1).map_err(|e| describe(&e))?;
            let theirs: Option<Vec<u8>> = row.try_get(2).map_err(|e| describe(&e))?;
            let c = &batch[i];
            let outcome = match (mine, theirs) {
                (Some(digest), _) => {
                    claimed += 1;
                    (digest, true)
                }
                (None, Some(digest)) => (digest, false),
                // Committed by another node after this statement's snapshot: ask alone.
                (None, None) => self.claim_alone(&conn, c).await?,
            };
            recorded.insert((&c.principal, &c.key), outcome);
        }
        if rows.len() != distinct.len() {
            return Err(format!(
                "the key statement answered {} rows for {} keys",
                rows.len(),
                distinct.len()
            ));
        }
        self.inserted_some(&conn, claimed, since).await;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let first = first_of[&(c.principal.as_str(), c.key.as_str())];
                match recorded.get(&(c.principal.as_str(), c.key.as_str())) {
                    // The first check of a key that this batch claimed fits; every check
                    // fits exactly when its digest is the recorded one.
                    Some((digest, claimed)) => (*claimed && i == first) || *digest == c.digest,
                    None => false,
                }
            })
            .collect())
    }

    /// One key by itself, retried while the row it conflicted with is not yet visible.
    async fn claim_alone(&self, conn: &KeyConn, c: &Check) -> Result<(Vec<u8>, bool), String> {
        for _ in 0..3 {
            // The batch statement with a batch of one.
            let (principal, key) = (vec![c.principal.as_str()], vec![c.key.as_str()]);
            let (digest, now) = (vec![c.digest.as_slice()], vec![c.now]);
            let row = conn
                .client
                .query_one(
                    &conn.claim_many,
                    &[&principal, &key, &digest, &now, &c.since],
                )
                .await
                .map_err(|e| describe(&e))?;
            let mine: Option<Vec<u8>> = row.try_get(1).map_err(|e| describe(&e))?;
            let theirs: Option<Vec<u8>> = row.try_get(2).map_err(|e| describe(&e))?;
            match (mine, theirs) {
                (Some(digest), _) => return Ok((digest, true)),
                (None, Some(digest)) => return Ok((digest, false)),
                (None, None) => continue,
            }
        }
        Err("the key's record could not be read".to_owned())
    }

    async fn inserted_some(&self, conn: &KeyConn, n: u64, since: i64) {
        let before = self.inserted.fetch_add(n, Ordering::Relaxed);
        if before / PRUNE_EVERY != (before + n) / PRUNE_EVERY
            && let Err(e) = conn.client.execute(&conn.prune, &[&since]).await
        {
            tracing::warn!(error = %describe(&e), "cannot prune expired idempotency keys");
        }
    }

    async fn connection(&mut self) -> Result<Arc<KeyConn>, String> {
        if let Some(conn) = self.conn.as_ref()
            && !conn.client.is_closed()
        {
            return Ok(conn.clone());
        }
        let inner = self.store.inner();
        let s = &inner.config.schema;
        let client = connect(&inner.pg).await?;
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(|e| describe(&e))?;
        let on = &client;
        let prepare = |sql: String| async move { prepare(on, &sql).await };
        // `mine`: the digest the statement wrote (a new key, or an expired one taken
        // over); `theirs`: the live record it found instead (as of its snapshot). The
        // record is read by a subquery per key, so by the primary key: a join let the
        // planner scan the whole table (a third of the server's time under load).
        let claim_many = prepare(format!(
            "WITH input AS ( \
               SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[]) \
                 WITH ORDINALITY AS u(principal, key, digest, created_at, n)), \
             claimed AS ( \
               INSERT INTO {s}.request_keys AS k (principal, key, digest, created_at) \
               SELECT principal, key, digest, created_at FROM input ORDER BY n \
               ON CONFLICT (principal, key) DO UPDATE \
                 SET digest = excluded.digest, created_at = excluded.created_at \
                 WHERE k.created_at < $5 \
               RETURNING principal, key, digest) \
             SELECT i.n, c.digest, \
                    (SELECT r.digest FROM {s}.request_keys r \
                      WHERE r.principal = i.principal AND r.key = i.key) \
             FROM input i \
               LEFT JOIN claimed c ON c.principal = i.principal AND c.key = i.key \
             ORDER BY i.n"
        ))
        .await?;
        let prune = prepare(format!(
            "DELETE FROM {s}.request_keys WHERE created_at < $1"
        ))
        .await?;
        let conn = Arc::new(KeyConn {
            client,
            claim_many,
            prune,
        });
        self.conn = Some(conn.clone());
        Ok(conn)
    }
}
