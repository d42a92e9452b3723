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
//! The table is written with `synchronous = NORMAL`: it survives a crash of the process,
//! and an operating-system crash can lose only its last entries, in which case the engine's
//! own per-SKU check still refuses a changed request on any SKU the first one touched.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::digest::{SHA256, digest};
use rusqlite::{Connection, OptionalExtension, params};
use stockade_wire::{ApiError, ErrorKind};

/// How long a key is remembered: the engine's own key window (the longest TTL, 7 days,
/// plus a day). A key derives its reservation's id and the engine answers a retry from
/// the log for that long, so a key reused sooner for another request would name the old
/// reservation; it is refused instead.
pub const RETENTION: Duration = stockade_engine::config::DEFAULT_IDEMPOTENCY_RETENTION;
/// Expired keys are pruned once per this many new ones.
const PRUNE_EVERY: u64 = 4096;

#[derive(Debug, Clone)]
pub struct RequestKeys {
    conn: Arc<Mutex<(Connection, u64)>>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        "unavailable",
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

    fn init(conn: Connection) -> rusqlite::Result<Self> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS request_keys (
                 principal  TEXT NOT NULL,
                 key        TEXT NOT NULL,
                 digest     BLOB NOT NULL,
                 created_at INTEGER NOT NULL,
                 PRIMARY KEY (principal, key)
             ) WITHOUT ROWID;",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new((conn, 0))),
        })
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
        let wanted = digest(&SHA256, &material).as_ref().to_vec();
        let (principal, key) = (principal.to_owned(), key.to_owned());
        let conn = self.conn.clone();
        let retention = u64::try_from(RETENTION.as_millis()).unwrap_or(u64::MAX);
        let since = now_millis.saturating_sub(retention);
        let outcome = tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let (conn, inserted) = &mut *guard;
            let recorded: Option<(Vec<u8>, i64)> = conn
                .query_row(
                    "SELECT digest, created_at FROM request_keys WHERE principal = ?1 AND key = ?2",
                    params![principal, key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let live = recorded.filter(|(_, at)| u64::try_from(*at).unwrap_or(0) >= since);
            match live {
                Some((digest, _)) => Ok(digest == wanted),
                None => {
                    let at = i64::try_from(now_millis).unwrap_or(i64::MAX);
                    conn.execute(
                        "INSERT OR REPLACE INTO request_keys (principal, key, digest, created_at)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![principal, key, wanted, at],
                    )?;
                    *inserted += 1;
                    if (*inserted).is_multiple_of(PRUNE_EVERY) {
                        let cutoff = i64::try_from(since).unwrap_or(i64::MAX);
                        conn.execute("DELETE FROM request_keys WHERE created_at < ?1", [cutoff])?;
                    }
                    Ok(true)
                }
            }
        })
        .await
        .map_err(unavailable)?
        .map_err(|e: rusqlite::Error| unavailable(e))?;
        if outcome {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Unprocessable,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request",
            ))
        }
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
}
