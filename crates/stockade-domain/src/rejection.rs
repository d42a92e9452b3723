//! Why a command was refused, and why an event could not be applied.
//!
//! A [`Rejection`] is an answer, not an event: nothing is written, and a sold-out SKU says
//! no without touching the store. An [`Inconsistency`] means a stream contradicts itself
//! (a corrupt or hand-edited log); whoever folds it must stop rather than guess.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{CustomerId, LocationId, ReceiptRef, ReservationId, Sku, TransferId};
use crate::pool::PoolKind;
use crate::quantity::{ArithmeticError, Quantity};
use crate::time::Timestamp;

/// How a reservation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Committed,
    Released,
    Expired,
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resolution::Committed => "committed",
            Resolution::Released => "released",
            Resolution::Expired => "expired",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Rejection {
    #[error("SKU is not registered")]
    UnknownSku,
    #[error("SKU {sku} is already registered")]
    AlreadyRegistered { sku: Sku },
    #[error("invalid pool settings: {reason}")]
    InvalidPool { reason: String },
    #[error("quantity must be greater than zero")]
    InvalidQuantity,
    #[error("time to live must be between 1 ms and 7 days")]
    InvalidTtl,
    #[error("insufficient stock: requested {requested}, available {available}")]
    InsufficientStock {
        requested: Quantity,
        available: Quantity,
    },
    #[error("SKU is short: {shortfall} units promised beyond what exists; no new reservations")]
    Short { shortfall: Quantity },
    #[error("reservation {reservation_id} is at risk: the SKU is short and it is not covered")]
    AtRisk { reservation_id: ReservationId },
    #[error("reservation {reservation_id} already exists")]
    DuplicateReservation { reservation_id: ReservationId },
    #[error("reservation {reservation_id} is unknown")]
    UnknownReservation { reservation_id: ReservationId },
    #[error("reservation {reservation_id} was already {resolution}")]
    AlreadyResolved {
        reservation_id: ReservationId,
        resolution: Resolution,
    },
    #[error("reservation {reservation_id} lapsed at {expires_at}")]
    Lapsed {
        reservation_id: ReservationId,
        expires_at: Timestamp,
    },
    #[error("reservation {reservation_id} does not expire until {expires_at}")]
    NotYetExpired {
        reservation_id: ReservationId,
        expires_at: Timestamp,
    },
    #[error("adjustment by {delta} would take {current} below zero")]
    BelowZero { current: Quantity, delta: i64 },
    #[error("a zero delta changes nothing")]
    ZeroDelta,
    #[error("quantity arithmetic out of range: {source}")]
    OutOfRange {
        #[from]
        source: ArithmeticError,
    },
    #[error("a {pool} SKU cannot {what}")]
    UnsupportedForPool { pool: PoolKind, what: String },
    #[error("reason must be 1-{max} characters")]
    InvalidReason { max: usize },
    #[error("reference must be at most {max} characters")]
    InvalidReference { max: usize },
    #[error("location {location} is not one of the SKU's locations")]
    UnknownLocation { location: LocationId },
    #[error("the SKU is stocked at several locations: name the location")]
    LocationRequired,
    #[error("transfer {transfer_id} is not in transit")]
    UnknownTransfer { transfer_id: TransferId },
    #[error("transfer {transfer_id} is already in transit")]
    DuplicateTransfer { transfer_id: TransferId },
    #[error("invalid transfer: {reason}")]
    InvalidTransfer { reason: String },
    #[error("reservation {reservation_id} holds {held} units here; {requested} asked")]
    ExceedsHold {
        reservation_id: ReservationId,
        requested: Quantity,
        held: Quantity,
    },
    #[error(
        "reservation {reservation_id} already lasts until {expires_at}; an extension must end later"
    )]
    NotAnExtension {
        reservation_id: ReservationId,
        expires_at: Timestamp,
    },
    #[error("a reservation may be held 7 days from when it was made: until {latest} at the latest")]
    BeyondMaxHold {
        reservation_id: ReservationId,
        latest: Timestamp,
    },
    #[error("reservation {reservation_id} already holds {qty} units here")]
    Unchanged {
        reservation_id: ReservationId,
        qty: Quantity,
    },
    #[error(
        "reservation {reservation_id} has {backordered} units waiting for stock; sell what is covered, or wait for the stock"
    )]
    Backordered {
        reservation_id: ReservationId,
        backordered: Quantity,
    },
    #[error("receipt {reference} is not expected")]
    UnknownReceipt { reference: ReceiptRef },
    #[error("receipt {reference} is already expected")]
    DuplicateReceipt { reference: ReceiptRef },
    #[error("invalid receipt: {reason}")]
    InvalidReceipt { reason: String },
    #[error(
        "customer {customer} may hold and buy {limit} in the limit's window: {counted} held or bought, {requested} more asked ({remaining} remain)"
    )]
    PurchaseLimit {
        customer: CustomerId,
        limit: Quantity,
        counted: Quantity,
        requested: Quantity,
        remaining: Quantity,
    },
    #[error("the SKU has a purchase limit: a reservation must name its customer")]
    CustomerRequired,
    #[error("{waiting} customers are waiting for this SKU: join the waitlist")]
    Waitlisted { waiting: u64 },
    #[error("customer {customer} is already on the waitlist, at place {position}")]
    AlreadyWaiting { customer: CustomerId, position: u64 },
    #[error("customer {customer} is not on the waitlist")]
    NotWaiting { customer: CustomerId },
    #[error("the waitlist is full ({max} places)")]
    WaitlistFull { max: usize },
    #[error("no one on the waitlist can be served now")]
    NothingToServe,
    #[error("invalid fair-selling rules: {reason}")]
    InvalidRules { reason: String },
}

impl Rejection {
    /// A stable machine-readable code (the `error` field over HTTP, MCP and the CLI).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownSku => "unknown_sku",
            Rejection::AlreadyRegistered { .. } => "already_registered",
            Rejection::InvalidPool { .. } => "invalid_pool",
            Rejection::InvalidQuantity => "invalid_quantity",
            Rejection::InvalidTtl => "invalid_ttl",
            Rejection::InsufficientStock { .. } => "insufficient_stock",
            Rejection::Short { .. } => "short",
            Rejection::AtRisk { .. } => "at_risk",
            Rejection::DuplicateReservation { .. } => "duplicate_reservation",
            Rejection::UnknownReservation { .. } => "unknown_reservation",
            Rejection::AlreadyResolved { .. } => "already_resolved",
            Rejection::Lapsed { .. } => "lapsed",
            Rejection::NotYetExpired { .. } => "not_yet_expired",
            Rejection::BelowZero { .. } => "below_zero",
            Rejection::ZeroDelta => "zero_delta",
            Rejection::OutOfRange { .. } => "out_of_range",
            Rejection::UnsupportedForPool { .. } => "unsupported_for_pool",
            Rejection::InvalidReason { .. } => "invalid_reason",
            Rejection::InvalidReference { .. } => "invalid_reference",
            Rejection::UnknownLocation { .. } => "unknown_location",
            Rejection::LocationRequired => "location_required",
            Rejection::UnknownTransfer { .. } => "unknown_transfer",
            Rejection::DuplicateTransfer { .. } => "duplicate_transfer",
            Rejection::InvalidTransfer { .. } => "invalid_transfer",
            Rejection::ExceedsHold { .. } => "exceeds_hold",
            Rejection::NotAnExtension { .. } => "not_an_extension",
            Rejection::BeyondMaxHold { .. } => "beyond_max_hold",
            Rejection::Unchanged { .. } => "unchanged",
            Rejection::Backordered { .. } => "backordered",
            Rejection::UnknownReceipt { .. } => "unknown_receipt",
            Rejection::DuplicateReceipt { .. } => "duplicate_receipt",
            Rejection::InvalidReceipt { .. } => "invalid_receipt",
            Rejection::PurchaseLimit { .. } => "purchase_limit",
            Rejection::CustomerRequired => "customer_required",
            Rejection::Waitlisted { .. } => "waitlisted",
            Rejection::AlreadyWaiting { .. } => "already_waiting",
            Rejection::NotWaiting { .. } => "not_waiting",
            Rejection::WaitlistFull { .. } => "waitlist_full",
            Rejection::NothingToServe => "nothing_to_serve",
            Rejection::InvalidRules { .. } => "invalid_rules",
        }
    }
}

/// An event that contradicts the state it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Inconsistency {
    #[error("{event_type} before the SKU was registered")]
    NotRegistered { event_type: &'static str },
    #[error("SKU registered twice")]
    RegisteredTwice,
    #[error("reservation {0} created twice")]
    DuplicateReservation(ReservationId),
    #[error("{event_type} for reservation {reservation_id}, which is not live")]
    NotLive {
        event_type: &'static str,
        reservation_id: ReservationId,
    },
    #[error("{event_type} for reservation {reservation_id} says {recorded} units, it holds {held}")]
    QuantityMismatch {
        event_type: &'static str,
        reservation_id: ReservationId,
        recorded: Quantity,
        held: Quantity,
    },
    #[error("{event_type} for reservation {reservation_id} does not fit the hold: {why}")]
    HoldMismatch {
        event_type: &'static str,
        reservation_id: ReservationId,
        why: String,
    },
    #[error("adjustment records previous {recorded}, state has {actual}")]
    PreviousMismatch {
        recorded: Quantity,
        actual: Quantity,
    },
    #[error("adjustment does not apply to a {0} SKU")]
    AdjustmentNotApplicable(PoolKind),
    #[error("a {0} SKU holds nothing itself")]
    NotHoldable(PoolKind),
    #[error("arithmetic out of range: {0}")]
    OutOfRange(#[from] ArithmeticError),
    #[error("state breaks its invariants: {0}")]
    InvalidSnapshot(String),
    #[error("locations: {0}")]
    Locations(String),
    #[error("backorders and receipts: {0}")]
    Receipts(String),
    #[error("waitlist: {0}")]
    Waitlist(String),
}
