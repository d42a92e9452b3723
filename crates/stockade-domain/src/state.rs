//! A SKU's state, folded from its events, and the derived views every decision needs.
//!
//! Invariants kept by [`SkuState::apply`] (each event is validated before anything changes,
//! so a rejected event leaves the state untouched):
//! - `reserved` is the sum of the quantities of the live reservations;
//! - `expiry` indexes exactly the live reservations, by `(expires_at, id)`;
//! - a reservation id is live at most once, and resolving it removes it;
//! - print-on-demand period usage counts the reservations and sales made in that period.
//!
//! The state is live state only: it knows the holds that are live now, never the ones
//! that ended. So its size follows the live holds, not the SKU's history. Telling an
//! unknown id from one that was resolved long ago is a question for the log (the engine
//! asks the store's index); here both are "not live".
//!
//! Lazy expiry: a live reservation whose `expires_at <= now` is still in `live` until its
//! `ReservationExpired` event, but every view at `now` leaves it out. Those lapsed holds
//! are the earliest entries of `expiry`, so leaving them out costs only their number.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{Event, StockAdjusted, StockReserved};
use crate::ids::{OrderId, ReservationId, Sku};
use crate::pool::{PoolConfig, PoolKind};
use crate::quantity::Quantity;
use crate::rejection::{Inconsistency, Resolution};
use crate::time::Timestamp;

/// The state of one SKU stream: unregistered until its `SkuRegistered` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuState {
    stock: Option<Stock>,
}

/// Folds one event into `state`. Stops at the first event that contradicts the state.
pub fn evolve(mut state: SkuState, event: &Event) -> Result<SkuState, Inconsistency> {
    state.apply(event)?;
    Ok(state)
}

impl SkuState {
    /// Folds a whole stream.
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<SkuState, Inconsistency> {
        let mut state = SkuState::default();
        for event in events {
            state.apply(event)?;
        }
        Ok(state)
    }

    /// Checks a state restored from a snapshot; an error means "replay the stream instead".
    pub fn validate(&self) -> Result<(), Inconsistency> {
        match &self.stock {
            Some(stock) => stock.validate().map_err(Inconsistency::InvalidSnapshot),
            None => Ok(()),
        }
    }

    pub fn stock(&self) -> Option<&Stock> {
        self.stock.as_ref()
    }

    pub fn is_registered(&self) -> bool {
        self.stock.is_some()
    }

    /// Applies one event, or leaves the state unchanged and says why it cannot.
    pub fn apply(&mut self, event: &Event) -> Result<(), Inconsistency> {
        match (event, &mut self.stock) {
            (Event::SkuRegistered(e), None) => {
                self.stock = Some(Stock::new(e.sku.clone(), &e.pool, e.at));
                Ok(())
            }
            (Event::SkuRegistered(_), Some(_)) => Err(Inconsistency::RegisteredTwice),
            (other, None) => Err(Inconsistency::NotRegistered {
                event_type: other.event_type(),
            }),
            (other, Some(stock)) => stock.apply(other),
        }
    }
}

/// Stock of a registered SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    sku: Sku,
    pool: PoolState,
    /// The live holds, by id; the few that name an order have it in `orders`.
    live: HashMap<ReservationId, Hold>,
    orders: HashMap<ReservationId, OrderId>,
    expiry: BTreeSet<(Timestamp, ReservationId)>,
    reserved: Quantity,
    next_seq: u64,
    last_event_at: Timestamp,
}

/// A live hold as the state keeps it: what decisions and reads need and nothing else (its
/// id is the map's key; its channel, order and the rest are in the log). Hundreds of
/// thousands of these live in one SKU during a sale, so every byte counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Hold {
    qty: Quantity,
    reserved_at: Timestamp,
    expires_at: Timestamp,
    seq: u64,
}

impl Hold {
    fn with_id(self, id: ReservationId) -> Reservation {
        Reservation {
            id,
            qty: self.qty,
            reserved_at: self.reserved_at,
            expires_at: self.expires_at,
            seq: self.seq,
        }
    }
}

/// A live hold on stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub qty: Quantity,
    pub reserved_at: Timestamp,
    pub expires_at: Timestamp,
    /// Position in the line of reservations: when a SKU turns short, the latest lose first.
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum PoolState {
    Physical {
        on_hand: Quantity,
        safety_stock: Quantity,
    },
    Digital {
        license_limit: Option<Quantity>,
        sold: Quantity,
    },
    PrintOnDemand {
        capacity: Quantity,
        period_millis: u64,
        /// Usage by period index; periods before the latest event's period are pruned.
        periods: BTreeMap<u64, PeriodUsage>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PeriodUsage {
    reserved: Quantity,
    sold: Quantity,
}

/// What may still be reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "qty", rename_all = "snake_case")]
pub enum Availability {
    Unlimited,
    Limited(Quantity),
}

impl Availability {
    /// Whether `qty` more can be reserved.
    pub fn covers(self, qty: Quantity) -> bool {
        match self {
            Availability::Unlimited => true,
            Availability::Limited(a) => qty <= a,
        }
    }
}

/// A read of a SKU at one instant, with lapsed reservations already left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockView {
    pub sku: Sku,
    pub pool: PoolKind,
    /// On hand (physical), license limit (capped digital) or capacity per period (print on
    /// demand); `None` for unlimited digital.
    pub limit: Option<Quantity>,
    pub safety_stock: Quantity,
    /// Units held by live, unlapsed reservations.
    pub reserved: Quantity,
    /// Units sold that still count against the limit (capped digital, the current period).
    pub sold: Quantity,
    pub available: Availability,
    /// Units promised beyond what exists; non-zero means the SKU is short.
    pub shortfall: Quantity,
    pub live_reservations: usize,
}

/// Sums quantities known to be bounded by a `Quantity` total (the parts of `reserved`).
fn bounded_sum(parts: impl Iterator<Item = Quantity>) -> Quantity {
    let total: u128 = parts.map(|q| u128::from(q.get())).sum();
    Quantity::new(u64::try_from(total).unwrap_or(u64::MAX))
}

impl Stock {
    fn new(sku: Sku, pool: &PoolConfig, at: Timestamp) -> Stock {
        let pool = match *pool {
            PoolConfig::Physical {
                on_hand,
                safety_stock,
            } => PoolState::Physical {
                on_hand,
                safety_stock,
            },
            PoolConfig::Digital { license_limit } => PoolState::Digital {
                license_limit,
                sold: Quantity::ZERO,
            },
            PoolConfig::PrintOnDemand {
                capacity,
                period_millis,
            } => PoolState::PrintOnDemand {
                capacity,
                // decide refuses a zero period; a hand-written log with one gets one-ms periods.
                period_millis: period_millis.max(1),
                periods: BTreeMap::new(),
            },
        };
        Stock {
            sku,
            pool,
            live: HashMap::new(),
            orders: HashMap::new(),
            expiry: BTreeSet::new(),
            reserved: Quantity::ZERO,
            next_seq: 0,
            last_event_at: at,
        }
    }

    pub fn sku(&self) -> &Sku {
        &self.sku
    }

    pub fn pool_kind(&self) -> PoolKind {
        match self.pool {
            PoolState::Physical { .. } => PoolKind::Physical,
            PoolState::Digital { .. } => PoolKind::Digital,
            PoolState::PrintOnDemand { .. } => PoolKind::PrintOnDemand,
        }
    }

    /// The live reservation `id`, lapsed or not.
    pub fn reservation(&self, id: &ReservationId) -> Option<Reservation> {
        self.live.get(id).map(|h| h.with_id(*id))
    }

    /// The order live reservation `id` was made for, if it names one.
    pub fn order_of(&self, id: &ReservationId) -> Option<&OrderId> {
        self.orders.get(id)
    }

    /// Reservations not yet resolved (lapsed ones included until their expiry is written).
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    pub fn live_reservations(&self) -> impl Iterator<Item = Reservation> + '_ {
        self.live.iter().map(|(id, h)| h.with_id(*id))
    }

    /// The instant of the latest event. Decisions never happen before it (see `decide`).
    pub fn last_event_at(&self) -> Timestamp {
        self.last_event_at
    }

    /// Units held by all live reservations, lapsed ones included.
    pub fn reserved_total(&self) -> Quantity {
        self.reserved
    }

    /// The earliest expiry among live reservations: when the expiry timer should fire next.
    pub fn next_expiry(&self) -> Option<(Timestamp, ReservationId)> {
        self.expiry.first().copied()
    }

    /// Reservations lapsed at `now` whose `ReservationExpired` is not yet written.
    pub fn lapsed(&self, now: Timestamp) -> impl Iterator<Item = Reservation> + '_ {
        self.expiry
            .iter()
            .take_while(move |(expires_at, _)| *expires_at <= now)
            .filter_map(|(_, id)| self.reservation(id))
    }

    /// The limit adjustments change: on hand, license limit or capacity.
    /// `None` for an unlimited digital pool, which has nothing to adjust.
    pub fn limit(&self) -> Option<Quantity> {
        match self.pool {
            PoolState::Physical { on_hand, .. } => Some(on_hand),
            PoolState::Digital { license_limit, .. } => license_limit,
            PoolState::PrintOnDemand { capacity, .. } => Some(capacity),
        }
    }

    fn period_of(&self, at: Timestamp) -> Option<u64> {
        match self.pool {
            PoolState::PrintOnDemand { period_millis, .. } => {
                Some(at.as_millis() / period_millis.max(1))
            }
            _ => None,
        }
    }

    /// Whether reservation `r` counts against the capacity that matters at `now`: every
    /// live unlapsed one, except in print on demand, only those of `now`'s period.
    fn counts_at(&self, r: &Reservation, now: Timestamp) -> bool {
        r.expires_at > now
            && match self.period_of(now) {
                Some(period) => self.period_of(r.reserved_at) == Some(period),
                None => true,
            }
    }

    /// (units held by counting reservations, units sold that still count) at `now`.
    fn used(&self, now: Timestamp) -> (Quantity, Quantity) {
        let PoolState::PrintOnDemand { periods, .. } = &self.pool else {
            let held = self
                .reserved
                .saturating_sub(bounded_sum(self.lapsed(now).map(|r| r.qty)));
            let sold = match self.pool {
                PoolState::Digital { sold, .. } => sold,
                _ => Quantity::ZERO,
            };
            return (held, sold);
        };
        let period = self.period_of(now).unwrap_or(0);
        let usage = periods.get(&period).copied().unwrap_or_default();
        let lapsed_here = bounded_sum(
            self.lapsed(now)
                .filter(|r| self.period_of(r.reserved_at) == Some(period))
                .map(|r| r.qty),
        );
        (usage.reserved.saturating_sub(lapsed_here), usage.sold)
    }

    /// What may still be reserved at `now`.
    pub fn available(&self, now: Timestamp) -> Availability {
        self.available_given(self.used(now))
    }

    fn available_given(&self, (held, sold): (Quantity, Quantity)) -> Availability {
        match self.pool {
            PoolState::Physical {
                on_hand,
                safety_stock,
            } => Availability::Limited(on_hand.saturating_sub(safety_stock).saturating_sub(held)),
            PoolState::Digital {
                license_limit: None,
                ..
            } => Availability::Unlimited,
            PoolState::Digital {
                license_limit: Some(limit),
                ..
            }
            | PoolState::PrintOnDemand {
                capacity: limit, ..
            } => Availability::Limited(limit.saturating_sub(sold).saturating_sub(held)),
        }
    }

    /// Units promised beyond what exists at `now` (safety stock is a buffer, not a promise).
    pub fn shortfall(&self, now: Timestamp) -> Quantity {
        match self.limit() {
            None => Quantity::ZERO,
            Some(_) => self.shortfall_given(self.used(now)),
        }
    }

    fn shortfall_given(&self, (held, sold): (Quantity, Quantity)) -> Quantity {
        self.limit().map_or(Quantity::ZERO, |limit| {
            bounded_sum([held, sold].into_iter()).saturating_sub(limit)
        })
    }

    /// The reservations that cannot all be honoured at `now` if the limit were `limit`:
    /// walking the line oldest first, those that no longer fit. Empty when nothing is short.
    pub fn at_risk_with_limit(&self, now: Timestamp, limit: Quantity) -> Vec<ReservationId> {
        let (_, sold) = self.used(now);
        let budget = limit.saturating_sub(sold);
        let mut line: Vec<Reservation> = self
            .live_reservations()
            .filter(|r| self.counts_at(r, now))
            .collect();
        line.sort_by_key(|r| r.seq);
        let mut promised: u128 = 0;
        let mut at_risk = Vec::new();
        for r in line {
            promised += u128::from(r.qty.get());
            if promised > u128::from(budget.get()) {
                at_risk.push(r.id);
            }
        }
        at_risk
    }

    /// The reservations at risk at `now` with the current limit.
    pub fn at_risk(&self, now: Timestamp) -> Vec<ReservationId> {
        match self.limit() {
            Some(limit) if !self.shortfall(now).is_zero() => self.at_risk_with_limit(now, limit),
            _ => Vec::new(),
        }
    }

    pub fn view(&self, now: Timestamp) -> StockView {
        let used = self.used(now);
        let (held, sold) = used;
        StockView {
            sku: self.sku.clone(),
            pool: self.pool_kind(),
            limit: self.limit(),
            safety_stock: match self.pool {
                PoolState::Physical { safety_stock, .. } => safety_stock,
                _ => Quantity::ZERO,
            },
            reserved: held,
            sold,
            available: self.available_given(used),
            shortfall: self.shortfall_given(used),
            live_reservations: self.live.len(),
        }
    }

    /// Checks the invariants that `apply` keeps, for a state that did not come from `apply`
    /// (a decoded snapshot): a damaged snapshot must be refused, not trusted.
    fn validate(&self) -> Result<(), String> {
        if let PoolState::PrintOnDemand {
            period_millis: 0, ..
        } = self.pool
        {
            return Err("print-on-demand period of 0 ms".into());
        }
        let held: u128 = self.live.values().map(|r| u128::from(r.qty.get())).sum();
        if held != u128::from(self.reserved.get()) {
            return Err(format!(
                "reserved {} but live holds sum to {held}",
                self.reserved
            ));
        }
        if self.orders.keys().any(|id| !self.live.contains_key(id))
            || self.expiry.len() != self.live.len()
            || self
                .expiry
                .iter()
                .any(|(at, id)| self.live.get(id).is_none_or(|r| r.expires_at != *at))
        {
            return Err("expiry index does not match the live reservations".into());
        }
        if let PoolState::PrintOnDemand { periods, .. } = &self.pool {
            for (period, usage) in periods {
                let held: u128 = self
                    .live
                    .values()
                    .filter(|r| self.period_of(r.reserved_at) == Some(*period))
                    .map(|r| u128::from(r.qty.get()))
                    .sum();
                if held != u128::from(usage.reserved.get()) {
                    return Err(format!("period {period} usage does not match its holds"));
                }
            }
        }
        Ok(())
    }

    /// Validates `event` against this state, then applies it.
    fn apply(&mut self, event: &Event) -> Result<(), Inconsistency> {
        match event {
            Event::SkuRegistered(_) => return Err(Inconsistency::RegisteredTwice),
            Event::StockReserved(e) => self.apply_reserved(e)?,
            Event::ReservationCommitted(e) => self.apply_resolution(
                event.event_type(),
                e.reservation_id,
                e.qty,
                Resolution::Committed,
            )?,
            Event::ReservationReleased(e) => self.apply_resolution(
                event.event_type(),
                e.reservation_id,
                e.qty,
                Resolution::Released,
            )?,
            Event::ReservationExpired(e) => self.apply_resolution(
                event.event_type(),
                e.reservation_id,
                e.qty,
                Resolution::Expired,
            )?,
            Event::StockAdjusted(e) => self.apply_adjusted(e)?,
        }
        self.advance_clock(event.at());
        Ok(())
    }

    fn apply_reserved(&mut self, e: &StockReserved) -> Result<(), Inconsistency> {
        if self.live.contains_key(&e.reservation_id) {
            return Err(Inconsistency::DuplicateReservation(e.reservation_id));
        }
        let reserved = self.reserved.checked_add(e.qty)?;
        let period = self.period_of(e.at);
        if let (PoolState::PrintOnDemand { periods, .. }, Some(p)) = (&mut self.pool, period) {
            let usage = periods.get(&p).copied().unwrap_or_default();
            let usage = PeriodUsage {
                reserved: usage.reserved.checked_add(e.qty)?,
                ..usage
            };
            periods.insert(p, usage);
        }
        self.reserved = reserved;
        self.expiry.insert((e.expires_at, e.reservation_id));
        self.live.insert(
            e.reservation_id,
            Hold {
                qty: e.qty,
                reserved_at: e.at,
                expires_at: e.expires_at,
                seq: self.next_seq,
            },
        );
        if let Some(order) = &e.order_id {
            self.orders.insert(e.reservation_id, order.clone());
        }
        self.next_seq = self.next_seq.saturating_add(1);
        Ok(())
    }

    fn apply_resolution(
        &mut self,
        event_type: &'static str,
        id: ReservationId,
        qty: Quantity,
        resolution: Resolution,
    ) -> Result<(), Inconsistency> {
        let Some(r) = self.live.get(&id) else {
            return Err(Inconsistency::NotLive {
                event_type,
                reservation_id: id,
            });
        };
        if r.qty != qty {
            return Err(Inconsistency::QuantityMismatch {
                event_type,
                reservation_id: id,
                recorded: qty,
                held: r.qty,
            });
        }
        let (expires_at, reserved_at) = (r.expires_at, r.reserved_at);
        let reserved = self.reserved.checked_sub(qty)?;
        let period = self.period_of(reserved_at);
        // Compute the pool's new values first; assign only once nothing can fail.
        let committed = resolution == Resolution::Committed;
        match &mut self.pool {
            PoolState::Physical { on_hand, .. } => {
                if committed {
                    *on_hand = on_hand.checked_sub(qty)?;
                }
            }
            // Unlimited pools count no sales: nothing is bounded by them.
            PoolState::Digital {
                license_limit: Some(_),
                sold,
            } => {
                if committed {
                    *sold = sold.checked_add(qty)?;
                }
            }
            PoolState::Digital {
                license_limit: None,
                ..
            } => {}
            PoolState::PrintOnDemand { periods, .. } => {
                // The period may have been pruned: then it no longer limits anything.
                if let Some(usage) = period.and_then(|p| periods.get_mut(&p)) {
                    let new_reserved = usage.reserved.checked_sub(qty)?;
                    let new_sold = if committed {
                        usage.sold.checked_add(qty)?
                    } else {
                        usage.sold
                    };
                    *usage = PeriodUsage {
                        reserved: new_reserved,
                        sold: new_sold,
                    };
                }
            }
        }
        self.reserved = reserved;
        self.live.remove(&id);
        self.orders.remove(&id);
        self.expiry.remove(&(expires_at, id));
        Ok(())
    }

    fn apply_adjusted(&mut self, e: &StockAdjusted) -> Result<(), Inconsistency> {
        let kind = self.pool_kind();
        let limit = match &mut self.pool {
            PoolState::Physical { on_hand, .. } => on_hand,
            PoolState::Digital {
                license_limit: Some(limit),
                ..
            } => limit,
            PoolState::PrintOnDemand { capacity, .. } => capacity,
            PoolState::Digital {
                license_limit: None,
                ..
            } => return Err(Inconsistency::AdjustmentNotApplicable(kind)),
        };
        if *limit != e.previous {
            return Err(Inconsistency::PreviousMismatch {
                recorded: e.previous,
                actual: *limit,
            });
        }
        *limit = e.current;
        Ok(())
    }

    /// Moves the state's notion of "latest" forward and prunes what can no longer matter.
    fn advance_clock(&mut self, at: Timestamp) {
        self.last_event_at = self.last_event_at.max(at);
        let current = self.period_of(self.last_event_at);
        if let (PoolState::PrintOnDemand { periods, .. }, Some(current)) = (&mut self.pool, current)
        {
            *periods = periods.split_off(&current);
        }
    }
}
