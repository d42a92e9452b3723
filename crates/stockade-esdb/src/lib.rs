//! Stockade's EventStoreDB (KurrentDB) backend: the [`EventStore`](stockade_store::EventStore)
//! port over the official gRPC client, crate `kurrentdb` (docs/adr/0004).
//!
//! - One stream per SKU, `sku-{SKU}` (behind an optional namespace prefix), appended with
//!   exact expected revisions and the engine's deterministic event ids, so that a retried
//!   append is recognised by the server and written once.
//! - Payloads and metadata are MessagePack bytes, exactly as the embedded store keeps them.
//! - Batches are split below the server's `MaxAppendSize`; an event that alone exceeds it
//!   is refused with an error naming it.
//! - A missing stream reads as empty. `$all` reads and subscriptions are filtered on the
//!   `sku-` prefix on the server; subscriptions resume after the last event delivered and
//!   reconnect after a server restart.
//! - Snapshots live in a companion stream `snapshot-sku-{SKU}` with `$maxCount` 1.
//! - Every call has a deadline.
//!
//! # Layout
//! - [`config`]: [`EsdbConfig`], checked before connecting.
//! - `convert`: the pure translation of expectations, errors, positions and events.
//! - `batch`: splitting at the byte limit.
//! - `connection`: the client, replaced when it cannot recover by itself.
//! - `store`: [`EsdbStore`] itself.
//! - `subscription`: the reconnecting `$all` subscription.
//!
//! Live tests need a server: set `STOCKADE_ESDB_URL` (see docs/operations.md).

mod batch;
pub mod config;
mod connection;
mod convert;
mod store;
mod subscription;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::EsdbConfig;
pub use store::EsdbStore;

/// The environment variable naming the server the live tests use.
pub const LIVE_URL_VAR: &str = "STOCKADE_ESDB_URL";
