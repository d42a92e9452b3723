//! Idempotency keys over HTTP: the same key with the same body gets the same response; the
//! same key with a different body is refused (422).
//!
//! The engine already recognises a retried command per SKU, durably, and answers it with
//! the first outcome. What it cannot see is a key reused for a request over *other* SKUs,
//! or for another endpoint. So the server records, per principal and key, a digest of the
//! endpoint and the canonical body before the request runs, in `http.db` beside the log,
//! and refuses a later request under that key whose digest differs. Entries are kept for
//! 8 days (see [`RETENTION`]) and then pruned.
//!
//! One thread owns the table and records every check waiting when it wakes in one
//! transaction (group commit), so keyed requests under load share commits.
//!
//! On a PostgreSQL log the table is in the log's database instead
//! ([`RequestKeys::shared`]), so that a keyed retry that reaches another node meets the
//! first request's record.
//!
//! The table is written with `synchronous = NORMAL`: it survives a crash of the process,
//! and an operating-system crash can lose only its last entries, in which case the engine's
//! own per-SKU check still refuses a changed request on any SKU the first one touched.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use ring::digest::{SHA256, digest};
use rusqlite::{Connection, OptionalExtension, params};
use stockade_wire::{ApiError, Code, ErrorKind};
use tokio::sync::oneshot;

/// How long a key is remembered: the engine's own key window (the longest TTL, 7 days,
/// plus a day). A key derives its reservation's id and the engine answers a retry from
/// the log for that long, so a key reused sooner for another request would name the old
/// reservation; it is refused instead.
pub const RETENTION: Duration = stockade_engine::config::DEFAULT_IDEMPOTENCY_RETENTION;
/// Expired keys are pruned once per this many new ones.
const PRUNE_EVERY: u64 = 4096;
/// At most this many checks share one transaction.
const CHECKS_PER_TRANSACTION: usize = 1024;

/// The handle requests use. Checks go to one thread that owns the connection and puts
/// every check waiting when it wakes into one transaction: under load a keyed request
/// costs a share of a commit rather than a commit, a mutex and a blocking-pool hop of
/// its own.
#[derive(Debug, Clone)]
pub struct RequestKeys {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    /// `http.db` in this node's data directory.
    Local(mpsc::Sender<Check>),
    /// The log's PostgreSQL database, shared by every node.
    Shared(stockade_postgres::RequestKeyTable),
}

/// One key to record or compare, and where its verdict goes (`true`: the request may run).
struct Check {
    principal: String,
    key: String,
    digest: Vec<u8>,
    now_millis: u64,
    verdict: oneshot::Sender<Result<bool, String>>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        Code::Unavailable,
        format!("idempotency keys: {e}"),
    )
}

impl RequestKeys {
    pub fn open(path: &Path) -> Result<Self, String> {
        stockade_store::files::private_file(path)
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        let conn = Connection::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
        Self::init(conn).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn in_memory() -> Result<Self, String> {
        let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
        Self::init(conn).map_err(|e| e.to_string())
    }

    fn init(conn: Connection) -> Result<Self, String> {
        stockade_store::sqlite::fixed_plans(&conn).map_err(|e| e.to_string())?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS request_keys (
                 principal  TEXT NOT NULL,
                 key        TEXT NOT NULL,
                 digest     BLOB NOT NULL,
                 created_at INTEGER NOT NULL,
                 PRIMARY KEY (principal, key)
             ) WITHOUT ROWID;",
        )
        .map_err(|e| e.to_string())?;
        let (checks, queue) = mpsc::channel();
        // The thread ends when the last handle is dropped (the channel disconnects).
        std::thread::Builder::new()
            .name("stockade-keys".into())
            .spawn(move || Keeper::new(conn).run(&queue))
            .map_err(|e| format!("start the idempotency key thread: {e}"))?;
        Ok(Self {
            backend: Backend::Local(checks),
        })
    }

    /// Keys kept in the shared table of a PostgreSQL log.
    pub fn shared(table: stockade_postgres::RequestKeyTable) -> Self {
        Self {
            backend: Backend::Shared(table),
        }
    }

    /// Records `key` for `principal` with the digest of `endpoint` and `body`, or checks it
    /// against the one recorded. `now_millis` is the server clock.
    pub async fn check(
        &self,
        principal: &str,
        key: &str,
        endpoint: &str,
        body: &[u8],
        now_millis: u64,
    ) -> Result<(), ApiError> {
        let mut material = Vec::with_capacity(endpoint.len() + 1 + body.len());
        material.extend_from_slice(endpoint.as_bytes());
        material.push(0);
        material.extend_from_slice(body);
        let digest = digest(&SHA256, &material).as_ref().to_vec();
        let fits = match &self.backend {
            Backend::Shared(table) => {
                let retention = u64::try_from(RETENTION.as_millis()).unwrap_or(u64::MAX);
                table
                    .check(principal, key, &digest, now_millis, retention)
                    .await
                    .map_err(unavailable)?
            }
            Backend::Local(checks) => {
                let (verdict, answer) = oneshot::channel();
                checks
                    .send(Check {
                        principal: principal.to_owned(),
                        key: key.to_owned(),
                        digest,
                        now_millis,
                        verdict,
                    })
                    .map_err(|_| unavailable("the key thread stopped"))?;
                answer
                    .await
                    .map_err(|_| unavailable("the key thread stopped before answering"))?
                    .map_err(unavailable)?
            }
        };
        if fits {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Unprocessable,
                Code::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request",
            ))
        }
    }
}

/// The thread that owns `http.db`.
struct Keeper {
    conn: Connection,
    /// Keys inserted since start-up, for pruning every [`PRUNE_EVERY`].
    inserted: u64,
}

impl Keeper {
    fn new(conn: Connection) -> Self {
        Self { conn, inserted: 0 }
    }

    fn run(mut self, queue: &mpsc::Receiver<Check>) {
        let retention = u64::try_from(RETENTION.as_millis()).unwrap_or(u64::MAX);
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < CHECKS_PER_TRANSACTION {
                match queue.try_recv() {
                    Ok(check) => batch.push(check),
                    Err(_) => break,
                }
            }
            match self.decide(&batch, retention) {
                Ok(verdicts) => {
                    for (check, fits) in batch.into_iter().zip(verdicts) {
                        // A caller that went away does not need its verdict.
                        let _ = check.verdict.send(Ok(fits));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for check in batch {
                        let _ = check.verdict.send(Err(message.clone()));
                    }
                }
            }
        }
    }

    /// One transaction for the whole batch: all of its keys are recorded, or none, and
    /// then every caller in it hears the error (503) and may retry. Checks of one key
    /// within a batch see each other, in arrival order, as if they had come one by one.
    fn decide(&mut self, batch: &[Check], retention: u64) -> rusqlite::Result<Vec<bool>> {
        // IMMEDIATE: the write lock from the start, so a read never has to be upgraded
        // (which fails if another connection wrote meanwhile).
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut verdicts = Vec::with_capacity(batch.len());
        let mut inserted = 0;
        {
            let mut read = tx.prepare_cached(
                "SELECT digest, created_at FROM request_keys WHERE principal = ?1 AND key = ?2",
            )?;
            let mut write = tx.prepare_cached(
                "INSERT OR REPLACE INTO request_keys (principal, key, digest, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for check in batch {
                let since = check.now_millis.saturating_sub(retention);
                let recorded: Option<(Vec<u8>, i64)> = read
                    .query_row(params![check.principal, check.key], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                let live = recorded.filter(|(_, at)| u64::try_from(*at).unwrap_or(0) >= since);
                verdicts.push(match live {
                    Some((digest, _)) => digest == check.digest,
                    None => {
                        let at = i64::try_from(check.now_millis).unwrap_or(i64::MAX);
                        write.execute(params![check.principal, check.key, check.digest, at])?;
                        inserted += 1;
                        true
                    }
                });
            }
        }
        let before = self.inserted;
        let after = before + inserted;
        if after / PRUNE_EVERY > before / PRUNE_EVERY {
            let newest = batch.iter().map(|c| c.now_millis).max().unwrap_or(0);
            let cutoff = i64::try_from(newest.saturating_sub(retention)).unwrap_or(i64::MAX);
            tx.execute("DELETE FROM request_keys WHERE created_at < ?1", [cutoff])?;
        }
        tx.commit()?;
        self.inserted = after;
        Ok(verdicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_fits_one_request_for_one_principal_within_its_window() {
        let keys = RequestKeys::in_memory().unwrap();
        let t = 1_000_000_000;
        keys.check("web", "k1", "reserve", b"{a}", t).await.unwrap();
        keys.check("web", "k1", "reserve", b"{a}", t + 5)
            .await
            .unwrap();
        let reused = keys.check("web", "k1", "reserve", b"{b}", t + 5).await;
        assert_eq!(reused.unwrap_err().kind.http_status(), 422);
        // The same body on another endpoint is another request.
        assert!(keys.check("web", "k1", "commit", b"{a}", t).await.is_err());
        // Another principal has keys of its own.
        keys.check("pos", "k1", "reserve", b"{b}", t).await.unwrap();
        // After the window, the key is free again.
        let later = t + RETENTION.as_millis() as u64 + 1;
        keys.check("web", "k1", "reserve", b"{b}", later)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn concurrent_checks_share_transactions_and_one_body_wins_a_key() {
        let keys = RequestKeys::in_memory().unwrap();
        let t = 1_000_000_000;
        let checks = (0..200).map(|i| {
            let keys = keys.clone();
            async move {
                let body: &[u8] = if i % 2 == 0 { b"{a}" } else { b"{b}" };
                let shared = keys.check("web", "same", "reserve", body, t).await.is_ok();
                let own = keys
                    .check("web", &format!("k{i}"), "reserve", body, t)
                    .await;
                (body, shared, own.is_ok())
            }
        });
        let outcomes = futures::future::join_all(checks).await;
        assert!(
            outcomes.iter().all(|(_, _, own)| *own),
            "fresh keys all fit"
        );
        let winners: std::collections::HashSet<&[u8]> = outcomes
            .iter()
            .filter(|(_, shared, _)| *shared)
            .map(|(body, _, _)| *body)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one body owns the shared key");
        assert_eq!(
            outcomes.iter().filter(|(_, shared, _)| *shared).count(),
            100
        );
    }
}
