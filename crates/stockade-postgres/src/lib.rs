//! Stockade's PostgreSQL backend: the [`EventStore`](stockade_store::EventStore) port over
//! a few tables in one schema, shared by every node that serves the same log.
//!
//! - Appends: each node's one writer puts every queued append into one transaction
//!   (group commit), which first locks the log's head row. The lock orders all nodes'
//!   commits, so global positions are gap-free and handed out in commit order, and a
//!   subscription reading `position > after` can never skip an event committed late.
//! - Exact expected revisions and idempotent retries follow `stockade_store::plan`, the
//!   rule every backend shares.
//! - Reads, snapshots and the history indexes (event id, subject, correlation, streams
//!   with open subjects) are plain indexed queries.
//! - Subscriptions: catch-up, then live, woken by this node's commits and by other
//!   nodes' through `LISTEN`/`NOTIFY`, with a slow re-read as a safety net.
//! - [`RequestKeyTable`]: the HTTP idempotency fingerprints, in the same database, so a
//!   keyed retry that reaches another node is still recognised.
//!
//! # Layout
//! - [`config`]: [`PgConfig`], checked before connecting.
//! - `schema`: the tables, created or checked at connect.
//! - `conn`: connections and the read pool.
//! - `writer`: the group-commit writer.
//! - `store`: [`PostgresStore`] itself, and the listener.
//! - `keys`: [`RequestKeyTable`].
//!
//! Live tests need a server: set `STOCKADE_PG_URL` (`.ci/run` starts one).

pub mod config;
mod conn;
mod keys;
pub mod schema;
mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
mod writer;

pub use config::PgConfig;
pub use keys::RequestKeyTable;
pub use store::{PgStats, PostgresStore};

/// The environment variable naming the server the live tests use, and the URL
/// `stockade serve --store postgres` connects to when none is configured.
pub const LIVE_URL_VAR: &str = "STOCKADE_PG_URL";
