//! Stockade's pure domain: what a SKU is, what may happen to its stock, and what did.
//!
//! Nothing here does I/O, awaits, or reads a clock: time is an argument. Every business
//! invariant lives in this crate, so it is tested without a runtime.
//!
//! # Layout
//! - [`ids`]: validated identifiers ([`Sku`], [`OrderId`], [`Channel`], [`Principal`],
//!   [`ReservationId`], [`LocationId`]).
//! - [`quantity`]: [`Quantity`], a `u64` whose arithmetic is checked (overflow is an error).
//! - [`time`]: [`Timestamp`] (Unix milliseconds) and its RFC 3339 rendering.
//! - [`pool`]: the kinds of stock pool (and kits) and their registration settings.
//! - [`command`]: what a caller asks for.
//! - [`event`]: what happened (one stream per SKU), plus the metadata each event carries.
//! - [`state`]: [`SkuState`], folded from events by [`evolve`]; availability with lazy expiry.
//! - [`decide()`]: the pure decision `(&SkuState, &Command, now) -> events | rejection`.
//! - [`allocation`]: which locations a line's units come from, by strategy (pure; called
//!   by [`decide()`] for a SKU at several locations, see `docs/adr/0006`).
//! - [`rejection`]: why a command was refused ([`Rejection`]) and why an event could not be
//!   applied ([`Inconsistency`]).
//! - `testing` (feature `testkit`): the given / when / then harness.

pub mod allocation;
pub mod command;
pub mod decide;
pub mod event;
pub mod ids;
pub mod pool;
pub mod quantity;
pub mod rejection;
pub mod state;
pub mod time;

#[cfg(any(test, feature = "testkit"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use allocation::{Part, Placement};
pub use command::{
    Adjust, Amend, CancelReceipt, Command, Commit, DEFAULT_WAITLIST_HOLD, ExpectReceipt, Expire,
    Extend, JoinWaitlist, LeaveWaitlist, MAX_LIMIT_WINDOW, MAX_TTL, MAX_WAITLIST_HOLD,
    MIN_WAITLIST_HOLD, ReceiveReceipt, ReceiveTransfer, Reduce, RegisterSku, Release, Reserve,
    SetBackorderLimit, SetFairSelling, ShipTransfer, StockChange,
};
pub use decide::decide;
pub use event::{
    BackorderFilled, BackorderLimitSet, Event, EventMetadata, FairSellingSet, LeftReason,
    ReceiptCancelled, ReceiptExpected, ReceiptReceived, ReservationCommitted, ReservationExpired,
    ReservationExtended, ReservationIncreased, ReservationReduced, ReservationReleased,
    SCHEMA_VERSION, SkuRegistered, StockAdjusted, StockReserved, TransferReceived, TransferShipped,
    WaitlistJoined, WaitlistLeft,
};
pub use ids::{
    Channel, CustomerId, InvalidId, LocationId, OrderId, Principal, ReceiptRef, ReservationId, Sku,
    TransferId,
};
pub use pool::{Component, LocationConfig, MAX_COMPONENTS, MAX_LOCATIONS, PoolConfig, PoolKind};
pub use quantity::{ArithmeticError, Quantity};
pub use rejection::{Inconsistency, Rejection, Resolution};
pub use state::{
    Availability, HoldFacts, Landed, Ledger, LocationView, MAX_RECEIPTS, MAX_WAITERS,
    PurchaseLimitView, ReceiptView, Reservation, SkuState, StockRef, StockView, WaitlistPlace,
    evolve,
};
pub use time::{InvalidTimestamp, Timestamp};
