//! What the projections produce: stock rows, reservation rows and notices, and the pure
//! rules that derive them from the domain's view of a SKU.

use serde::{Deserialize, Serialize};
use stockade_domain::{
    Availability, Event, EventMetadata, LocationView, PoolKind, Sku, StockView, Timestamp,
};
use stockade_store::Position;
use uuid::Uuid;

/// At or below this many units available, a SKU is `low_stock` unless configured otherwise.
pub const DEFAULT_LOW_STOCK_THRESHOLD: u64 = 3;

/// How a storefront should show a SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    InStock,
    LowStock,
    OutOfStock,
    /// More is promised than exists (a count came in under what was reserved).
    Short,
    /// What is left to sell is backorders: it ships when stock arrives.
    Backorder,
    /// Nothing on hand, stock expected: what sells now ships when it arrives.
    Preorder,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InStock => "in_stock",
            Status::LowStock => "low_stock",
            Status::OutOfStock => "out_of_stock",
            Status::Short => "short",
            Status::Backorder => "backorder",
            Status::Preorder => "preorder",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::InStock,
            Status::LowStock,
            Status::OutOfStock,
            Status::Short,
            Status::Backorder,
            Status::Preorder,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }

    /// Whether a buyer can get at least one unit.
    pub fn can_sell(self) -> bool {
        matches!(
            self,
            Status::InStock | Status::LowStock | Status::Backorder | Status::Preorder
        )
    }
}

/// The quantities a reader sees. `None` means unlimited (digital goods without a cap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// On hand (physical), licence limit (digital) or capacity per period (print on demand).
    pub on_hand: Option<u64>,
    pub reserved: u64,
    pub available: Option<u64>,
    /// Units that may be held beyond on hand (`available` includes what is left of them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backorder_limit: u64,
    /// Units held beyond on hand, waiting for stock.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backordered: u64,
    /// Units expected from suppliers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub incoming: u64,
    /// Units one customer may hold and buy over the limit's window, when limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_customer: Option<u64>,
    /// Customers waiting for freed stock (first in, first served).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waitlist: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Level {
    pub fn of(view: &StockView) -> Self {
        Self {
            on_hand: view.limit.map(|q| q.get()),
            reserved: view.reserved.get(),
            available: match view.available {
                Availability::Unlimited => None,
                Availability::Limited(q) => Some(q.get()),
            },
            backorder_limit: view.backorder_limit.get(),
            backordered: view.backordered.get(),
            incoming: view.incoming.get(),
            per_customer: view.purchase_limit.map(|l| l.per_customer.get()),
            waitlist: view.waitlist,
        }
    }

    /// Whether all that is left to sell is backorders.
    fn only_backorders(&self) -> bool {
        let room = self.backorder_limit.saturating_sub(self.backordered);
        self.backorder_limit > 0 && self.available.is_some_and(|a| a <= room)
    }
}

/// The status of a SKU at `level`, given whether it is short and its low-stock threshold.
pub fn status_of(level: &Level, short: bool, threshold: u64) -> Status {
    if short {
        return Status::Short;
    }
    match level.available {
        None => Status::InStock,
        Some(0) => Status::OutOfStock,
        Some(_) if level.only_backorders() => {
            if level.on_hand == Some(0) && level.incoming > 0 {
                Status::Preorder
            } else {
                Status::Backorder
            }
        }
        Some(a) if a <= threshold => Status::LowStock,
        Some(_) => Status::InStock,
    }
}

/// Whether a view promises more than exists.
pub fn is_short(view: &StockView) -> bool {
    view.shortfall.get() != 0
}

/// What a SKU at several locations has at one of them: a [`Level`] whose `on_hand` and
/// `available` are always set, plus what only a location has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationLevel {
    pub location: String,
    pub priority: u32,
    pub on_hand: u64,
    pub safety_stock: u64,
    pub reserved: u64,
    pub available: u64,
    /// Units promised here beyond what is here (the location is `short` when positive).
    pub shortfall: u64,
    /// Units in transit to here.
    pub incoming: u64,
    /// Units that may be held here beyond on hand, as backorders.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backorder_limit: u64,
    /// Units held here beyond on hand, waiting for stock.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backordered: u64,
}

impl LocationLevel {
    pub fn of(view: &LocationView) -> Self {
        Self {
            location: view.location.to_string(),
            priority: view.priority,
            on_hand: view.on_hand.get(),
            safety_stock: view.safety_stock.get(),
            reserved: view.reserved.get(),
            available: view.available.get(),
            shortfall: view.shortfall.get(),
            incoming: view.incoming.get(),
            backorder_limit: view.backorder_limit.get(),
            backordered: view.backordered.get(),
        }
    }

    /// The figures a status is judged on.
    pub fn level(&self) -> Level {
        Level {
            on_hand: Some(self.on_hand),
            reserved: self.reserved,
            available: Some(self.available),
            backorder_limit: self.backorder_limit,
            backordered: self.backordered,
            // Receipts are the SKU's figure: a location reads `backorder`, not `preorder`.
            incoming: 0,
            // So are the limit and the waitlist.
            per_customer: None,
            waitlist: 0,
        }
    }

    /// This location's status under the SKU's low-stock threshold: a storefront's "in
    /// stock at Berlin".
    pub fn status(&self, threshold: u64) -> Status {
        status_of(&self.level(), self.shortfall != 0, threshold)
    }
}

/// The locations `after` shows whose figures differ from `before`'s (every location, when
/// there is no `before`), each with its figures before. A SKU at the one default location
/// has none: its totals say it all.
pub fn moved_locations(
    before: Option<&StockView>,
    after: &StockView,
) -> Vec<(Option<LocationLevel>, LocationLevel)> {
    after
        .locations
        .iter()
        .enumerate()
        .filter_map(|(i, now)| {
            // Locations are fixed at registration, so index i is the same location in
            // both views; the id is compared anyway rather than trusted.
            let was = before
                .and_then(|b| b.locations.get(i))
                .filter(|was| was.location == now.location)
                .map(LocationLevel::of);
            let now = LocationLevel::of(now);
            (was.as_ref() != Some(&now)).then_some((was, now))
        })
        .collect()
}

/// One location's move in a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationMove {
    pub location: String,
    pub previous: Level,
    pub current: Level,
    pub previous_status: Status,
    pub status: Status,
    /// Units in transit to here, after the change.
    #[serde(default)]
    pub incoming: u64,
}

/// One row of the per-location read model: a SKU at one of its locations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationRow {
    pub sku: Sku,
    #[serde(flatten)]
    pub level: LocationLevel,
    pub status: Status,
    /// The SKU's version this row reflects.
    pub version: u64,
    pub updated_at: Timestamp,
}

/// One row of the stock-levels read model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRow {
    pub sku: Sku,
    pub pool: PoolKind,
    #[serde(flatten)]
    pub level: Level,
    pub status: Status,
    /// Events in the SKU's stream that this row reflects.
    pub version: u64,
    pub updated_at: Timestamp,
}

/// Where a reservation stands, as the read model records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    Held,
    Committed,
    Released,
    Expired,
}

impl ReservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Held => "held",
            ReservationState::Committed => "committed",
            ReservationState::Released => "released",
            ReservationState::Expired => "expired",
        }
    }
}

/// What caused a change: the command, and who sent it through which channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// `register`, `adjust`, `reserve`, `commit`, `release`, `expire`, `ship_transfer` or
    /// `receive_transfer`.
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// An adjustment's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A kit's notice: the part whose change moved the kit (the rest of the cause is that
    /// change's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// A filled backorder's reservation (its `order_id` is then that hold's order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<String>,
}

impl Cause {
    pub fn of(event: &Event, meta: &EventMetadata) -> Self {
        let command = match event {
            Event::SkuRegistered(_) => "register",
            Event::StockAdjusted(_) => "adjust",
            // A waitlist place served: the notice its customer's channel waits for.
            Event::StockReserved(e) if e.waitlist.is_some() => "waitlist_hold",
            Event::StockReserved(_) => "reserve",
            Event::ReservationCommitted(_) => "commit",
            Event::ReservationReleased(_) => "release",
            Event::ReservationExpired(_) => "expire",
            Event::TransferShipped(_) => "ship_transfer",
            Event::TransferReceived(_) => "receive_transfer",
            Event::ReservationExtended(_) => "extend",
            Event::ReservationReduced(e) if e.outcome == stockade_domain::Resolution::Committed => {
                "commit_part"
            }
            Event::ReservationReduced(_) => "release_part",
            Event::ReservationIncreased(_) => "amend",
            Event::BackorderLimitSet(_) => "set_backorder_limit",
            Event::ReceiptExpected(_) => "expect_receipt",
            Event::ReceiptReceived(_) => "receive_receipt",
            Event::ReceiptCancelled(_) => "cancel_receipt",
            Event::BackorderFilled(_) => "fill_backorder",
            Event::FairSellingSet(_) => "set_fair_selling",
            Event::WaitlistJoined(_) => "join_waitlist",
            Event::WaitlistLeft(e) if e.reason == stockade_domain::LeftReason::Left => {
                "leave_waitlist"
            }
            Event::WaitlistLeft(_) => "waitlist_dropped",
        };
        // A filled backorder is written under its cause's metadata (the release or the
        // arrival that filled it): its order and channel are the filled hold's, which
        // the projector adds from its record, not the metadata's.
        let fill = match event {
            Event::BackorderFilled(e) => Some(e.reservation_id.to_string()),
            _ => None,
        };
        // A waitlist hold names its reservation, so the customer who joined (and was
        // told the id) recognises it; customer ids are never broadcast.
        let served = match event {
            Event::StockReserved(e) if e.waitlist.is_some() => Some(e.reservation_id.to_string()),
            _ => None,
        };
        let order_id = match event {
            Event::StockReserved(e) => e.order_id.as_ref().map(|o| o.to_string()),
            _ => None,
        }
        .or_else(|| meta.correlation_id.clone())
        .filter(|_| fill.is_none());
        let channel = match event {
            Event::StockReserved(e) => Some(e.channel.to_string()),
            Event::WaitlistJoined(e) => Some(e.channel.to_string()),
            _ => meta.channel.as_ref().map(|c| c.to_string()),
        }
        .filter(|_| fill.is_none());
        let reason = match event {
            Event::StockAdjusted(e) => Some(e.reason.clone()),
            _ => None,
        };
        Self {
            command: command.to_owned(),
            channel,
            order_id,
            principal: meta.principal.as_ref().map(|p| p.to_string()),
            reason,
            via: None,
            reservation_id: fill.or(served),
        }
    }
}

/// One change of one SKU, told to everything that shows or uses its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Increases by one per notice, across all SKUs; never reused.
    pub seq: u64,
    pub sku: Sku,
    /// The SKU's stream version after the change.
    pub version: u64,
    pub previous: Level,
    pub current: Level,
    pub previous_status: Status,
    pub status: Status,
    pub cause: Cause,
    /// What a reader who cached any of these must read again.
    pub scopes: Vec<String>,
    /// When the event store committed the change.
    pub committed_at: Timestamp,
    /// The event behind the notice: consumers dedupe by it.
    pub event_id: Uuid,
    pub position: Position,
    /// The locations this change moved, for a SKU at several locations (a storefront
    /// filtering by location reads these); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<LocationMove>,
}

/// What a change of `sku` invalidates.
pub fn scopes(sku: &Sku) -> Vec<String> {
    vec![format!("inventory.{sku}"), format!("products.{sku}")]
}

#[cfg(test)]
mod tests {
    use stockade_domain::testing::{registered_physical, reserved, secs};
    use stockade_domain::{SkuState, evolve};

    use super::*;

    fn view_after(events: &[Event]) -> StockView {
        let mut state = SkuState::default();
        for e in events {
            state = evolve(state, e).unwrap();
        }
        state.stock().unwrap().view(secs(10))
    }

    #[test]
    fn status_follows_availability_and_the_threshold() {
        let far = secs(1_000);
        let status =
            |view: &StockView, threshold| status_of(&Level::of(view), is_short(view), threshold);
        let stocked = view_after(&[registered_physical(10, 0)]);
        assert_eq!(status(&stocked, 3), Status::InStock);
        let low = view_after(&[registered_physical(10, 0), reserved(1, 7, secs(1), far)]);
        assert_eq!(Level::of(&low).available, Some(3));
        assert_eq!(status(&low, 3), Status::LowStock);
        assert_eq!(status(&low, 2), Status::InStock);
        let gone = view_after(&[registered_physical(10, 0), reserved(1, 10, secs(1), far)]);
        assert_eq!(status(&gone, 3), Status::OutOfStock);
        let unlimited = Level {
            on_hand: None,
            reserved: 5,
            available: None,
            ..Level::default()
        };
        assert_eq!(status_of(&unlimited, false, 3), Status::InStock);
        assert_eq!(status_of(&unlimited, true, 3), Status::Short);
        assert!(!Status::OutOfStock.can_sell() && Status::LowStock.can_sell());
    }

    #[test]
    fn statuses_round_trip_as_text() {
        for s in [
            Status::InStock,
            Status::LowStock,
            Status::OutOfStock,
            Status::Short,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("sold"), None);
    }
}
