//! Commands: what a caller asks of one SKU. They carry no SKU (the engine routes by it),
//! except registration, which names the SKU it creates.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::allocation::Placement;
use crate::ids::{
    Channel, CustomerId, LocationId, OrderId, ReceiptRef, ReservationId, Sku, TransferId,
};
use crate::pool::PoolConfig;
use crate::quantity::Quantity;
use crate::time::Timestamp;

/// Longest hold a reservation may ask for. A cart held for weeks is a forgotten cart that
/// blocks stock from every other buyer; anything longer is refused as an invalid TTL.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest window a purchase limit may count over: a year.
pub const MAX_LIMIT_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);
/// Shortest and longest hold a waitlist place turns into: long enough to be noticed and
/// checked out, short enough that an absent waiter does not keep stock from the next.
pub const MIN_WAITLIST_HOLD: Duration = Duration::from_secs(1);
pub const MAX_WAITLIST_HOLD: Duration = Duration::from_secs(24 * 3600);
/// A waitlist hold's time to live until one is configured.
pub const DEFAULT_WAITLIST_HOLD: Duration = Duration::from_secs(120);

/// Longest reason text kept on an adjustment.
pub const MAX_REASON_CHARS: usize = 512;
/// Longest external reference (count sheet, purchase order) kept on an adjustment.
pub const MAX_REFERENCE_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    RegisterSku(RegisterSku),
    Reserve(Reserve),
    Commit(Commit),
    Release(Release),
    Extend(Extend),
    Reduce(Reduce),
    Amend(Amend),
    Adjust(Adjust),
    ShipTransfer(ShipTransfer),
    ReceiveTransfer(ReceiveTransfer),
    SetBackorderLimit(SetBackorderLimit),
    ExpectReceipt(ExpectReceipt),
    ReceiveReceipt(ReceiveReceipt),
    CancelReceipt(CancelReceipt),
    SetFairSelling(SetFairSelling),
    JoinWaitlist(JoinWaitlist),
    LeaveWaitlist(LeaveWaitlist),
    /// Internal: written by the engine's expiry timer, never by callers.
    Expire(Expire),
    /// Internal: the engine gives freed stock to the first waiter, never a caller.
    ServeWaitlist,
}

impl Command {
    /// The command's name in rejections, notices and audit output.
    pub fn name(&self) -> &'static str {
        match self {
            Command::RegisterSku(_) => "register_sku",
            Command::Reserve(_) => "reserve",
            Command::Commit(_) => "commit",
            Command::Release(_) => "release",
            Command::Extend(_) => "extend",
            Command::Reduce(c) if c.sell => "commit_part",
            Command::Reduce(_) => "release_part",
            Command::Amend(_) => "amend",
            Command::Adjust(_) => "adjust",
            Command::ShipTransfer(_) => "ship_transfer",
            Command::ReceiveTransfer(_) => "receive_transfer",
            Command::SetBackorderLimit(_) => "set_backorder_limit",
            Command::ExpectReceipt(_) => "expect_receipt",
            Command::ReceiveReceipt(_) => "receive_receipt",
            Command::CancelReceipt(_) => "cancel_receipt",
            Command::SetFairSelling(_) => "set_fair_selling",
            Command::JoinWaitlist(_) => "join_waitlist",
            Command::LeaveWaitlist(_) => "leave_waitlist",
            Command::Expire(_) => "expire",
            Command::ServeWaitlist => "serve_waitlist",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterSku {
    pub sku: Sku,
    pub pool: PoolConfig,
}

/// Hold `qty` for `ttl`; the hold lapses by itself unless committed or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    pub reservation_id: ReservationId,
    pub order_id: Option<OrderId>,
    /// Every SKU of the reservation when it has more than one line; recorded on the event.
    pub lines: Vec<Sku>,
    pub qty: Quantity,
    pub ttl: Duration,
    pub channel: Channel,
    /// Where the units may come from (matters only for a SKU at several locations).
    pub placement: Placement,
    /// The buyer, as the channel knows them: required at a SKU with a purchase limit.
    pub customer: Option<CustomerId>,
}

/// Turn a live reservation into a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub reservation_id: ReservationId,
}

/// Give a live reservation back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub reservation_id: ReservationId,
}

/// Keep a live reservation longer: it expires `ttl` from now instead. Never beyond
/// [`MAX_TTL`] from when it was made, and never earlier than it would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extend {
    pub reservation_id: ReservationId,
    pub ttl: Duration,
}

/// End `qty` of a live reservation's units, sold (`sell`) or given back; the rest stay held
/// until its expiry. `qty` equal to the hold ends it, as a commit or release would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduce {
    pub reservation_id: ReservationId,
    pub qty: Quantity,
    pub sell: bool,
}

/// Change a live reservation's hold to `qty` units: more are placed by `placement` and
/// checked like a new hold, fewer are given back, 0 releases it. Expiry is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amend {
    pub reservation_id: ReservationId,
    pub qty: Quantity,
    pub placement: Placement,
}

/// Lapse a reservation whose expiry has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expire {
    pub reservation_id: ReservationId,
}

/// Correct the pool's limit: on hand (physical), license limit (digital) or capacity per
/// period (print on demand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjust {
    pub change: StockChange,
    pub reason: String,
    pub reference: Option<String>,
    /// The location counted or corrected. Required when the SKU is at several locations;
    /// otherwise its one location.
    pub location: Option<LocationId>,
}

/// Send `qty` units from one location to another: they leave `from` now and are in
/// transit (neither sellable nor lost) until received at `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipTransfer {
    pub transfer_id: TransferId,
    pub from: LocationId,
    pub to: LocationId,
    pub qty: Quantity,
    pub reference: Option<String>,
}

/// The units of an in-transit transfer arrived at its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveTransfer {
    pub transfer_id: TransferId,
}

/// A relative correction (goods received, damaged) or an absolute count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockChange {
    Delta(i64),
    Count(Quantity),
}

/// How many units a SKU may hold beyond what is on hand (less safety stock), as
/// backorders: lines beyond stock are held as backordered and filled first-in first-out
/// as stock arrives. 0 takes no backorders (holds already backordered stay so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetBackorderLimit {
    pub limit: Quantity,
    /// The location it applies to: required at a SKU stocked at several.
    pub location: Option<LocationId>,
}

/// Stock on its way: `qty` units expected at `eta` under `reference` (a purchase order),
/// at `location` (required when the SKU is at several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectReceipt {
    pub reference: ReceiptRef,
    pub qty: Quantity,
    pub eta: Timestamp,
    pub location: Option<LocationId>,
}

/// Units of an expected receipt arrived: `qty` of them, or all that are outstanding when
/// `None`. More than expected is accepted (an over-delivery is a fact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveReceipt {
    pub reference: ReceiptRef,
    pub qty: Option<Quantity>,
}

/// What is outstanding of a receipt will not come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelReceipt {
    pub reference: ReceiptRef,
}

/// A SKU's fair-selling rules: how many units one customer may buy over a window (held
/// and sold, across every order), and how long a waitlist place's hold lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetFairSelling {
    /// Units per customer over `window`; `None` lifts the limit.
    pub per_customer: Option<Quantity>,
    pub window: Duration,
    pub waitlist_hold: Duration,
}

/// Queue `customer` for `qty` units of the SKU: freed stock goes to the queue first in,
/// first out, as a hold of the waitlist's TTL, told to `channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinWaitlist {
    pub customer: CustomerId,
    pub qty: Quantity,
    pub channel: Channel,
    /// The id the place's hold will have: the engine's, unguessable like any reservation
    /// id, and told to the customer now so they can watch for it.
    pub hold_id: ReservationId,
}

/// Take `customer` off the SKU's waitlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveWaitlist {
    pub customer: CustomerId,
}
