//! Events: the facts in a SKU's stream (`sku-{SKU}`), and the metadata each one carries.
//!
//! Every event records its own instant (`at`), so that folding a stream needs nothing but
//! the stream. Quantities before and after are recorded where a person auditing the log
//! would otherwise have to recompute them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::allocation::Part;
use crate::command::StockChange;
use crate::ids::{
    Channel, CustomerId, LocationId, OrderId, Principal, ReceiptRef, ReservationId, Sku, TransferId,
};
use crate::pool::PoolConfig;
use crate::quantity::Quantity;
use crate::rejection::Resolution;
use crate::time::Timestamp;

/// Version of the payload shapes below. Bump it with a decoder for the previous version.
pub const SCHEMA_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    SkuRegistered(SkuRegistered),
    StockAdjusted(StockAdjusted),
    StockReserved(StockReserved),
    ReservationCommitted(ReservationCommitted),
    ReservationReleased(ReservationReleased),
    ReservationExpired(ReservationExpired),
    TransferShipped(TransferShipped),
    TransferReceived(TransferReceived),
    ReservationExtended(ReservationExtended),
    ReservationReduced(ReservationReduced),
    ReservationIncreased(ReservationIncreased),
    BackorderLimitSet(BackorderLimitSet),
    ReceiptExpected(ReceiptExpected),
    ReceiptReceived(ReceiptReceived),
    ReceiptCancelled(ReceiptCancelled),
    BackorderFilled(BackorderFilled),
    FairSellingSet(FairSellingSet),
    WaitlistJoined(WaitlistJoined),
    WaitlistLeft(WaitlistLeft),
}

impl Event {
    /// All event type names, as stored beside each payload.
    pub const TYPES: [&'static str; 19] = [
        "SkuRegistered",
        "StockAdjusted",
        "StockReserved",
        "ReservationCommitted",
        "ReservationReleased",
        "ReservationExpired",
        "TransferShipped",
        "TransferReceived",
        "ReservationExtended",
        "ReservationReduced",
        "ReservationIncreased",
        "BackorderLimitSet",
        "ReceiptExpected",
        "ReceiptReceived",
        "ReceiptCancelled",
        "BackorderFilled",
        "FairSellingSet",
        "WaitlistJoined",
        "WaitlistLeft",
    ];

    /// The type name stored beside the payload; one of [`Event::TYPES`].
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::SkuRegistered(_) => Self::TYPES[0],
            Event::StockAdjusted(_) => Self::TYPES[1],
            Event::StockReserved(_) => Self::TYPES[2],
            Event::ReservationCommitted(_) => Self::TYPES[3],
            Event::ReservationReleased(_) => Self::TYPES[4],
            Event::ReservationExpired(_) => Self::TYPES[5],
            Event::TransferShipped(_) => Self::TYPES[6],
            Event::TransferReceived(_) => Self::TYPES[7],
            Event::ReservationExtended(_) => Self::TYPES[8],
            Event::ReservationReduced(_) => Self::TYPES[9],
            Event::ReservationIncreased(_) => Self::TYPES[10],
            Event::BackorderLimitSet(_) => Self::TYPES[11],
            Event::ReceiptExpected(_) => Self::TYPES[12],
            Event::ReceiptReceived(_) => Self::TYPES[13],
            Event::ReceiptCancelled(_) => Self::TYPES[14],
            Event::BackorderFilled(_) => Self::TYPES[15],
            Event::FairSellingSet(_) => Self::TYPES[16],
            Event::WaitlistJoined(_) => Self::TYPES[17],
            Event::WaitlistLeft(_) => Self::TYPES[18],
        }
    }

    /// When the decision that produced this event was taken.
    pub fn at(&self) -> Timestamp {
        match self {
            Event::SkuRegistered(e) => e.at,
            Event::StockAdjusted(e) => e.at,
            Event::StockReserved(e) => e.at,
            Event::ReservationCommitted(e) => e.at,
            Event::ReservationReleased(e) => e.at,
            Event::ReservationExpired(e) => e.at,
            Event::TransferShipped(e) => e.at,
            Event::TransferReceived(e) => e.at,
            Event::ReservationExtended(e) => e.at,
            Event::ReservationReduced(e) => e.at,
            Event::ReservationIncreased(e) => e.at,
            Event::BackorderLimitSet(e) => e.at,
            Event::ReceiptExpected(e) => e.at,
            Event::ReceiptReceived(e) => e.at,
            Event::ReceiptCancelled(e) => e.at,
            Event::BackorderFilled(e) => e.at,
            Event::FairSellingSet(e) => e.at,
            Event::WaitlistJoined(e) => e.at,
            Event::WaitlistLeft(e) => e.at,
        }
    }

    /// The reservation this event creates, changes or resolves, if any.
    pub fn reservation_id(&self) -> Option<ReservationId> {
        match self {
            Event::StockReserved(e) => Some(e.reservation_id),
            Event::ReservationCommitted(e) => Some(e.reservation_id),
            Event::ReservationReleased(e) => Some(e.reservation_id),
            Event::ReservationExpired(e) => Some(e.reservation_id),
            Event::ReservationExtended(e) => Some(e.reservation_id),
            Event::ReservationReduced(e) => Some(e.reservation_id),
            Event::ReservationIncreased(e) => Some(e.reservation_id),
            Event::SkuRegistered(_)
            | Event::StockAdjusted(_)
            | Event::TransferShipped(_)
            | Event::TransferReceived(_)
            | Event::BackorderLimitSet(_)
            | Event::ReceiptExpected(_)
            | Event::ReceiptReceived(_)
            | Event::ReceiptCancelled(_)
            | Event::FairSellingSet(_)
            | Event::WaitlistJoined(_)
            | Event::WaitlistLeft(_) => None,
            // It names a hold but changes nothing of it: the pipelined state must not take
            // it for a change of the hold (see `SkuState::stage`).
            Event::BackorderFilled(_) => None,
        }
    }
}

/// The SKU exists from here on, with this pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuRegistered {
    pub sku: Sku,
    pub pool: PoolConfig,
    pub at: Timestamp,
}

/// The pool's limit changed from `previous` to `current`. When the new limit is below what
/// is already promised, the SKU is short and `at_risk` lists the reservations that can no
/// longer all be honoured (newest first in line to lose).
///
/// At a SKU with several locations, the figures are those of `location`, and so is the
/// shortfall; absent, the adjustment is of the SKU's one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjusted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationId>,
    pub change: StockChange,
    pub previous: Quantity,
    pub current: Quantity,
    pub reason: String,
    pub reference: Option<String>,
    pub at_risk: Vec<ReservationId>,
    pub at: Timestamp,
}

/// `qty` is held for the reservation until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReserved {
    pub reservation_id: ReservationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    /// Every SKU of the reservation, when it has more than one line (empty otherwise).
    /// Written with each line at no extra cost, it lets recovery tell a reservation whose
    /// process died between its lines' appends from a whole one, and release it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<Sku>,
    pub qty: Quantity,
    /// Where the units are held, summing to `qty`, when the SKU is at several locations
    /// (the writer's allocation, recorded so nothing is decided again on replay). Empty
    /// at a SKU with one location: everything is there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    pub channel: Channel,
    pub at: Timestamp,
    pub expires_at: Timestamp,
    /// The buyer, when the channel named one: purchase limits count by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
    /// The waitlist place (its number) this hold serves: the place ends with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waitlist: Option<u64>,
}

/// The reservation became a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationCommitted {
    pub reservation_id: ReservationId,
    pub qty: Quantity,
    pub at: Timestamp,
}

/// The reservation was given back by its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationReleased {
    pub reservation_id: ReservationId,
    pub qty: Quantity,
    pub at: Timestamp,
}

/// The reservation lapsed at `expires_at`; the event was written at `at` (at or after it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationExpired {
    pub reservation_id: ReservationId,
    pub qty: Quantity,
    pub expires_at: Timestamp,
    pub at: Timestamp,
}

/// The live reservation now expires at `expires_at` instead of `previous_expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationExtended {
    pub reservation_id: ReservationId,
    pub previous_expires_at: Timestamp,
    pub expires_at: Timestamp,
    pub at: Timestamp,
}

/// `qty` of the reservation's units ended, sold (`outcome: committed`) or given back
/// (`released`); `remaining` (at least 1) stay held until its expiry. A reduction to
/// nothing is written as the whole hold's commit or release instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationReduced {
    pub reservation_id: ReservationId,
    pub qty: Quantity,
    pub remaining: Quantity,
    pub outcome: Resolution,
    /// Where the ended units were, at a SKU with several locations (the writer's choice:
    /// the hold's last parts first); empty at one location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    pub at: Timestamp,
}

/// The reservation grew by `qty` units to `total` (an amendment), placed at `parts` at a
/// SKU with several locations. Its expiry and its place in line are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationIncreased {
    pub reservation_id: ReservationId,
    pub qty: Quantity,
    pub total: Quantity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    pub at: Timestamp,
}

/// `qty` units left `from` for `to`: in transit until [`TransferReceived`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferShipped {
    pub transfer_id: TransferId,
    pub from: LocationId,
    pub to: LocationId,
    pub qty: Quantity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub at: Timestamp,
}

/// The transfer's units arrived at `to` and can be sold there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReceived {
    pub transfer_id: TransferId,
    pub to: LocationId,
    pub qty: Quantity,
    pub at: Timestamp,
}

/// The SKU may now hold `limit` units beyond what is on hand (less safety stock), as
/// backorders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackorderLimitSet {
    /// The location it applies to; absent at a SKU with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationId>,
    pub limit: Quantity,
    pub previous: Quantity,
    pub at: Timestamp,
}

/// `qty` units are expected at `location` by `eta` under `reference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptExpected {
    pub reference: ReceiptRef,
    pub location: LocationId,
    pub qty: Quantity,
    pub eta: Timestamp,
    pub at: Timestamp,
}

/// `qty` units of receipt `reference` arrived at `location` and are on hand; `remaining`
/// are still expected (0 closes the receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptReceived {
    pub reference: ReceiptRef,
    pub location: LocationId,
    pub qty: Quantity,
    pub remaining: Quantity,
    pub at: Timestamp,
}

/// The `qty` units still expected under `reference` will not come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptCancelled {
    pub reference: ReceiptRef,
    pub qty: Quantity,
    pub at: Timestamp,
}

/// `qty` backordered units of a live hold are now covered by stock on hand (first in,
/// first out); `backordered` are still waiting. Written after the event that freed or
/// brought the stock, in the same decision; it changes no figure (what is backordered
/// follows from the holds' order and the stock), it tells readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackorderFilled {
    pub reservation_id: ReservationId,
    pub qty: Quantity,
    pub backordered: Quantity,
    pub at: Timestamp,
}

/// The SKU's fair-selling rules from here on: at most `per_customer` units (held and sold)
/// per customer over the last `window_ms`, none when absent; waitlist holds last
/// `waitlist_hold_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FairSellingSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_customer: Option<Quantity>,
    pub window_ms: u64,
    pub waitlist_hold_ms: u64,
    pub at: Timestamp,
}

/// `customer` joined the SKU's waitlist for `qty` units, as place `number` (numbers only
/// grow, so they give the order of the line); a hold is told to `channel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistJoined {
    pub customer: CustomerId,
    pub qty: Quantity,
    pub channel: Channel,
    pub number: u64,
    /// The id the place's hold will have.
    pub hold_id: ReservationId,
    pub at: Timestamp,
}

/// Place `number` left the waitlist without a hold: its customer left, or the purchase
/// limit no longer allowed what it waited for when its turn came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistLeft {
    pub customer: CustomerId,
    pub number: u64,
    pub reason: LeftReason,
    pub at: Timestamp,
}

/// Why a waitlist place ended without a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    Left,
    PurchaseLimit,
}

impl LeftReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeftReason::Left => "left",
            LeftReason::PurchaseLimit => "purchase_limit",
        }
    }
}

/// Who, why and through what an event was written. Stored beside the payload, not in it.
/// Absent optional fields are left out of the encoding (a hot SKU writes this for every
/// reservation, and every byte is fsynced); they decode as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Unique per event; derived from the idempotency key where there is one, so that a
    /// retried append is recognised by the store.
    pub event_id: Uuid,
    /// The business transaction, usually the order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The message that caused this event (a request id, or the event that triggered it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    pub recorded_at: Timestamp,
    pub schema_version: u16,
}

impl EventMetadata {
    /// Metadata with only the required fields set.
    pub fn new(event_id: Uuid, recorded_at: Timestamp) -> Self {
        Self {
            event_id,
            correlation_id: None,
            causation_id: None,
            idempotency_key: None,
            channel: None,
            principal: None,
            recorded_at,
            schema_version: SCHEMA_VERSION,
        }
    }
}
