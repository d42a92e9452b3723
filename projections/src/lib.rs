//! Stockade's projections: the log, folded into read models, and a freshness notice for
//! every change, delivered to whatever shows or uses stock.
//!
//! # Layout
//! - [`model`]: stock rows, reservation rows, statuses, notices, and the rules that derive
//!   them from the domain's view of a SKU.
//! - [`db`]: [`ReadModels`], the SQLite read-model database, and the transaction that
//!   applies a batch together with its checkpoint.
//! - [`runner`]: [`Projector`], which follows the log and feeds the read models and the hub.
//! - `fold`: a SKU's state folded from its stream, for reconciliation.
//! - [`hub`]: [`NoticeHub`], in-process fan-out with a bounded buffer per subscriber.
//! - [`reconcile`]: read models checked against the log and repaired; physical counts
//!   applied as deltas against the state at the time of the count.
//! - [`webhook`]: signed delivery of the outbox to HTTP endpoints, with retries and a
//!   dead-letter queue.

use thiserror::Error;

pub mod db;
mod fold;
pub mod hub;
pub mod model;
pub mod reconcile;
pub mod runner;
pub mod webhook;

pub use db::{Checkpoint, ReadModels};
pub use hub::{HubMessage, HubSubscriber, NoticeHub};
pub use model::{Level, Notice, Status, StockRow};
pub use runner::{Projector, ProjectorConfig};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProjectionError {
    #[error("event store: {0}")]
    Store(#[from] stockade_store::StoreError),
    #[error("read models: {0}")]
    ReadModel(String),
    #[error("undecodable event: {0}")]
    Codec(#[from] stockade_store::codec::CodecError),
    /// The log contradicts itself (an event the domain refuses to fold).
    #[error("inconsistent log: {0}")]
    Inconsistent(String),
    #[error("delivery: {0}")]
    Delivery(String),
}
