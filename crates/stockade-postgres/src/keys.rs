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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use stockade_store::StoreError;
use tokio::sync::Mutex;
use tokio_postgres::{Client, Statement};

use crate::conn::{connect, describe};
use crate::store::PostgresStore;

/// Expired keys are pruned once per this many new ones (per node).
const PRUNE_EVERY: u64 = 4_096;

/// The shared idempotency table. Cheap to clone.
#[derive(Clone)]
pub struct RequestKeyTable {
    store: PostgresStore,
    conn: Arc<Mutex<Option<Arc<KeyConn>>>>,
    inserted: Arc<AtomicU64>,
}

impl std::fmt::Debug for RequestKeyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestKeyTable")
            .field("store", &self.store)
            .finish()
    }
}

struct KeyConn {
    client: Client,
    claim: Statement,
    prune: Statement,
}

impl RequestKeyTable {
    pub(crate) fn new(store: PostgresStore) -> Self {
        Self {
            store,
            conn: Arc::new(Mutex::new(None)),
            inserted: Arc::new(AtomicU64::new(0)),
        }
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
        let table = self.clone();
        let (principal, key, digest) = (principal.to_owned(), key.to_owned(), digest.to_vec());
        let now = i64::try_from(now_millis).unwrap_or(i64::MAX);
        let since = i64::try_from(now_millis.saturating_sub(retention_millis)).unwrap_or(0);
        let inner = self.store.inner().clone();
        let deadline = inner.config.deadline;
        let work = async move {
            let conn = table.connection().await?;
            // A row inserted by another node after this statement's snapshot is not seen
            // by the second SELECT: then neither answer is there, and one more try sees it.
            for _ in 0..3 {
                let row = conn
                    .client
                    .query_one(&conn.claim, &[&principal, &key, &digest, &now, &since])
                    .await
                    .map_err(|e| describe(&e))?;
                let mine: Option<Vec<u8>> = row.try_get(0).map_err(|e| describe(&e))?;
                let theirs: Option<Vec<u8>> = row.try_get(1).map_err(|e| describe(&e))?;
                match (mine, theirs) {
                    (Some(_), _) => {
                        table.inserted_one(&conn, since).await;
                        return Ok(true);
                    }
                    (None, Some(recorded)) => return Ok(recorded == digest),
                    (None, None) => continue,
                }
            }
            Err("the key's record could not be read".to_owned())
        };
        let task = inner.handle.spawn(work);
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(result)) => result.map_err(StoreError::Unavailable),
            Ok(Err(joined)) => Err(StoreError::Unavailable(joined.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "idempotency keys: no answer within {deadline:?}"
            ))),
        }
    }

    async fn inserted_one(&self, conn: &KeyConn, since: i64) {
        let before = self.inserted.fetch_add(1, Ordering::Relaxed);
        if (before + 1).is_multiple_of(PRUNE_EVERY)
            && let Err(e) = conn.client.execute(&conn.prune, &[&since]).await
        {
            tracing::warn!(error = %describe(&e), "cannot prune expired idempotency keys");
        }
    }

    async fn connection(&self) -> Result<Arc<KeyConn>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.client.is_closed()
        {
            return Ok(conn.clone());
        }
        let config = &self.store.inner().config;
        let pg = config.validate().map_err(|e| e.to_string())?;
        let s = &config.schema;
        let client = connect(&pg).await?;
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(|e| describe(&e))?;
        // `mine`: the digest this statement wrote (a new key, or an expired one taken
        // over); `theirs`: the live record it found instead.
        let claim = client
            .prepare(&format!(
                "WITH claimed AS ( \
                   INSERT INTO {s}.request_keys AS k (principal, key, digest, created_at) \
                   VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (principal, key) DO UPDATE \
                     SET digest = excluded.digest, created_at = excluded.created_at \
                     WHERE k.created_at < $5 \
                   RETURNING digest) \
                 SELECT (SELECT digest FROM claimed), \
                        (SELECT digest FROM {s}.request_keys WHERE principal = $1 AND key = $2)"
            ))
            .await
            .map_err(|e| describe(&e))?;
        let prune = client
            .prepare(&format!(
                "DELETE FROM {s}.request_keys WHERE created_at < $1"
            ))
            .await
            .map_err(|e| describe(&e))?;
        let conn = Arc::new(KeyConn {
            client,
            claim,
            prune,
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }
}
