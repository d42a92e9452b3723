//! Stockade's engine: one single-writer actor per SKU, and the [`Inventory`] API over them.
//!
//! # Layout
//! - [`inventory`]: [`Inventory`], the API (open, register, reserve, commit, release,
//!   adjust, stock, reservation), its requests and receipts.
//! - `engine`: the actor threads (one actix arbiter per core), the registry that finds or
//!   starts a SKU's actor, and the one way of asking it something.
//! - `actor`: the SKU actor, a pipelined single writer (see its module docs for the
//!   invariants).
//! - `reply`: reply handles, and the per-SKU bound that turns overload into `Overloaded`.
//! - [`idempotency`]: keys per principal, their retention, key-derived event ids.
//! - `recovery`: rebuilding a SKU from snapshot + events; the engine snapshot format.
//! - [`latency`]: nearest-rank percentiles of call latencies ([`Percentiles`]).
//! - `locator`: which SKUs hold a reservation, which reservations an order has.
//! - [`audit`]: an independent check of the log against its invariants (`audit verify`,
//!   the simulations).
//! - [`replay`]: stock at a past cut of the log, and its history with figures.
//! - [`clock`]: the injected time source ([`SystemClock`], [`ManualClock`]).
//! - [`config`]: [`EngineConfig`] and its defaults.
//! - [`error`]: [`Error`], what a caller can be told besides success.

mod actor;
pub mod audit;
pub mod clock;
pub mod config;
mod engine;
pub mod error;
mod history;
pub mod idempotency;
pub mod inventory;
pub mod latency;
mod locator;
mod orphans;
mod recovery;
pub mod replay;
mod reply;
pub mod secret;

pub use actor::{Accepted, FairSellingView, LineStatus, StockLevel};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{EngineConfig, ResolvePolicy};
pub use engine::EngineStats;
pub use error::Error;
pub use inventory::{
    Adjusted, Adjustment, BackorderLimit, Changed, FairSelling, Inventory, InventoryConfig, Line,
    MAX_KIT_DEPTH, MAX_PLACES_LISTED, Origin, Receipt, ReceiptChange, Registration, Reservation,
    ReservationStatus, ReserveOptions, ReservedLine, Resolved, SQLITE_FILE, StoreConfig, Transfer,
    Transferred, WaitlistChange,
};
pub use latency::Percentiles;
pub use recovery::snapshot_at_or_before;
pub use secret::IdSecret;
