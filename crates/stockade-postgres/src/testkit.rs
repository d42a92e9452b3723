//! For tests that need a live PostgreSQL: the server named by `STOCKADE_PG_URL`, a fresh
//! schema per store (so tests sharing a server never see each other's events), and one
//! plain line saying the live tests were skipped when no server is configured.
#![allow(clippy::expect_used)]

use std::io::Write;
use std::sync::Once;

use crate::{LIVE_URL_VAR, PgConfig, PostgresStore};

static SKIPPED: Once = Once::new();

/// The server's URL, or `None` (after saying so once per test binary). Under CI (`CI`
/// set) a missing URL fails the test instead: `.ci/run` starts a server, so a skip there
/// would hide a broken set-up.
pub fn live_url(suite: &str) -> Option<String> {
    match std::env::var(LIVE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the live PostgreSQL {suite}, but {LIVE_URL_VAR} is not set \
                 (`.ci/run` starts a server and sets it)"
            );
            SKIPPED.call_once(|| {
                // Straight to the terminal: the test harness captures `eprintln!`.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: SKIPPED the live PostgreSQL {suite}: {LIVE_URL_VAR} is not set \
                     (`bash .ci/run` starts a server; see docs/operations.md)"
                );
            });
            None
        }
    }
}

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    format!("t_{}", &tag[..16])
}

/// Settings for a live test in a fresh schema, or `None` as [`live_url`].
pub fn live_config(suite: &str) -> Option<PgConfig> {
    Some(PgConfig::new(live_url(suite)?).schema(fresh_schema()))
}

/// A live store in a fresh schema, or `None` as [`live_url`].
pub async fn live_store(suite: &str) -> Option<PostgresStore> {
    let config = live_config(suite)?;
    Some(
        PostgresStore::connect(config)
            .await
            .expect("connect to the PostgreSQL in STOCKADE_PG_URL"),
    )
}
