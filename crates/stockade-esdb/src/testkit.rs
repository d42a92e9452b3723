//! For tests that need a live EventStoreDB: the server named by `STOCKADE_ESDB_URL`, a
//! fresh namespace per store (so tests sharing a server never see each other's events),
//! and one plain line saying the live tests were skipped when no server is configured.
#![allow(clippy::expect_used)]

use std::io::Write;
use std::sync::Once;

use crate::{EsdbConfig, EsdbStore, LIVE_URL_VAR};

static SKIPPED: Once = Once::new();

/// Settings for a live test, or `None` (after saying so once per test binary) when
/// `STOCKADE_ESDB_URL` is not set.
pub fn live_config(suite: &str) -> Option<EsdbConfig> {
    match std::env::var(LIVE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => {
            let tag = uuid::Uuid::new_v4().simple().to_string();
            Some(EsdbConfig::new(url.trim()).namespace(format!("t{}-", &tag[..12])))
        }
        _ => {
            SKIPPED.call_once(|| {
                // Straight to the terminal: the test harness captures `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: SKIPPED the live EventStoreDB {suite}: {LIVE_URL_VAR} is not set \
                     (no server can be installed here; see docs/operations.md)"
                );
            });
            None
        }
    }
}

/// A live store in a fresh namespace, or `None` as [`live_config`].
pub async fn live_store(suite: &str) -> Option<EsdbStore> {
    let config = live_config(suite)?;
    Some(
        EsdbStore::connect(config)
            .await
            .expect("connect to the EventStoreDB in STOCKADE_ESDB_URL"),
    )
}
