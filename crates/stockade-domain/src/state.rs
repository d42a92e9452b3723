//! A SKU's state, folded from its events, and the derived views every decision needs.
//!
//! Invariants kept by [`SkuState::apply`] (each event is validated before anything changes,
//! so a rejected event leaves the state untouched):
//! - `reserved` is the sum of the quantities of the live reservations;
//! - `expiry` indexes exactly the live reservations, by `(expires_at, id)`;
//! - a reservation id is live at most once, and resolving it removes it;
//! - print-on-demand period usage counts the reservations and sales made in that period;
//! - a physical SKU has at least one location; its `on_hand` and `safety_stock` are the
//!   sums of its locations', each location's `reserved` is the sum of the live holds'
//!   parts there, and its `incoming` the sum of the transfers in transit to it;
//! - a hold is at one location (`Hold::site`) or split, and then its parts are in
//!   `Holds::splits`, summing to its quantity.
//!
//! The state is live state only: it knows the holds that are live now, never the ones
//! that ended. So its size follows the live holds, not the SKU's history. Telling an
//! unknown id from one that was resolved long ago is a question for the log (the engine
//! asks the store's index); here both are "not live".
//!
//! Two sides, one copy. The SKU actor decides against events it has not yet seen
//! acknowledged. Those are *staged* ([`SkuState::stage`]): they go to a small layer over
//! the applied state (the holds they add, the ids they resolve, the figures after them),
//! never to a second copy of every hold. [`SkuState::stock`] reads the applied (durable)
//! side, [`SkuState::speculative`] the applied side seen through the layer, and
//! [`decide`](crate::decide()) decides against the latter. [`SkuState::land`] moves the
//! oldest staged event into the applied side. Layer invariants: the holds it adds are not
//! applied holds, the ids it removes are applied holds, and once every staged event has
//! landed the layer is empty and its figures equal the applied ones.
//!
//! Lazy expiry: a live reservation whose `expires_at <= now` is still in `live` until its
//! `ReservationExpired` event, but every view at `now` leaves it out. Those lapsed holds
//! are the earliest entries of `expiry`, so leaving them out costs only their number.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::iter::Peekable;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::allocation::{LocationStock, Part};
use crate::command::DEFAULT_WAITLIST_HOLD;
use crate::event::{
    BackorderLimitSet, Event, FairSellingSet, ReceiptExpected, ReceiptReceived, ReservationExpired,
    ReservationExtended, ReservationIncreased, ReservationReduced, ReservationReleased,
    StockAdjusted, StockReserved, TransferReceived, TransferShipped,
};
use crate::ids::{
    Channel, CustomerId, LocationId, OrderId, ReceiptRef, ReservationId, Sku, TransferId,
};
use crate::pool::{Component, DEFAULT_LOCATION, LocationConfig, PoolConfig, PoolKind};
use crate::quantity::Quantity;
use crate::rejection::{Inconsistency, Resolution};
use crate::time::Timestamp;

/// The state of one SKU stream: unregistered until its `SkuRegistered` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuState {
    stock: Option<Stock>,
    /// While the SKU is not registered on the applied side, its staged registration and
    /// what was staged after it (registration happens once, so this stays tiny).
    #[serde(skip)]
    staged_registration: Option<Box<Stock>>,
}

/// Folds one event into `state`. Stops at the first event that contradicts the state.
pub fn evolve(mut state: SkuState, event: &Event) -> Result<SkuState, Inconsistency> {
    state.apply(event)?;
    Ok(state)
}

/// What landing a staged event left of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Landed {
    /// The layer still holds exactly the events staged after the landed one.
    Kept,
    /// The layer was dropped (the event was the SKU's registration, or it was not the
    /// oldest staged event): stage again whatever is still undecided.
    Dropped,
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

    /// The applied (durable) side.
    pub fn stock(&self) -> Option<StockRef<'_>> {
        self.stock.as_ref().map(Stock::applied)
    }

    /// The applied side with every staged event on top: what decisions see. The same as
    /// [`SkuState::stock`] when nothing is staged.
    pub fn speculative(&self) -> Option<StockRef<'_>> {
        match &self.stock {
            Some(stock) => Some(stock.speculative()),
            None => self.staged_registration.as_deref().map(Stock::applied),
        }
    }

    pub fn is_registered(&self) -> bool {
        self.stock.is_some()
    }

    /// Events staged and not yet landed.
    pub fn staged(&self) -> usize {
        match &self.stock {
            Some(stock) => stock.staged.as_ref().map_or(0, |l| l.events),
            None => self
                .staged_registration
                .as_ref()
                .map_or(0, |s| s.staged_events),
        }
    }

    /// Applies one event to the applied side, or leaves the state unchanged and says why
    /// it cannot. Anything staged is dropped: it was staged on top of another state.
    pub fn apply(&mut self, event: &Event) -> Result<(), Inconsistency> {
        self.discard_staged();
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

    /// Stages one event on the speculative side, or leaves the state unchanged and says
    /// why it cannot. The applied side does not change.
    pub fn stage(&mut self, event: &Event) -> Result<(), Inconsistency> {
        match (&mut self.stock, &mut self.staged_registration) {
            (Some(stock), _) => stock.stage(event),
            (None, Some(fresh)) => {
                fresh.apply(event)?;
                fresh.staged_events += 1;
                Ok(())
            }
            (None, None) => match event {
                Event::SkuRegistered(e) => {
                    let mut fresh = Stock::new(e.sku.clone(), &e.pool, e.at);
                    fresh.staged_events = 1;
                    self.staged_registration = Some(Box::new(fresh));
                    Ok(())
                }
                other => Err(Inconsistency::NotRegistered {
                    event_type: other.event_type(),
                }),
            },
        }
    }

    /// Applies the oldest staged event to the applied side, keeping the speculative side
    /// as it is. An event that does not apply changes nothing.
    pub fn land(&mut self, event: &Event) -> Result<Landed, Inconsistency> {
        match &mut self.stock {
            Some(stock) => stock.land(event),
            None => {
                let fresh = self.staged_registration.take();
                if let Err(e) = self.apply(event) {
                    self.staged_registration = fresh;
                    return Err(e);
                }
                // Only the registration was staged, and it is the one that landed: the
                // two sides are one again. Anything more must be staged again.
                let same = match (&fresh, &self.stock) {
                    (Some(f), Some(s)) => {
                        f.staged_events == 1
                            && f.sku == s.sku
                            && f.tally == s.tally
                            && f.holds == s.holds
                    }
                    _ => false,
                };
                Ok(if same { Landed::Kept } else { Landed::Dropped })
            }
        }
    }

    /// Forgets every staged event: the speculative side becomes the applied side again.
    pub fn discard_staged(&mut self) {
        self.staged_registration = None;
        if let Some(stock) = &mut self.stock {
            stock.staged = None;
        }
    }
}

/// Stock of a registered SKU: the applied figures and holds, and the staged layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stock {
    sku: Sku,
    tally: Tally,
    holds: Holds,
    #[serde(skip)]
    staged: Option<Box<Layer>>,
    /// Events staged into a state that is itself staged whole (an unregistered SKU's).
    #[serde(skip)]
    staged_events: usize,
}

/// Everything about a SKU's stock except its holds: small, so the layer keeps its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    pool: PoolState,
    reserved: Quantity,
    next_seq: u64,
    last_event_at: Timestamp,
    #[serde(default)]
    rules: Rules,
    /// The waitlist's figures; its places are kept with the holds (`Holds::places`), in
    /// the same applied/staged split, so a batch never copies the line.
    #[serde(default)]
    waitlist: WaitlistTally,
}

/// A SKU's fair-selling rules (see `FairSellingSet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Rules {
    per_customer: Option<Quantity>,
    window_ms: u64,
    hold_ms: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            per_customer: None,
            window_ms: 0,
            hold_ms: u64::try_from(DEFAULT_WAITLIST_HOLD.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Most places a SKU's waitlist may have at once: they live in its state.
pub const MAX_WAITERS: usize = 100_000;

/// The waitlist's figures. Invariants: `len` places are open, waiting for `units` in
/// all, and every open place's number is below `next`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct WaitlistTally {
    next: u64,
    len: u64,
    units: Quantity,
}

/// Waitlist places by number (first in, first served) and each waiting customer's place.
/// Invariant: `by_customer` indexes exactly `by_number`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Places {
    by_number: BTreeMap<u64, Waiter>,
    by_customer: HashMap<CustomerId, u64>,
}

impl Places {
    fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }

    fn insert(&mut self, number: u64, waiter: Waiter) {
        self.by_customer.insert(waiter.customer.clone(), number);
        self.by_number.insert(number, waiter);
    }

    fn remove(&mut self, number: u64) -> Option<Waiter> {
        let waiter = self.by_number.remove(&number)?;
        self.by_customer.remove(&waiter.customer);
        Some(waiter)
    }
    fn first(&self) -> Option<(u64, Waiter)> {
        self.by_number
            .first_key_value()
            .map(|(n, w)| (*n, w.clone()))
    }

    fn of(&self, customer: &CustomerId) -> Option<u64> {
        self.by_customer.get(customer).copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Waiter {
    customer: CustomerId,
    qty: Quantity,
    channel: Channel,
    joined_at: Timestamp,
    hold_id: ReservationId,
}

/// A waitlist place, as readers and the decision see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitlistPlace {
    pub number: u64,
    /// 1 for the first in line.
    pub position: u64,
    pub customer: CustomerId,
    pub qty: Quantity,
    pub channel: Channel,
    pub joined_at: Timestamp,
    /// Units the places ahead of it wait for.
    pub units_ahead: Quantity,
    /// The id the place's hold will have.
    pub hold_id: ReservationId,
}

fn place_view(number: u64, w: &Waiter, position: u64, units_ahead: Quantity) -> WaitlistPlace {
    WaitlistPlace {
        number,
        position,
        customer: w.customer.clone(),
        qty: w.qty,
        channel: w.channel.clone(),
        joined_at: w.joined_at,
        units_ahead,
        hold_id: w.hold_id,
    }
}

/// What one customer has at a SKU: units in live holds, and the sales that count against
/// a purchase limit (recorded while one is set, dropped once out of its window, oldest
/// first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Account {
    live: Quantity,
    sales: Vec<(Timestamp, Quantity)>,
}

impl Account {
    /// Units held, and bought after `since`.
    fn counted(&self, since: Timestamp) -> Quantity {
        bounded_sum(
            self.sales
                .iter()
                .filter(|(at, _)| *at > since)
                .map(|(_, qty)| *qty),
        )
        .saturating_add(self.live)
    }

    fn last_sale(&self) -> Option<Timestamp> {
        self.sales.last().map(|(at, _)| *at)
    }

    fn is_empty(&self) -> bool {
        self.live.is_zero() && self.sales.is_empty()
    }
}

/// What a hold names besides its units: the order and the customer, when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tags {
    order: Option<OrderId>,
    customer: Option<CustomerId>,
}

/// Live holds by id, the orders of the few that name one, the parts of the few split over
/// locations, and the expiry index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Holds {
    live: HashMap<ReservationId, Hold>,
    orders: HashMap<ReservationId, OrderId>,
    #[serde(default)]
    splits: HashMap<ReservationId, Split>,
    expiry: BTreeSet<(Timestamp, ReservationId)>,
    /// The line: live holds by `seq`, oldest first, kept only at a SKU that has taken
    /// backorders (about 70 bytes a hold, which other SKUs do not pay). Backorders are
    /// covered in this order, and an expiry storm there walks it from the nearer end
    /// rather than sorting every hold per expiry. A snapshot of such a SKU without it is
    /// refused by `validate`, and the SKU is folded from its log instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line: Option<BTreeSet<(u64, ReservationId)>>,
    /// The customer of each live hold that names one.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    customers: HashMap<ReservationId, CustomerId>,
    /// Accounts of the customers with live holds here, or with sales still inside the
    /// purchase limit's window. In the layer: the staged account of each customer a staged
    /// event changed (an empty one stands for none).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    accounts: HashMap<CustomerId, Account>,
    /// Applied side: accounts holding nothing, by their last sale. Once that sale leaves
    /// the window the account goes, so accounts follow the live holds and the window's
    /// buyers, never the SKU's history.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    idle: BTreeSet<(Timestamp, CustomerId)>,
    /// The waitlist's open places. In the layer: the places staged joins opened.
    #[serde(default, skip_serializing_if = "Places::is_empty")]
    places: Places,
}

/// A split hold's parts: (site index, units), two or more, summing to the hold's quantity.
type Split = Box<[(u32, Quantity)]>;

/// Units by site index: a hold's parts as they would be, or locations' on-hand figures.
type SiteParts = Vec<(u32, Quantity)>;

impl Holds {
    fn insert(&mut self, id: ReservationId, hold: Hold, tags: Tags, split: Option<Split>) {
        self.expiry.insert((hold.expires_at, id));
        if let Some(line) = &mut self.line {
            line.insert((hold.seq, id));
        }
        self.live.insert(id, hold);
        if let Some(order) = tags.order {
            self.orders.insert(id, order);
        }
        if let Some(customer) = tags.customer {
            self.customers.insert(id, customer);
        }
        if let Some(split) = split {
            self.splits.insert(id, split);
        }
    }

    fn remove(&mut self, id: &ReservationId) -> bool {
        let Some(hold) = self.live.remove(id) else {
            return false;
        };
        self.orders.remove(id);
        self.customers.remove(id);
        self.splits.remove(id);
        self.expiry.remove(&(hold.expires_at, *id));
        if let Some(line) = &mut self.line {
            line.remove(&(hold.seq, *id));
        }
        true
    }

    /// Puts `customer`'s account, keeping the idle index (applied side).
    fn put_account(&mut self, customer: CustomerId, account: Account) {
        if let Some(old) = self.accounts.get(&customer)
            && old.live.is_zero()
            && let Some(at) = old.last_sale()
        {
            self.idle.remove(&(at, customer.clone()));
        }
        if account.is_empty() {
            self.accounts.remove(&customer);
            return;
        }
        if account.live.is_zero()
            && let Some(at) = account.last_sale()
        {
            self.idle.insert((at, customer.clone()));
        }
        self.accounts.insert(customer, account);
    }
}

/// The staged events' effect on top of the applied state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layer {
    /// The figures after every staged event.
    tally: Tally,
    /// Holds created by staged events and not resolved by later ones.
    added: Holds,
    /// Applied holds that staged events resolve.
    removed: HashSet<ReservationId>,
    /// How many staged events name each hold: once none does, the applied record of the
    /// hold is what the speculative side shows.
    pending: HashMap<ReservationId, u32>,
    /// Applied waitlist places that staged events ended (served, left or dropped).
    ended: HashSet<u64>,
    /// Every applied place numbered below this is ended: the line is served from its
    /// front, so finding the first open place skips this prefix in one step instead of
    /// walking every place a batch served.
    ended_below: u64,
    events: usize,
}

/// Where [`apply_to`] puts and finds holds: the applied holds, or the layer over them.
trait HoldStore {
    fn hold(&self, id: &ReservationId) -> Option<Hold>;
    /// The parts of a split hold (`hold.site == SPLIT`).
    fn split(&self, id: &ReservationId) -> Option<Split>;
    /// The order and customer a live hold names, if any.
    fn tags(&self, id: &ReservationId) -> Tags;
    fn insert(&mut self, id: ReservationId, hold: Hold, tags: Tags, split: Option<Split>);
    fn remove(&mut self, id: &ReservationId);
    /// `customer`'s account as this side has it.
    fn account(&self, customer: &CustomerId) -> Option<Account>;
    fn set_account(&mut self, customer: CustomerId, account: Account);
    /// Drops the accounts that hold nothing and whose last sale is at or before `since`.
    fn prune_accounts(&mut self, _since: Timestamp) {}
    /// The first open waitlist place.
    fn first_place(&self) -> Option<(u64, Waiter)>;
    /// Waitlist place `number`, if open.
    fn place(&self, number: u64) -> Option<Waiter>;
    /// `customer`'s open place, if any.
    fn place_of(&self, customer: &CustomerId) -> Option<u64>;
    fn open_place(&mut self, number: u64, waiter: Waiter);
    fn close_place(&mut self, number: u64);
    /// Starts keeping the line index (the SKU takes backorders now); a no-op where it is
    /// kept already or cannot be (the layer's base, the ledger).
    fn index_line(&mut self) {}
}

impl HoldStore for Holds {
    fn hold(&self, id: &ReservationId) -> Option<Hold> {
        self.live.get(id).copied()
    }
    fn split(&self, id: &ReservationId) -> Option<Split> {
        self.splits.get(id).cloned()
    }
    fn tags(&self, id: &ReservationId) -> Tags {
        Tags {
            order: self.orders.get(id).cloned(),
            customer: self.customers.get(id).cloned(),
        }
    }
    fn insert(&mut self, id: ReservationId, hold: Hold, tags: Tags, split: Option<Split>) {
        Holds::insert(self, id, hold, tags, split);
    }
    fn remove(&mut self, id: &ReservationId) {
        Holds::remove(self, id);
    }
    fn account(&self, customer: &CustomerId) -> Option<Account> {
        self.accounts.get(customer).cloned()
    }
    fn set_account(&mut self, customer: CustomerId, account: Account) {
        self.put_account(customer, account);
    }
    fn first_place(&self) -> Option<(u64, Waiter)> {
        self.places.first()
    }
    fn place(&self, number: u64) -> Option<Waiter> {
        self.places.by_number.get(&number).cloned()
    }
    fn place_of(&self, customer: &CustomerId) -> Option<u64> {
        self.places.of(customer)
    }
    fn open_place(&mut self, number: u64, waiter: Waiter) {
        self.places.insert(number, waiter);
    }
    fn close_place(&mut self, number: u64) {
        self.places.remove(number);
    }
    fn prune_accounts(&mut self, since: Timestamp) {
        // Runs after every event: looks at the first entry without copying it.
        while self.idle.first().is_some_and(|(at, _)| *at <= since) {
            if let Some((_, customer)) = self.idle.pop_first() {
                self.accounts.remove(&customer);
            }
        }
    }
    fn index_line(&mut self) {
        if self.line.is_none() {
            self.line = Some(self.live.iter().map(|(id, h)| (h.seq, *id)).collect());
        }
    }
}

/// The layer, writable, over the applied holds.
struct LayerHolds<'a> {
    base: &'a Holds,
    added: &'a mut Holds,
    removed: &'a mut HashSet<ReservationId>,
    ended: &'a mut HashSet<u64>,
    ended_below: &'a mut u64,
}

impl LayerHolds<'_> {
    fn view(&self) -> HoldsView<'_> {
        HoldsView {
            base: self.base,
            layer: Some((self.added, self.removed)),
            ended: Some((self.ended, *self.ended_below)),
        }
    }
}

impl HoldStore for LayerHolds<'_> {
    fn hold(&self, id: &ReservationId) -> Option<Hold> {
        self.view().get(id)
    }
    fn split(&self, id: &ReservationId) -> Option<Split> {
        self.view().split(id).cloned()
    }
    fn tags(&self, id: &ReservationId) -> Tags {
        let view = self.view();
        Tags {
            order: view.order(id).cloned(),
            customer: view.customer(id).cloned(),
        }
    }
    fn insert(&mut self, id: ReservationId, hold: Hold, tags: Tags, split: Option<Split>) {
        self.added.insert(id, hold, tags, split);
    }
    fn account(&self, customer: &CustomerId) -> Option<Account> {
        self.view().account(customer).cloned()
    }
    fn set_account(&mut self, customer: CustomerId, account: Account) {
        // Absolute, not a delta: it stays right as the staged events before it land.
        self.added.accounts.insert(customer, account);
    }
    fn first_place(&self) -> Option<(u64, Waiter)> {
        self.view().first_place().map(|(n, w)| (n, w.clone()))
    }
    fn place(&self, number: u64) -> Option<Waiter> {
        self.view().place(number).cloned()
    }
    fn place_of(&self, customer: &CustomerId) -> Option<u64> {
        self.view().place_of(customer)
    }
    fn open_place(&mut self, number: u64, waiter: Waiter) {
        self.added.places.insert(number, waiter);
    }
    fn close_place(&mut self, number: u64) {
        if self.added.places.remove(number).is_none() {
            self.ended.insert(number);
            // Amortised: the prefix only moves forward over places already ended.
            for (n, _) in self.base.places.by_number.range(*self.ended_below..) {
                if !self.ended.contains(n) {
                    break;
                }
                *self.ended_below = n.saturating_add(1);
            }
        }
    }
    fn remove(&mut self, id: &ReservationId) {
        if !self.added.remove(id) {
            self.removed.insert(*id);
        }
    }
}

/// The holds one side sees: the applied ones, or those seen through the layer.
#[derive(Clone, Copy)]
struct HoldsView<'a> {
    base: &'a Holds,
    layer: Option<(&'a Holds, &'a HashSet<ReservationId>)>,
    /// Applied waitlist places the layer ended, and the prefix of them all ended.
    ended: Option<(&'a HashSet<u64>, u64)>,
}

impl<'a> HoldsView<'a> {
    fn get(&self, id: &ReservationId) -> Option<Hold> {
        if let Some((added, removed)) = self.layer {
            if let Some(hold) = added.live.get(id) {
                return Some(*hold);
            }
            if removed.contains(id) {
                return None;
            }
        }
        self.base.live.get(id).copied()
    }

    fn split(&self, id: &ReservationId) -> Option<&'a Split> {
        if let Some((added, removed)) = self.layer {
            if added.live.contains_key(id) {
                return added.splits.get(id);
            }
            if removed.contains(id) {
                return None;
            }
        }
        self.base.splits.get(id)
    }

    fn order(&self, id: &ReservationId) -> Option<&'a OrderId> {
        if let Some((added, removed)) = self.layer {
            if added.live.contains_key(id) {
                return added.orders.get(id);
            }
            if removed.contains(id) {
                return None;
            }
        }
        self.base.orders.get(id)
    }

    fn customer(&self, id: &ReservationId) -> Option<&'a CustomerId> {
        if let Some((added, removed)) = self.layer {
            if added.live.contains_key(id) {
                return added.customers.get(id);
            }
            if removed.contains(id) {
                return None;
            }
        }
        self.base.customers.get(id)
    }

    fn account(&self, customer: &CustomerId) -> Option<&'a Account> {
        if let Some((added, _)) = self.layer
            && let Some(staged) = added.accounts.get(customer)
        {
            return Some(staged);
        }
        self.base.accounts.get(customer)
    }

    fn is_ended(&self, number: u64) -> bool {
        self.ended
            .is_some_and(|(e, below)| number < below || e.contains(&number))
    }

    /// The open places, first in line first: the applied ones the layer did not end,
    /// and the layer's (whose numbers are all later).
    fn places(self) -> impl Iterator<Item = (u64, &'a Waiter)> + 'a {
        self.places_from(0)
    }

    /// The open places numbered `from` or later, first in line first.
    fn places_from(self, from: u64) -> impl Iterator<Item = (u64, &'a Waiter)> + 'a {
        let below = self.ended.map_or(0, |(_, below)| below);
        let applied = self
            .base
            .places
            .by_number
            .range(below.max(from)..)
            .filter(move |(n, _)| !self.is_ended(**n));
        let staged = self
            .layer
            .into_iter()
            .flat_map(move |(added, _)| added.places.by_number.range(from..));
        applied.chain(staged).map(|(n, w)| (*n, w))
    }

    fn first_place(self) -> Option<(u64, &'a Waiter)> {
        self.places().next()
    }

    fn place(&self, number: u64) -> Option<&'a Waiter> {
        if let Some((added, _)) = self.layer
            && let Some(w) = added.places.by_number.get(&number)
        {
            return Some(w);
        }
        self.base
            .places
            .by_number
            .get(&number)
            .filter(|_| !self.is_ended(number))
    }

    fn place_of(&self, customer: &CustomerId) -> Option<u64> {
        if let Some((added, _)) = self.layer
            && let Some(n) = added.places.by_customer.get(customer)
        {
            return Some(*n);
        }
        self.base
            .places
            .by_customer
            .get(customer)
            .copied()
            .filter(|n| !self.is_ended(*n))
    }

    fn len(&self) -> usize {
        match self.layer {
            Some((added, removed)) => (self.base.live.len() - removed.len()) + added.live.len(),
            None => self.base.live.len(),
        }
    }

    fn iter(self) -> impl Iterator<Item = (ReservationId, Hold)> + 'a {
        let (added, removed) = self.layer.unzip();
        self.base
            .live
            .iter()
            .filter(move |(id, _)| removed.is_none_or(|r| !r.contains(*id)))
            .chain(added.into_iter().flat_map(|a| a.live.iter()))
            .map(|(id, hold)| (*id, *hold))
    }

    /// A bound on the earliest expiry among live holds: never later than it, and equal to
    /// it unless a staged event resolves the applied hold that expires first. Costs two
    /// lookups whatever is staged.
    fn earliest_expiry_bound(self) -> Option<Timestamp> {
        let base = self.base.expiry.first().map(|(at, _)| *at);
        let added = self
            .layer
            .and_then(|(added, _)| added.expiry.first())
            .map(|(at, _)| *at);
        base.into_iter().chain(added).min()
    }

    /// The live holds in line order (by `seq`), oldest first, or newest first with
    /// `backwards`. From the line index where the SKU keeps one; sorted here otherwise
    /// (only between a backorder limit being staged and landing).
    fn by_line(self, backwards: bool) -> Box<dyn Iterator<Item = (u64, ReservationId)> + 'a> {
        let (added, removed) = self.layer.unzip();
        let keep = move |id: &ReservationId| removed.is_none_or(|r| !r.contains(id));
        // The base lazily from its index, so a walk that stops early costs what it read.
        let base: Box<dyn Iterator<Item = (u64, ReservationId)> + 'a> = match &self.base.line {
            Some(line) if backwards => {
                Box::new(line.iter().rev().filter(move |(_, id)| keep(id)).copied())
            }
            Some(line) => Box::new(line.iter().filter(move |(_, id)| keep(id)).copied()),
            None => {
                let mut all: Vec<_> = self
                    .base
                    .live
                    .iter()
                    .filter(|(id, _)| keep(id))
                    .map(|(id, h)| (h.seq, *id))
                    .collect();
                all.sort_unstable();
                if backwards {
                    all.reverse();
                }
                Box::new(all.into_iter())
            }
        };
        // The layer keeps its own holds in line order (see `Stock::stage`).
        let extra = added.and_then(|a| a.line.as_ref()).into_iter().flatten();
        if backwards {
            let (a, b) = (
                base.map(|(s, id)| (Reverse(s), id)),
                extra.rev().map(|&(s, id)| (Reverse(s), id)),
            );
            Box::new(
                Merge {
                    a: a.peekable(),
                    b: b.peekable(),
                }
                .map(|(Reverse(s), id)| (s, id)),
            )
        } else {
            Box::new(Merge {
                a: base.peekable(),
                b: extra.copied().peekable(),
            })
        }
    }

    /// The live holds whose `(expires_at, id)` falls in `within`, earliest first. Each
    /// side is cut by the range before the two are merged, so the cost is the holds in
    /// it: with a batch of commits staged, the earliest applied holds are the ones the
    /// layer removes, and a scan from the start to find the lapsed ones stepped over every
    /// one of them at each decision (quadratic in the batch; a third of a flash sale's
    /// CPU).
    fn by_expiry(
        self,
        within: impl RangeBounds<(Timestamp, ReservationId)> + Clone + 'a,
    ) -> impl Iterator<Item = (Timestamp, ReservationId)> + 'a {
        let (added, removed) = self.layer.unzip();
        let base = self
            .base
            .expiry
            .range(within.clone())
            .filter(move |(_, id)| removed.is_none_or(|r| !r.contains(id)))
            .copied();
        let added = added
            .into_iter()
            .flat_map(move |a| a.expiry.range(within.clone()))
            .copied();
        Merge {
            a: base.peekable(),
            b: added.peekable(),
        }
    }
}

/// Two sorted iterators merged into one sorted iterator.
struct Merge<A: Iterator, B: Iterator<Item = A::Item>> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<T: Ord, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Merge<A, B> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y < x => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
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
    /// The location (index into the SKU's sites) every unit is held at, or [`SPLIT`].
    /// Pools without locations use 0.
    site: u32,
}

/// [`Hold::site`] of a hold whose units are at several locations (see `Holds::splits`).
const SPLIT: u32 = u32::MAX;

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
        /// Sums over `sites`, kept for the figures every pool answers.
        on_hand: Quantity,
        safety_stock: Quantity,
        /// Where the stock is: fixed at registration, so shared, not copied, by the
        /// staged layer's copy of the figures.
        places: Arc<[Place]>,
        /// Each place's figures, by the same index.
        sites: Vec<Site>,
        /// Transfers shipped and not yet received.
        transfers: BTreeMap<TransferId, InTransit>,
        /// Stock expected from suppliers and not yet (all) received.
        #[serde(default)]
        receipts: BTreeMap<ReceiptRef, Incoming>,
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
    /// A kit holds nothing: its stream is its definition.
    Kit { components: Vec<Component> },
}

/// A location's identity and preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Place {
    id: LocationId,
    priority: u32,
}

/// A location's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Site {
    on_hand: Quantity,
    safety_stock: Quantity,
    /// Units held here by live reservations, lapsed ones included until their expiry.
    reserved: Quantity,
    /// Units in transit to here.
    incoming: Quantity,
    /// Units that may be held here beyond on hand, as backorders.
    #[serde(default)]
    backorder_limit: Quantity,
}

impl Site {
    /// What may still be held here with `held` held: on hand beyond safety stock, and the
    /// backorder limit beyond that.
    fn offer(&self, held: Quantity) -> Quantity {
        self.on_hand
            .saturating_sub(self.safety_stock)
            .saturating_add(self.backorder_limit)
            .saturating_sub(held)
    }

    /// Units promised here beyond on hand and the backorder limit.
    fn shortfall(&self, held: Quantity) -> Quantity {
        held.saturating_sub(self.on_hand.saturating_add(self.backorder_limit))
    }

    /// Units held here beyond on hand, within the backorder limit (beyond it is the
    /// shortfall).
    fn backordered(&self, held: Quantity) -> Quantity {
        held.saturating_sub(self.on_hand).min(self.backorder_limit)
    }
}

/// An expected receipt: where it arrives, the units still expected, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Incoming {
    site: u32,
    qty: Quantity,
    eta: Timestamp,
}

/// Most receipts one SKU may expect at once: they live in its state.
pub const MAX_RECEIPTS: usize = 1_000;

/// A transfer on its way: site indices and units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct InTransit {
    from: u32,
    to: u32,
    qty: Quantity,
}

/// Most transfers one SKU may have in transit at once: they live in its state.
pub const MAX_IN_TRANSIT: usize = 10_000;

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
    /// For a kit, nothing: what it can offer is derived from its components (the engine's
    /// read of a kit fills it in).
    pub available: Availability,
    /// Units promised beyond what exists; non-zero means the SKU is short.
    pub shortfall: Quantity,
    pub live_reservations: usize,
    /// A kit's components (empty for every other pool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// Each location's figures, for a SKU registered with locations (empty for a SKU at
    /// the one default location: the totals say it all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<LocationView>,
    /// Units in transit between the SKU's locations: not sellable, not lost.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_transit: Quantity,
    /// Units that may be held beyond on hand, as backorders.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backorder_limit: Quantity,
    /// Units held beyond on hand, waiting for stock (first in, first filled).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backordered: Quantity,
    /// Units expected from suppliers (open receipts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub incoming: Quantity,
    /// When the earliest open receipt is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_eta: Option<Timestamp>,
    /// The open receipts, earliest expected first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receipts: Vec<ReceiptView>,
    /// Units one customer may hold and buy over a window, when the SKU has a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_limit: Option<PurchaseLimitView>,
    /// Customers on the waitlist, and the units they wait for.
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub waitlist: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waitlist_units: Quantity,
}

/// A purchase limit, as readers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseLimitView {
    pub per_customer: Quantity,
    pub window_secs: u64,
}

fn is_zero_count(n: &u64) -> bool {
    *n == 0
}

/// A receipt still expected: units and when, at which location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptView {
    pub reference: ReceiptRef,
    pub location: LocationId,
    pub qty: Quantity,
    pub eta: Timestamp,
}

fn is_zero(q: &Quantity) -> bool {
    q.is_zero()
}

/// One location of a SKU, read at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationView {
    pub location: LocationId,
    pub priority: u32,
    pub on_hand: Quantity,
    pub safety_stock: Quantity,
    /// Units held here by live, unlapsed reservations.
    pub reserved: Quantity,
    /// What may still be reserved here.
    pub available: Quantity,
    /// Units promised here beyond what is here and its backorder limit.
    pub shortfall: Quantity,
    /// Units in transit to here.
    pub incoming: Quantity,
    /// Units that may be held here beyond on hand, as backorders.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backorder_limit: Quantity,
    /// Units held here beyond on hand, waiting for stock.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backordered: Quantity,
}

/// A hold's parts, by site index, without allocating for the usual one-location hold.
#[derive(Clone)]
enum PartsIter<'a> {
    One(Option<(u32, Quantity)>),
    Many(std::slice::Iter<'a, (u32, Quantity)>),
}

impl Iterator for PartsIter<'_> {
    type Item = (u32, Quantity);
    fn next(&mut self) -> Option<(u32, Quantity)> {
        match self {
            PartsIter::One(one) => one.take(),
            PartsIter::Many(many) => many.next().copied(),
        }
    }
}

fn parts_iter<'a>(hold: &Hold, split: Option<&'a Split>) -> PartsIter<'a> {
    match (hold.site, split) {
        (SPLIT, Some(parts)) => PartsIter::Many(parts.iter()),
        // A split hold without its parts cannot be applied (see `apply_reserved`).
        (SPLIT, None) => PartsIter::One(None),
        (site, _) => PartsIter::One(Some((site, hold.qty))),
    }
}

/// The location of a SKU registered without locations.
fn default_location() -> LocationId {
    #[allow(clippy::expect_used)] // a constant that satisfies the rule; tested below
    LocationId::new(DEFAULT_LOCATION).expect("the default location id is valid")
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
                ref locations,
            } => {
                let configured: Vec<LocationConfig> = match locations.as_slice() {
                    [] => vec![LocationConfig {
                        location: default_location(),
                        on_hand,
                        safety_stock,
                        priority: 0,
                    }],
                    some => some.to_vec(),
                };
                PoolState::Physical {
                    on_hand,
                    safety_stock,
                    places: configured
                        .iter()
                        .map(|l| Place {
                            id: l.location.clone(),
                            priority: l.priority,
                        })
                        .collect(),
                    sites: configured
                        .iter()
                        .map(|l| Site {
                            on_hand: l.on_hand,
                            safety_stock: l.safety_stock,
                            ..Site::default()
                        })
                        .collect(),
                    transfers: BTreeMap::new(),
                    receipts: BTreeMap::new(),
                }
            }
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
            PoolConfig::Kit { ref components } => PoolState::Kit {
                components: components.clone(),
            },
        };
        Stock {
            sku,
            tally: Tally {
                pool,
                reserved: Quantity::ZERO,
                next_seq: 0,
                last_event_at: at,
                rules: Rules::default(),
                waitlist: WaitlistTally::default(),
            },
            holds: Holds::default(),
            staged: None,
            staged_events: 0,
        }
    }

    fn applied(&self) -> StockRef<'_> {
        StockRef {
            sku: &self.sku,
            tally: &self.tally,
            holds: HoldsView {
                base: &self.holds,
                layer: None,
                ended: None,
            },
        }
    }

    fn speculative(&self) -> StockRef<'_> {
        match &self.staged {
            None => self.applied(),
            Some(layer) => StockRef {
                sku: &self.sku,
                tally: &layer.tally,
                holds: HoldsView {
                    base: &self.holds,
                    layer: Some((&layer.added, &layer.removed)),
                    ended: Some((&layer.ended, layer.ended_below)),
                },
            },
        }
    }

    fn apply(&mut self, event: &Event) -> Result<(), Inconsistency> {
        apply_to(&mut self.tally, &mut self.holds, event)
    }

    fn stage(&mut self, event: &Event) -> Result<(), Inconsistency> {
        let layer = self.staged.get_or_insert_with(|| {
            Box::new(Layer {
                tally: self.tally.clone(),
                // The layer's own holds are few: always in line order.
                added: Holds {
                    line: Some(BTreeSet::new()),
                    ..Holds::default()
                },
                removed: HashSet::new(),
                pending: HashMap::new(),
                ended: HashSet::new(),
                ended_below: 0,
                events: 0,
            })
        });
        let mut holds = LayerHolds {
            base: &self.holds,
            added: &mut layer.added,
            removed: &mut layer.removed,
            ended: &mut layer.ended,
            ended_below: &mut layer.ended_below,
        };
        let staged = apply_to(&mut layer.tally, &mut holds, event);
        if staged.is_ok() {
            layer.events += 1;
            if let Some(id) = event.reservation_id() {
                *layer.pending.entry(id).or_default() += 1;
            }
        } else if layer.events == 0 {
            self.staged = None;
        }
        staged
    }

    fn land(&mut self, event: &Event) -> Result<Landed, Inconsistency> {
        self.apply(event)?;
        let Some(layer) = &mut self.staged else {
            return Ok(Landed::Kept);
        };
        // Waitlist places: a landed join is applied now, so the layer drops its copy (or,
        // if a staged event already ended the place, hides the applied one); a landed end
        // is applied now, so the layer no longer needs to hide it.
        match event {
            // The guard does the work: it drops the layer's copy of the joined place.
            Event::WaitlistJoined(e) if layer.added.places.remove(e.number).is_none() => {
                layer.ended.insert(e.number);
            }
            Event::WaitlistLeft(e) => {
                layer.ended.remove(&e.number);
            }
            Event::StockReserved(StockReserved {
                waitlist: Some(number),
                ..
            }) => {
                layer.ended.remove(number);
            }
            _ => {}
        }
        // The hold it names, if any: once no staged event names it any more, the layer
        // has nothing to say about it; while one does, the layer shows that event's
        // outcome, so it removes the applied record if there is one (the layer removes
        // only applied holds). Counting, not comparing records: a hold grown and shrunk
        // back by staged events equals its applied record, and is still the layer's.
        let fits = match event.reservation_id() {
            None => true,
            Some(id) => match layer.pending.get_mut(&id) {
                None => false,
                Some(n) => {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        layer.pending.remove(&id);
                        layer.added.remove(&id);
                        layer.removed.remove(&id);
                    } else if self.holds.live.contains_key(&id) {
                        layer.removed.insert(id);
                    } else {
                        layer.removed.remove(&id);
                    }
                    true
                }
            },
        } && layer.events > 0;
        layer.events = layer.events.saturating_sub(1);
        let settled = layer.events == 0;
        let consistent = !settled
            || (layer.added.live.is_empty()
                && layer.removed.is_empty()
                && layer.added.places.is_empty()
                && layer.ended.is_empty()
                && layer.tally == self.tally);
        if fits && settled && consistent {
            self.staged = None;
            return Ok(Landed::Kept);
        }
        if fits && consistent {
            return Ok(Landed::Kept);
        }
        self.staged = None;
        Ok(Landed::Dropped)
    }

    /// Checks the invariants that `apply` keeps, for a state that did not come from `apply`
    /// (a decoded snapshot): a damaged snapshot must be refused, not trusted.
    fn validate(&self) -> Result<(), String> {
        let (tally, holds) = (&self.tally, &self.holds);
        if let PoolState::PrintOnDemand {
            period_millis: 0, ..
        } = tally.pool
        {
            return Err("print-on-demand period of 0 ms".into());
        }
        let held: u128 = holds.live.values().map(|r| u128::from(r.qty.get())).sum();
        if held != u128::from(tally.reserved.get()) {
            return Err(format!(
                "reserved {} but live holds sum to {held}",
                tally.reserved
            ));
        }
        if holds.orders.keys().any(|id| !holds.live.contains_key(id))
            || holds.expiry.len() != holds.live.len()
            || holds
                .expiry
                .iter()
                .any(|(at, id)| holds.live.get(id).is_none_or(|r| r.expires_at != *at))
        {
            return Err("expiry index does not match the live reservations".into());
        }
        let backorders = matches!(&tally.pool, PoolState::Physical { sites, .. }
            if sites.iter().any(|s| !s.backorder_limit.is_zero()));
        match &holds.line {
            None if backorders => {
                return Err("a SKU that takes backorders without its line index".into());
            }
            Some(line)
                if line.len() != holds.live.len()
                    || line
                        .iter()
                        .any(|(seq, id)| holds.live.get(id).is_none_or(|r| r.seq != *seq)) =>
            {
                return Err("line index does not match the live reservations".into());
            }
            _ => {}
        }
        validate_fair_selling(tally, holds)?;
        if let PoolState::PrintOnDemand { periods, .. } = &tally.pool {
            for (period, usage) in periods {
                let held: u128 = holds
                    .live
                    .values()
                    .filter(|r| tally.period_of(r.reserved_at) == Some(*period))
                    .map(|r| u128::from(r.qty.get()))
                    .sum();
                if held != u128::from(usage.reserved.get()) {
                    return Err(format!("period {period} usage does not match its holds"));
                }
            }
        }
        if let PoolState::Physical {
            on_hand,
            safety_stock,
            places,
            sites,
            transfers,
            receipts,
        } = &tally.pool
        {
            validate_sites(holds, *on_hand, *safety_stock, places, sites, transfers)?;
            if receipts.len() > MAX_RECEIPTS
                || receipts
                    .values()
                    .any(|r| r.qty.is_zero() || r.site as usize >= sites.len())
            {
                return Err("backorders or receipts that do not fit the locations".into());
            }
        } else if !holds.splits.is_empty() || holds.live.values().any(|h| h.site != 0) {
            return Err("holds at locations in a pool without locations".into());
        }
        Ok(())
    }
}

/// The accounts and the waitlist of a decoded state (invariants at their types).
fn validate_fair_selling(tally: &Tally, holds: &Holds) -> Result<(), String> {
    let mut live: HashMap<&CustomerId, u128> = HashMap::new();
    for (id, customer) in &holds.customers {
        let Some(hold) = holds.live.get(id) else {
            return Err("a customer for a hold that is not live".into());
        };
        *live.entry(customer).or_default() += u128::from(hold.qty.get());
    }
    let accounts_fit = holds.accounts.iter().all(|(c, a)| {
        live.get(c).copied().unwrap_or(0) == u128::from(a.live.get())
            && !a.is_empty()
            && (!a.live.is_zero()
                || a.last_sale()
                    .is_some_and(|at| holds.idle.contains(&(at, c.clone()))))
    });
    if !accounts_fit
        || live.keys().any(|c| !holds.accounts.contains_key(*c))
        || holds.idle.len() != holds.accounts.values().filter(|a| a.live.is_zero()).count()
    {
        return Err("customer accounts do not match the live holds".into());
    }
    let (list, places) = (&tally.waitlist, &holds.places);
    let units: u128 = places
        .by_number
        .values()
        .map(|w| u128::from(w.qty.get()))
        .sum();
    if places.by_customer.len() != places.by_number.len()
        || places
            .by_customer
            .iter()
            .any(|(c, n)| places.by_number.get(n).is_none_or(|w| w.customer != *c))
        || places
            .by_number
            .last_key_value()
            .is_some_and(|(n, _)| *n >= list.next)
        || u64::try_from(places.by_number.len()).ok() != Some(list.len)
        || units != u128::from(list.units.get())
        || tally.rules.hold_ms == 0
    {
        return Err("the waitlist does not match its index".into());
    }
    Ok(())
}

/// The location invariants (module docs) of a decoded physical state.
fn validate_sites(
    holds: &Holds,
    on_hand: Quantity,
    safety_stock: Quantity,
    places: &[Place],
    sites: &[Site],
    transfers: &BTreeMap<TransferId, InTransit>,
) -> Result<(), String> {
    if places.is_empty() || places.len() != sites.len() {
        return Err("a physical SKU needs one figure set per location, and a location".into());
    }
    let ids: HashSet<&LocationId> = places.iter().map(|p| &p.id).collect();
    if ids.len() != places.len() {
        return Err("a location is listed twice".into());
    }
    let sum =
        |f: fn(&Site) -> Quantity| -> u128 { sites.iter().map(|s| u128::from(f(s).get())).sum() };
    if sum(|s| s.on_hand) != u128::from(on_hand.get())
        || sum(|s| s.safety_stock) != u128::from(safety_stock.get())
    {
        return Err("on hand or safety stock is not the sum of its locations'".into());
    }
    let mut held = vec![0u128; sites.len()];
    let mut incoming = vec![0u128; sites.len()];
    for (id, hold) in &holds.live {
        let split = holds.splits.get(id);
        if (hold.site == SPLIT) != split.is_some() {
            return Err(format!("hold {id} and its parts disagree"));
        }
        // Parts name two or more distinct locations, none with 0 units: `move_parts`
        // checks each part on its own and relies on it.
        if let Some(parts) = split {
            let distinct: HashSet<u32> = parts.iter().map(|(site, _)| *site).collect();
            if parts.len() < 2
                || distinct.len() != parts.len()
                || parts.iter().any(|(_, qty)| qty.is_zero())
            {
                return Err(format!(
                    "hold {id}'s parts are not distinct, non-empty locations"
                ));
            }
        }
        let mut total = 0u128;
        for (site, qty) in parts_iter(hold, split) {
            let slot = held
                .get_mut(site as usize)
                .ok_or_else(|| format!("hold {id} is at a location that does not exist"))?;
            *slot += u128::from(qty.get());
            total += u128::from(qty.get());
        }
        if total != u128::from(hold.qty.get()) {
            return Err(format!("hold {id}'s parts do not sum to its quantity"));
        }
    }
    if holds.splits.keys().any(|id| !holds.live.contains_key(id)) {
        return Err("parts kept for a hold that is not live".into());
    }
    for t in transfers.values() {
        let slot = incoming
            .get_mut(t.to as usize)
            .filter(|_| (t.from as usize) < sites.len() && t.from != t.to)
            .ok_or("a transfer between locations that do not exist")?;
        *slot += u128::from(t.qty.get());
    }
    for (i, site) in sites.iter().enumerate() {
        if held[i] != u128::from(site.reserved.get())
            || incoming[i] != u128::from(site.incoming.get())
        {
            return Err(format!(
                "location {}'s figures do not match its holds and transfers",
                places[i].id
            ));
        }
    }
    Ok(())
}

impl Tally {
    /// Units that may be held beyond on hand, as backorders (0 for other pools).
    fn backorder_limit(&self) -> Quantity {
        match &self.pool {
            PoolState::Physical { sites, .. } => {
                bounded_sum(sites.iter().map(|s| s.backorder_limit))
            }
            _ => Quantity::ZERO,
        }
    }

    /// What holds may reach before the SKU is short: the limit, and for a physical SKU
    /// its backorder limit beyond it.
    fn risk_limit(&self) -> Option<Quantity> {
        self.limit()
            .map(|limit| limit.saturating_add(self.backorder_limit()))
    }

    /// Units expected from suppliers, and the earliest arrival.
    fn incoming(&self) -> (Quantity, Option<Timestamp>) {
        match &self.pool {
            PoolState::Physical { receipts, .. } => (
                bounded_sum(receipts.values().map(|r| r.qty)),
                receipts.values().map(|r| r.eta).min(),
            ),
            _ => (Quantity::ZERO, None),
        }
    }

    /// The open receipts, earliest expected first.
    fn receipt_views(&self) -> Vec<ReceiptView> {
        let PoolState::Physical {
            places, receipts, ..
        } = &self.pool
        else {
            return Vec::new();
        };
        let mut open: Vec<ReceiptView> = receipts
            .iter()
            .filter_map(|(reference, r)| {
                Some(ReceiptView {
                    reference: reference.clone(),
                    location: places.get(r.site as usize)?.id.clone(),
                    qty: r.qty,
                    eta: r.eta,
                })
            })
            .collect();
        open.sort_by(|a, b| (a.eta, &a.reference).cmp(&(b.eta, &b.reference)));
        open
    }

    fn limit(&self) -> Option<Quantity> {
        match self.pool {
            PoolState::Physical { on_hand, .. } => Some(on_hand),
            PoolState::Digital { license_limit, .. } => license_limit,
            PoolState::PrintOnDemand { capacity, .. } => Some(capacity),
            PoolState::Kit { .. } => None,
        }
    }

    /// (units held by counting reservations, units sold that still count) at `now`, given
    /// the lapsed holds not yet expired by an event, as `(reserved_at, qty)`.
    fn used(
        &self,
        now: Timestamp,
        lapsed: impl Iterator<Item = (Timestamp, Quantity)>,
    ) -> (Quantity, Quantity) {
        let PoolState::PrintOnDemand { periods, .. } = &self.pool else {
            let held = self
                .reserved
                .saturating_sub(bounded_sum(lapsed.map(|(_, qty)| qty)));
            let sold = match self.pool {
                PoolState::Digital { sold, .. } => sold,
                _ => Quantity::ZERO,
            };
            return (held, sold);
        };
        let period = self.period_of(now).unwrap_or(0);
        let usage = periods.get(&period).copied().unwrap_or_default();
        let lapsed_here = bounded_sum(
            lapsed
                .filter(|(reserved_at, _)| self.period_of(*reserved_at) == Some(period))
                .map(|(_, qty)| qty),
        );
        (usage.reserved.saturating_sub(lapsed_here), usage.sold)
    }

    /// Units held at each location given the lapsed holds' parts not yet expired, as
    /// `(site, qty)`; `None` for a pool at fewer than two locations, whose totals say it.
    fn held_by_site(&self, lapsed: impl Iterator<Item = (u32, Quantity)>) -> Option<Vec<Quantity>> {
        let PoolState::Physical { sites, .. } = &self.pool else {
            return None;
        };
        if sites.len() < 2 {
            return None;
        }
        let mut held: Vec<Quantity> = sites.iter().map(|s| s.reserved).collect();
        for (site, qty) in lapsed {
            if let Some(h) = held.get_mut(site as usize) {
                *h = h.saturating_sub(qty);
            }
        }
        Some(held)
    }

    /// Each location's figures, given what is held at each (`by_site`, or the total for a
    /// SKU at one location). Empty for pools without locations.
    fn locations(&self, held: Quantity, by_site: Option<&[Quantity]>) -> Vec<LocationView> {
        let PoolState::Physical { places, sites, .. } = &self.pool else {
            return Vec::new();
        };
        places
            .iter()
            .zip(sites)
            .enumerate()
            .map(|(i, (place, site))| {
                let held = by_site.and_then(|b| b.get(i).copied()).unwrap_or(held);
                LocationView {
                    location: place.id.clone(),
                    priority: place.priority,
                    on_hand: site.on_hand,
                    safety_stock: site.safety_stock,
                    reserved: held,
                    available: site.offer(held),
                    shortfall: site.shortfall(held),
                    incoming: site.incoming,
                    backorder_limit: site.backorder_limit,
                    backordered: site.backordered(held),
                }
            })
            .collect()
    }

    fn available_given(
        &self,
        (held, sold): (Quantity, Quantity),
        by_site: Option<&[Quantity]>,
    ) -> Availability {
        match &self.pool {
            // A location short of what it promised offers nothing, and cannot borrow from
            // another's figures: what may be reserved is summed per location.
            PoolState::Physical { sites, .. } if by_site.is_some() => {
                let by_site = by_site.unwrap_or_default();
                Availability::Limited(bounded_sum(
                    sites.iter().zip(by_site).map(|(s, h)| s.offer(*h)),
                ))
            }
            PoolState::Physical {
                on_hand,
                safety_stock,
                ..
            } => Availability::Limited(
                on_hand
                    .saturating_sub(*safety_stock)
                    .saturating_add(self.backorder_limit())
                    .saturating_sub(held),
            ),
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
            PoolState::Kit { .. } => Availability::Limited(Quantity::ZERO),
        }
    }

    fn shortfall_given(
        &self,
        (held, sold): (Quantity, Quantity),
        by_site: Option<&[Quantity]>,
    ) -> Quantity {
        if let (PoolState::Physical { sites, .. }, Some(by_site)) = (&self.pool, by_site) {
            return bounded_sum(sites.iter().zip(by_site).map(|(s, h)| s.shortfall(*h)));
        }
        self.risk_limit().map_or(Quantity::ZERO, |limit| {
            bounded_sum([held, sold].into_iter()).saturating_sub(limit)
        })
    }

    fn view(
        &self,
        sku: &Sku,
        used: (Quantity, Quantity),
        by_site: Option<&[Quantity]>,
        live: usize,
    ) -> StockView {
        let (held, sold) = used;
        let (incoming, next_eta) = self.incoming();
        let explicit = match &self.pool {
            PoolState::Physical { places, .. } => {
                places.len() > 1 || places.iter().any(|p| p.id.as_str() != DEFAULT_LOCATION)
            }
            _ => false,
        };
        StockView {
            sku: sku.clone(),
            pool: self.pool_kind(),
            limit: self.limit(),
            safety_stock: match self.pool {
                PoolState::Physical { safety_stock, .. } => safety_stock,
                _ => Quantity::ZERO,
            },
            reserved: held,
            sold,
            available: self.available_given(used, by_site),
            shortfall: self.shortfall_given(used, by_site),
            live_reservations: live,
            components: match &self.pool {
                PoolState::Kit { components } => components.clone(),
                _ => Vec::new(),
            },
            locations: if explicit {
                self.locations(held, by_site)
            } else {
                Vec::new()
            },
            in_transit: match &self.pool {
                PoolState::Physical { transfers, .. } => {
                    bounded_sum(transfers.values().map(|t| t.qty))
                }
                _ => Quantity::ZERO,
            },
            backorder_limit: self.backorder_limit(),
            // Held beyond on hand, within the backorder limit (beyond it is the shortfall),
            // location by location.
            backordered: match &self.pool {
                PoolState::Physical { sites, .. } => {
                    bounded_sum(sites.iter().enumerate().map(|(i, s)| {
                        s.backordered(by_site.and_then(|b| b.get(i).copied()).unwrap_or(held))
                    }))
                }
                _ => Quantity::ZERO,
            },
            incoming,
            next_eta,
            receipts: self.receipt_views(),
            purchase_limit: self
                .rules
                .per_customer
                .map(|per_customer| PurchaseLimitView {
                    per_customer,
                    window_secs: self.rules.window_ms / 1000,
                }),
            waitlist: self.waitlist.len,
            waitlist_units: self.waitlist.units,
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

    fn pool_kind(&self) -> PoolKind {
        match self.pool {
            PoolState::Physical { .. } => PoolKind::Physical,
            PoolState::Digital { .. } => PoolKind::Digital,
            PoolState::PrintOnDemand { .. } => PoolKind::PrintOnDemand,
            PoolState::Kit { .. } => PoolKind::Kit,
        }
    }

    /// Moves the notion of "latest" forward and prunes what can no longer matter.
    fn advance_clock(&mut self, at: Timestamp) {
        self.last_event_at = self.last_event_at.max(at);
        let current = self.period_of(self.last_event_at);
        if let (PoolState::PrintOnDemand { periods, .. }, Some(current)) = (&mut self.pool, current)
        {
            *periods = periods.split_off(&current);
        }
    }
}

/// Validates `event` against `tally` and `holds`, then applies it to both. The same rules
/// for the applied side and for the layer: only where holds live differs.
fn apply_to(
    tally: &mut Tally,
    holds: &mut impl HoldStore,
    event: &Event,
) -> Result<(), Inconsistency> {
    let resolution = |e: Resolution| (event.event_type(), e);
    // Worked out before anything changes, so a refusal leaves both untouched.
    let booking = booking(tally, holds, event)?;
    let served = match event {
        Event::StockReserved(e) => match e.waitlist {
            Some(number) => Some(serving(holds, e, number)?),
            None => None,
        },
        _ => None,
    };
    match event {
        Event::SkuRegistered(_) => return Err(Inconsistency::RegisteredTwice),
        Event::StockReserved(e) => apply_reserved(tally, holds, e)?,
        Event::ReservationCommitted(e) => apply_resolution(
            tally,
            holds,
            e.reservation_id,
            e.qty,
            resolution(Resolution::Committed),
        )?,
        Event::ReservationReleased(e) => apply_resolution(
            tally,
            holds,
            e.reservation_id,
            e.qty,
            resolution(Resolution::Released),
        )?,
        Event::ReservationExpired(e) => apply_resolution(
            tally,
            holds,
            e.reservation_id,
            e.qty,
            resolution(Resolution::Expired),
        )?,
        Event::ReservationExtended(e) => apply_extended(holds, e)?,
        Event::ReservationReduced(e) => apply_reduced(tally, holds, e)?,
        Event::ReservationIncreased(e) => apply_increased(tally, holds, e)?,
        Event::StockAdjusted(e) => apply_adjusted(tally, e)?,
        Event::TransferShipped(e) => apply_shipped(tally, e)?,
        Event::TransferReceived(e) => apply_received(tally, e)?,
        Event::BackorderLimitSet(e) => {
            apply_backorder_limit(tally, e)?;
            if !e.limit.is_zero() {
                holds.index_line();
            }
        }
        Event::ReceiptExpected(e) => apply_expected(tally, e)?,
        Event::ReceiptReceived(e) => apply_receipt(tally, e)?,
        Event::ReceiptCancelled(e) => {
            let gone = match &mut tally.pool {
                PoolState::Physical { receipts, .. } => receipts.remove(&e.reference),
                _ => None,
            };
            if gone.is_none_or(|r| r.qty != e.qty) {
                return Err(Inconsistency::Receipts(format!(
                    "receipt {} cancelled with {} units, which is not what it expected",
                    e.reference, e.qty
                )));
            }
        }
        // A fact for readers: what is backordered follows from the holds and the stock.
        Event::BackorderFilled(e) => {
            if holds.hold(&e.reservation_id).is_none() {
                return Err(Inconsistency::NotLive {
                    event_type: event.event_type(),
                    reservation_id: e.reservation_id,
                });
            }
        }
        Event::FairSellingSet(e) => apply_rules(tally, e)?,
        Event::WaitlistJoined(e) => {
            let list = tally.waitlist;
            if e.number != list.next || holds.place_of(&e.customer).is_some() || e.qty.is_zero() {
                return Err(Inconsistency::Waitlist(format!(
                    "place {} for {} does not follow the line (next {})",
                    e.number, e.customer, list.next
                )));
            }
            let units = list.units.checked_add(e.qty)?;
            let waiter = Waiter {
                customer: e.customer.clone(),
                qty: e.qty,
                channel: e.channel.clone(),
                joined_at: e.at,
                hold_id: e.hold_id,
            };
            holds.open_place(e.number, waiter);
            tally.waitlist = WaitlistTally {
                next: e.number.saturating_add(1),
                len: list.len.saturating_add(1),
                units,
            };
        }
        Event::WaitlistLeft(e) => {
            let qty = match holds.place(e.number) {
                Some(w) if w.customer == e.customer => w.qty,
                _ => {
                    return Err(Inconsistency::Waitlist(format!(
                        "{} left place {}, which is not theirs",
                        e.customer, e.number
                    )));
                }
            };
            leave(tally, holds, e.number, qty);
        }
    }
    if let Some((number, qty)) = served {
        leave(tally, holds, number, qty);
    }
    if let Some((customer, account)) = booking {
        holds.set_account(customer, account);
    }
    tally.advance_clock(event.at());
    let window = Duration::from_millis(tally.rules.window_ms);
    holds.prune_accounts(tally.last_event_at.saturating_sub(window));
    Ok(())
}

/// Takes place `number` (of `qty` units) off the waitlist.
fn leave(tally: &mut Tally, holds: &mut impl HoldStore, number: u64, qty: Quantity) {
    holds.close_place(number);
    let list = &mut tally.waitlist;
    list.len = list.len.saturating_sub(1);
    list.units = list.units.saturating_sub(qty);
}

/// Checks that hold `e` serves the first place in line, `number`, as it asked.
fn serving(
    holds: &impl HoldStore,
    e: &StockReserved,
    number: u64,
) -> Result<(u64, Quantity), Inconsistency> {
    match holds.first_place() {
        Some((first, w))
            if first == number
                && Some(&w.customer) == e.customer.as_ref()
                && w.qty == e.qty
                && w.hold_id == e.reservation_id =>
        {
            Ok((number, w.qty))
        }
        _ => Err(Inconsistency::Waitlist(format!(
            "hold {} serves place {number}, which is not first in line for it",
            e.reservation_id
        ))),
    }
}

/// The account of the customer `event` changes, as it is after the event: units newly
/// held add, units ended leave, units sold while a purchase limit is set are recorded (and
/// those out of its window dropped). `None` when the event names no customer's hold.
fn booking(
    tally: &Tally,
    holds: &impl HoldStore,
    event: &Event,
) -> Result<Option<(CustomerId, Account)>, Inconsistency> {
    let (customer, added, ended, sold) = match event {
        Event::StockReserved(e) => (e.customer.clone(), e.qty, Quantity::ZERO, false),
        Event::ReservationIncreased(e) => (
            holds.tags(&e.reservation_id).customer,
            e.qty,
            Quantity::ZERO,
            false,
        ),
        Event::ReservationCommitted(e) => (
            holds.tags(&e.reservation_id).customer,
            Quantity::ZERO,
            e.qty,
            true,
        ),
        Event::ReservationReleased(ReservationReleased {
            reservation_id,
            qty,
            ..
        })
        | Event::ReservationExpired(ReservationExpired {
            reservation_id,
            qty,
            ..
        }) => (
            holds.tags(reservation_id).customer,
            Quantity::ZERO,
            *qty,
            false,
        ),
        Event::ReservationReduced(e) => (
            holds.tags(&e.reservation_id).customer,
            Quantity::ZERO,
            e.qty,
            e.outcome == Resolution::Committed,
        ),
        _ => return Ok(None),
    };
    let Some(customer) = customer else {
        return Ok(None);
    };
    let mut account = holds.account(&customer).unwrap_or_default();
    account.live = account.live.checked_add(added)?.checked_sub(ended)?;
    if sold && tally.rules.per_customer.is_some() {
        let at = event.at().max(tally.last_event_at);
        let since = at.saturating_sub(Duration::from_millis(tally.rules.window_ms));
        account.sales.retain(|(t, _)| *t > since);
        account.sales.push((at, ended));
    }
    Ok(Some((customer, account)))
}

fn apply_rules(tally: &mut Tally, e: &FairSellingSet) -> Result<(), Inconsistency> {
    if e.waitlist_hold_ms == 0 || e.per_customer.is_some_and(Quantity::is_zero) {
        return Err(Inconsistency::Waitlist(
            "fair-selling rules with a zero limit or hold".into(),
        ));
    }
    tally.rules = Rules {
        per_customer: e.per_customer,
        window_ms: e.window_ms,
        hold_ms: e.waitlist_hold_ms,
    };
    Ok(())
}

/// Where a hold recorded with `parts` is: its one site, or [`SPLIT`] and its parts.
/// A physical SKU at one location records no parts; at several, always some.
fn site_of_parts(
    tally: &Tally,
    qty: Quantity,
    parts: &[Part],
) -> Result<(u32, Option<Split>), Inconsistency> {
    let (site, parts) = sites_of_parts(tally, qty, parts)?;
    Ok(match parts.as_slice() {
        [_] | [] => (site, None),
        _ => (SPLIT, Some(parts.into_boxed_slice())),
    })
}

/// `qty` units recorded at `parts`, by site: (the one site or [`SPLIT`], each site's
/// units). Validated as [`site_of_parts`] says.
fn sites_of_parts(
    tally: &Tally,
    qty: Quantity,
    parts: &[Part],
) -> Result<(u32, Vec<(u32, Quantity)>), Inconsistency> {
    let bad = |why: String| Err(Inconsistency::Locations(why));
    let PoolState::Physical { places, .. } = &tally.pool else {
        return if parts.is_empty() {
            Ok((0, vec![(0, qty)]))
        } else {
            bad(format!("a {} SKU has no locations", tally.pool_kind()))
        };
    };
    if parts.is_empty() {
        return if places.len() == 1 {
            Ok((0, vec![(0, qty)]))
        } else {
            bad("a hold at a SKU with several locations must say where its units are".into())
        };
    }
    let mut split: Vec<(u32, Quantity)> = Vec::with_capacity(parts.len());
    let mut total = Quantity::ZERO;
    for part in parts {
        let Some(site) = site_index(places, &part.location) else {
            return bad(format!(
                "location {} is not one of the SKU's",
                part.location
            ));
        };
        if part.qty.is_zero() || split.iter().any(|(s, _)| *s == site) {
            return bad(format!(
                "location {} is a part twice or with 0 units",
                part.location
            ));
        }
        total = total.checked_add(part.qty)?;
        split.push((site, part.qty));
    }
    if total != qty {
        return bad(format!("parts sum to {total}, the hold is {qty}"));
    }
    Ok(match split.as_slice() {
        [(site, _)] => (*site, split),
        _ => (SPLIT, split),
    })
}

fn site_index(places: &[Place], location: &LocationId) -> Option<u32> {
    places
        .iter()
        .position(|p| &p.id == location)
        .and_then(|i| u32::try_from(i).ok())
}

/// Adds (`give` false) or gives back (`give` true) a hold's parts to the sites' `reserved`,
/// and on a sale takes them from `on_hand` too. All or nothing: on error, nothing changed.
/// A hold's parts name distinct sites, so each can be checked on its own before any
/// changes (no copy of the figures on this path: it runs for every hold).
fn move_parts(
    tally: &mut Tally,
    parts: impl Iterator<Item = (u32, Quantity)> + Clone,
    give: bool,
    sold: bool,
) -> Result<(), Inconsistency> {
    let PoolState::Physical { on_hand, sites, .. } = &mut tally.pool else {
        return Ok(());
    };
    let mut total = *on_hand;
    for (site, qty) in parts.clone() {
        let Some(s) = sites.get(site as usize) else {
            return Err(Inconsistency::Locations(format!("no location #{site}")));
        };
        if give {
            s.reserved.checked_sub(qty)?;
        } else {
            s.reserved.checked_add(qty)?;
        }
        if sold {
            s.on_hand.checked_sub(qty)?;
            total = total.checked_sub(qty)?;
        }
    }
    for (site, qty) in parts {
        if let Some(s) = sites.get_mut(site as usize) {
            s.reserved = if give {
                s.reserved.saturating_sub(qty)
            } else {
                // Checked in the first pass.
                s.reserved.checked_add(qty).unwrap_or(s.reserved)
            };
            if sold {
                s.on_hand = s.on_hand.saturating_sub(qty);
            }
        }
    }
    *on_hand = total;
    Ok(())
}

fn apply_reserved(
    tally: &mut Tally,
    holds: &mut impl HoldStore,
    e: &StockReserved,
) -> Result<(), Inconsistency> {
    if let PoolState::Kit { .. } = tally.pool {
        return Err(Inconsistency::NotHoldable(PoolKind::Kit));
    }
    if holds.hold(&e.reservation_id).is_some() {
        return Err(Inconsistency::DuplicateReservation(e.reservation_id));
    }
    let reserved = tally.reserved.checked_add(e.qty)?;
    let (site, split) = site_of_parts(tally, e.qty, &e.parts)?;
    let placed = Hold {
        qty: e.qty,
        reserved_at: e.at,
        expires_at: e.expires_at,
        seq: tally.next_seq,
        site,
    };
    let period = tally.period_of(e.at);
    if let (PoolState::PrintOnDemand { periods, .. }, Some(p)) = (&mut tally.pool, period) {
        let usage = periods.get(&p).copied().unwrap_or_default();
        let usage = PeriodUsage {
            reserved: usage.reserved.checked_add(e.qty)?,
            ..usage
        };
        periods.insert(p, usage);
    }
    // Locations and periods never both apply: at most one of the two changed anything.
    move_parts(tally, parts_iter(&placed, split.as_ref()), false, false)?;
    tally.reserved = reserved;
    let tags = Tags {
        order: e.order_id.clone(),
        customer: e.customer.clone(),
    };
    holds.insert(e.reservation_id, placed, tags, split);
    tally.next_seq = tally.next_seq.saturating_add(1);
    Ok(())
}

fn apply_resolution(
    tally: &mut Tally,
    holds: &mut impl HoldStore,
    id: ReservationId,
    qty: Quantity,
    (event_type, resolution): (&'static str, Resolution),
) -> Result<(), Inconsistency> {
    let Some(r) = holds.hold(&id) else {
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
    let split = if r.site == SPLIT {
        holds.split(&id)
    } else {
        None
    };
    // Back to (or, sold, out of) exactly the locations the hold took from.
    end_units(
        tally,
        &r,
        parts_iter(&r, split.as_ref()),
        qty,
        resolution == Resolution::Committed,
    )?;
    holds.remove(&id);
    Ok(())
}

/// Ends `qty` of hold `r`'s units, at `parts`: they leave `reserved` (and its period's and
/// locations' counts) and, `committed`, count as sold. All or nothing: on error, nothing
/// changed.
fn end_units(
    tally: &mut Tally,
    r: &Hold,
    parts: impl Iterator<Item = (u32, Quantity)> + Clone,
    qty: Quantity,
    committed: bool,
) -> Result<(), Inconsistency> {
    let reserved = tally.reserved.checked_sub(qty)?;
    let period = tally.period_of(r.reserved_at);
    // Compute the pool's new values first; assign only once nothing can fail.
    match &mut tally.pool {
        PoolState::Physical { .. } => move_parts(tally, parts, true, committed)?,
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
        }
        | PoolState::Kit { .. } => {}
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
    tally.reserved = reserved;
    Ok(())
}

/// Hold `id` as the store has it, or why an event about it cannot apply.
fn live_hold(
    holds: &impl HoldStore,
    event_type: &'static str,
    id: ReservationId,
) -> Result<(Hold, Option<Split>), Inconsistency> {
    let Some(hold) = holds.hold(&id) else {
        return Err(Inconsistency::NotLive {
            event_type,
            reservation_id: id,
        });
    };
    let split = if hold.site == SPLIT {
        holds.split(&id)
    } else {
        None
    };
    Ok((hold, split))
}

/// Puts `hold`'s changed record in place of its old one, keeping its order.
fn replace_hold(holds: &mut impl HoldStore, id: ReservationId, hold: Hold, split: Option<Split>) {
    let tags = holds.tags(&id);
    holds.remove(&id);
    holds.insert(id, hold, tags, split);
}

fn apply_extended(
    holds: &mut impl HoldStore,
    e: &ReservationExtended,
) -> Result<(), Inconsistency> {
    let (hold, split) = live_hold(holds, "ReservationExtended", e.reservation_id)?;
    if hold.expires_at != e.previous_expires_at || e.expires_at <= hold.expires_at {
        return Err(Inconsistency::HoldMismatch {
            event_type: "ReservationExtended",
            reservation_id: e.reservation_id,
            why: format!(
                "it expires at {}, the event moves it from {} to {}",
                hold.expires_at, e.previous_expires_at, e.expires_at
            ),
        });
    }
    let extended = Hold {
        expires_at: e.expires_at,
        ..hold
    };
    replace_hold(holds, e.reservation_id, extended, split);
    Ok(())
}

fn apply_reduced(
    tally: &mut Tally,
    holds: &mut impl HoldStore,
    e: &ReservationReduced,
) -> Result<(), Inconsistency> {
    const TYPE: &str = "ReservationReduced";
    let (hold, split) = live_hold(holds, TYPE, e.reservation_id)?;
    let mismatch = |why: String| Inconsistency::HoldMismatch {
        event_type: TYPE,
        reservation_id: e.reservation_id,
        why,
    };
    if e.qty.is_zero()
        || e.remaining.is_zero()
        || e.qty.checked_add(e.remaining).ok() != Some(hold.qty)
        || e.outcome == Resolution::Expired
    {
        return Err(mismatch(format!(
            "it holds {}; the event ends {} ({}) and leaves {}",
            hold.qty, e.qty, e.outcome, e.remaining
        )));
    }
    let held: Vec<(u32, Quantity)> = parts_iter(&hold, split.as_ref()).collect();
    let taken: Vec<(u32, Quantity)> = match &tally.pool {
        PoolState::Physical { places, .. } if places.len() > 1 => {
            let (_, parts) = sites_of_parts(tally, e.qty, &e.parts)?;
            parts
        }
        _ if e.parts.is_empty() => vec![(hold.site, e.qty)],
        _ => return Err(mismatch("parts at a SKU with one location".into())),
    };
    let mut left = held.clone();
    for (site, qty) in &taken {
        let Some(slot) = left.iter_mut().find(|(s, _)| s == site) else {
            return Err(mismatch(format!("it holds nothing at location #{site}")));
        };
        slot.1 = slot.1.checked_sub(*qty)?;
    }
    left.retain(|(_, qty)| !qty.is_zero());
    end_units(
        tally,
        &hold,
        taken.iter().copied(),
        e.qty,
        e.outcome == Resolution::Committed,
    )?;
    let (site, split) = placed(left);
    let reduced = Hold {
        qty: e.remaining,
        site,
        ..hold
    };
    replace_hold(holds, e.reservation_id, reduced, split);
    Ok(())
}

fn apply_increased(
    tally: &mut Tally,
    holds: &mut impl HoldStore,
    e: &ReservationIncreased,
) -> Result<(), Inconsistency> {
    const TYPE: &str = "ReservationIncreased";
    let (hold, split) = live_hold(holds, TYPE, e.reservation_id)?;
    if e.qty.is_zero() || hold.qty.checked_add(e.qty).ok() != Some(e.total) {
        return Err(Inconsistency::HoldMismatch {
            event_type: TYPE,
            reservation_id: e.reservation_id,
            why: format!(
                "it holds {}; the event adds {} to {}",
                hold.qty, e.qty, e.total
            ),
        });
    }
    if let PoolState::Kit { .. } = tally.pool {
        return Err(Inconsistency::NotHoldable(PoolKind::Kit));
    }
    let reserved = tally.reserved.checked_add(e.qty)?;
    let (_, added) = sites_of_parts(tally, e.qty, &e.parts)?;
    let period = tally.period_of(hold.reserved_at);
    if let (PoolState::PrintOnDemand { periods, .. }, Some(p)) = (&mut tally.pool, period)
        && let Some(usage) = periods.get_mut(&p)
    {
        usage.reserved = usage.reserved.checked_add(e.qty)?;
    }
    // Locations and periods never both apply: at most one of the two changed anything.
    move_parts(tally, added.iter().copied(), false, false)?;
    tally.reserved = reserved;
    let mut all: Vec<(u32, Quantity)> = parts_iter(&hold, split.as_ref()).collect();
    for (site, qty) in added {
        match all.iter_mut().find(|(s, _)| *s == site) {
            // Bounded by `reserved`, checked above.
            Some(slot) => slot.1 = slot.1.checked_add(qty).unwrap_or(slot.1),
            None => all.push((site, qty)),
        }
    }
    let (site, split) = placed(all);
    let grown = Hold {
        qty: e.total,
        site,
        ..hold
    };
    replace_hold(holds, e.reservation_id, grown, split);
    Ok(())
}

/// A hold's record of where it is, from its parts by site: one site, or split.
fn placed(parts: Vec<(u32, Quantity)>) -> (u32, Option<Split>) {
    match parts.as_slice() {
        [(site, _)] => (*site, None),
        [] => (0, None),
        _ => (SPLIT, Some(parts.into_boxed_slice())),
    }
}

fn apply_adjusted(tally: &mut Tally, e: &StockAdjusted) -> Result<(), Inconsistency> {
    let kind = tally.pool_kind();
    if let PoolState::Physical {
        on_hand,
        places,
        sites,
        ..
    } = &mut tally.pool
    {
        let site = match &e.location {
            Some(location) => site_index(places, location),
            None if places.len() == 1 => Some(0),
            None => None,
        };
        let Some(site) = site.and_then(|i| sites.get_mut(i as usize)) else {
            return Err(Inconsistency::Locations(match &e.location {
                Some(l) => format!("adjustment at {l}, which is not one of the SKU's locations"),
                None => "adjustment without a location at a SKU with several".into(),
            }));
        };
        if site.on_hand != e.previous {
            return Err(Inconsistency::PreviousMismatch {
                recorded: e.previous,
                actual: site.on_hand,
            });
        }
        let total = on_hand.saturating_sub(e.previous).checked_add(e.current)?;
        site.on_hand = e.current;
        *on_hand = total;
        return Ok(());
    }
    if let Some(location) = &e.location {
        return Err(Inconsistency::Locations(format!(
            "adjustment at {location} of a {kind} SKU, which has no locations"
        )));
    }
    let limit = match &mut tally.pool {
        PoolState::Physical { on_hand, .. } => on_hand,
        PoolState::Digital {
            license_limit: Some(limit),
            ..
        } => limit,
        PoolState::PrintOnDemand { capacity, .. } => capacity,
        PoolState::Digital {
            license_limit: None,
            ..
        }
        | PoolState::Kit { .. } => return Err(Inconsistency::AdjustmentNotApplicable(kind)),
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

fn apply_shipped(tally: &mut Tally, e: &TransferShipped) -> Result<(), Inconsistency> {
    let bad = |why: String| Err(Inconsistency::Locations(why));
    let PoolState::Physical {
        on_hand,
        places,
        sites,
        transfers,
        ..
    } = &mut tally.pool
    else {
        return bad("a transfer at a SKU without locations".into());
    };
    let (Some(from), Some(to)) = (site_index(places, &e.from), site_index(places, &e.to)) else {
        return bad(format!(
            "transfer {} between unknown locations",
            e.transfer_id
        ));
    };
    if from == to || e.qty.is_zero() || transfers.contains_key(&e.transfer_id) {
        return bad(format!(
            "transfer {} shipped twice, to its origin, or empty",
            e.transfer_id
        ));
    }
    let (f, t) = (sites[from as usize], sites[to as usize]);
    let left = f.on_hand.checked_sub(e.qty)?;
    let incoming = t.incoming.checked_add(e.qty)?;
    let total = on_hand.checked_sub(e.qty)?;
    sites[from as usize].on_hand = left;
    sites[to as usize].incoming = incoming;
    *on_hand = total;
    transfers.insert(
        e.transfer_id.clone(),
        InTransit {
            from,
            to,
            qty: e.qty,
        },
    );
    Ok(())
}

fn apply_received(tally: &mut Tally, e: &TransferReceived) -> Result<(), Inconsistency> {
    let PoolState::Physical {
        on_hand,
        places,
        sites,
        transfers,
        ..
    } = &mut tally.pool
    else {
        return Err(Inconsistency::Locations(
            "a transfer at a SKU without locations".into(),
        ));
    };
    let Some(t) = transfers.get(&e.transfer_id).copied() else {
        return Err(Inconsistency::Locations(format!(
            "transfer {} received but not in transit",
            e.transfer_id
        )));
    };
    if site_index(places, &e.to) != Some(t.to) || t.qty != e.qty {
        return Err(Inconsistency::Locations(format!(
            "transfer {} received at {} with {} units; it was shipped there with {}",
            e.transfer_id, e.to, e.qty, t.qty
        )));
    }
    let site = sites[t.to as usize];
    let here = site.on_hand.checked_add(t.qty)?;
    let incoming = site.incoming.checked_sub(t.qty)?;
    let total = on_hand.checked_add(t.qty)?;
    sites[t.to as usize].on_hand = here;
    sites[t.to as usize].incoming = incoming;
    *on_hand = total;
    transfers.remove(&e.transfer_id);
    Ok(())
}

fn apply_backorder_limit(tally: &mut Tally, e: &BackorderLimitSet) -> Result<(), Inconsistency> {
    let PoolState::Physical { places, sites, .. } = &mut tally.pool else {
        return Err(Inconsistency::Receipts(
            "a backorder limit at a SKU without stock on hand".into(),
        ));
    };
    let site = match &e.location {
        Some(location) => site_index(places, location),
        None if sites.len() == 1 => Some(0),
        None => None,
    };
    let Some(site) = site.and_then(|i| sites.get_mut(i as usize)) else {
        return Err(Inconsistency::Receipts(
            "a backorder limit at no location of the SKU's".into(),
        ));
    };
    if site.backorder_limit != e.previous {
        return Err(Inconsistency::Receipts(format!(
            "backorder limit set from {}; it was {}",
            e.previous, site.backorder_limit
        )));
    }
    site.backorder_limit = e.limit.in_range()?;
    Ok(())
}

fn apply_expected(tally: &mut Tally, e: &ReceiptExpected) -> Result<(), Inconsistency> {
    let PoolState::Physical {
        places, receipts, ..
    } = &mut tally.pool
    else {
        return Err(Inconsistency::Receipts(
            "a receipt at a SKU without stock on hand".into(),
        ));
    };
    let site = site_index(places, &e.location);
    let Some(site) = site.filter(|_| !e.qty.is_zero() && !receipts.contains_key(&e.reference))
    else {
        return Err(Inconsistency::Receipts(format!(
            "receipt {} expected twice, empty, or at an unknown location",
            e.reference
        )));
    };
    receipts.insert(
        e.reference.clone(),
        Incoming {
            site,
            qty: e.qty.in_range()?,
            eta: e.eta,
        },
    );
    Ok(())
}

fn apply_receipt(tally: &mut Tally, e: &ReceiptReceived) -> Result<(), Inconsistency> {
    let PoolState::Physical {
        on_hand,
        places,
        sites,
        receipts,
        ..
    } = &mut tally.pool
    else {
        return Err(Inconsistency::Receipts(
            "a receipt at a SKU without stock on hand".into(),
        ));
    };
    let Some(expected) = receipts.get(&e.reference).copied() else {
        return Err(Inconsistency::Receipts(format!(
            "receipt {} received but not expected",
            e.reference
        )));
    };
    if site_index(places, &e.location) != Some(expected.site)
        || expected.qty.saturating_sub(e.qty) != e.remaining
        || e.qty.is_zero()
    {
        return Err(Inconsistency::Receipts(format!(
            "receipt {} received with {} units at {}, leaving {}; it expected {}",
            e.reference, e.qty, e.location, e.remaining, expected.qty
        )));
    }
    let Some(site) = sites.get_mut(expected.site as usize) else {
        return Err(Inconsistency::Receipts(format!(
            "receipt {} at a location the SKU does not have",
            e.reference
        )));
    };
    let here = site.on_hand.checked_add(e.qty)?.in_range()?;
    let total = on_hand.checked_add(e.qty)?.in_range()?;
    site.on_hand = here;
    *on_hand = total;
    if e.remaining.is_zero() {
        receipts.remove(&e.reference);
    } else if let Some(r) = receipts.get_mut(&e.reference) {
        r.qty = e.remaining;
    }
    Ok(())
}

/// One side of a SKU's stock, read-only: the applied side, or the speculative one.
#[derive(Clone, Copy)]
pub struct StockRef<'a> {
    sku: &'a Sku,
    tally: &'a Tally,
    holds: HoldsView<'a>,
}

impl std::fmt::Debug for StockRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StockRef")
            .field("sku", self.sku)
            .field("live", &self.holds.len())
            .finish_non_exhaustive()
    }
}

impl<'a> StockRef<'a> {
    pub fn sku(self) -> &'a Sku {
        self.sku
    }

    pub fn pool_kind(self) -> PoolKind {
        self.tally.pool_kind()
    }

    /// The live reservation `id`, lapsed or not.
    pub fn reservation(self, id: &ReservationId) -> Option<Reservation> {
        self.holds.get(id).map(|h| h.with_id(*id))
    }

    /// The order live reservation `id` was made for, if it names one.
    pub fn order_of(self, id: &ReservationId) -> Option<&'a OrderId> {
        self.holds.order(id)
    }

    /// The customer live reservation `id` was made for, if it names one.
    pub fn customer_of(self, id: &ReservationId) -> Option<&'a CustomerId> {
        self.holds.customer(id)
    }

    /// The purchase limit: units per customer, over what window. `None`: no limit.
    pub fn purchase_limit(self) -> Option<(Quantity, Duration)> {
        let rules = self.tally.rules;
        rules
            .per_customer
            .map(|limit| (limit, Duration::from_millis(rules.window_ms)))
    }

    /// How long a waitlist place's hold lasts.
    pub fn waitlist_hold(self) -> Duration {
        Duration::from_millis(self.tally.rules.hold_ms)
    }

    /// What counts against `customer`'s purchase limit at `now`: units in their live
    /// holds (lapsed ones until their expiry is written) and units bought inside the window.
    pub fn counted(self, customer: &CustomerId, now: Timestamp) -> Quantity {
        let since = now.saturating_sub(Duration::from_millis(self.tally.rules.window_ms));
        self.holds
            .account(customer)
            .map_or(Quantity::ZERO, |a| a.counted(since))
    }

    /// Customer accounts kept (live holders, and buyers inside the limit's window): part
    /// of the state's size, as the holds are.
    pub fn account_count(self) -> usize {
        self.holds.base.accounts.len()
    }

    /// Places on the waitlist, and the units they wait for.
    pub fn waitlist_len(self) -> (usize, Quantity) {
        let list = &self.tally.waitlist;
        (usize::try_from(list.len).unwrap_or(usize::MAX), list.units)
    }

    /// The number the next place to join gets.
    pub fn waitlist_next(self) -> u64 {
        self.tally.waitlist.next
    }

    /// `customer`'s place on the waitlist. Its position is counted from the nearer end of
    /// the line (by place numbers, which only grow): a place that just joined, as every
    /// join's answer asks, costs the few places behind it, not the whole line ahead.
    pub fn waitlist_place(self, customer: &CustomerId) -> Option<WaitlistPlace> {
        let number = self.holds.place_of(customer)?;
        let waiter = self.holds.place(number)?;
        let first = self.holds.first_place().map_or(number, |(n, _)| n);
        let last = self.tally.waitlist.next.saturating_sub(1);
        let (position, units) = if number.saturating_sub(first) <= last.saturating_sub(number) {
            let (mut position, mut units) = (1u64, Quantity::ZERO);
            for (_, w) in self.holds.places().take_while(|(n, _)| *n < number) {
                position = position.saturating_add(1);
                units = units.saturating_add(w.qty);
            }
            (position, units)
        } else {
            let (mut behind, mut units_behind) = (0u64, Quantity::ZERO);
            for (_, w) in self.holds.places_from(number.saturating_add(1)) {
                behind = behind.saturating_add(1);
                units_behind = units_behind.saturating_add(w.qty);
            }
            let list = &self.tally.waitlist;
            (
                list.len.saturating_sub(behind),
                list.units
                    .saturating_sub(units_behind)
                    .saturating_sub(waiter.qty),
            )
        };
        Some(place_view(number, waiter, position, units))
    }

    /// Up to `max` places, first in line first.
    pub fn waitlist(self, max: usize) -> Vec<WaitlistPlace> {
        self.line().take(max).collect()
    }

    /// The open places, first in line first, each made as it is reached: a decision that
    /// stops at the first place it cannot serve pays for no more.
    pub fn line(self) -> impl Iterator<Item = WaitlistPlace> + 'a {
        let mut ahead = Quantity::ZERO;
        self.holds
            .places()
            .zip(1u64..)
            .map(move |((number, w), position)| {
                let place = place_view(number, w, position, ahead);
                ahead = ahead.saturating_add(w.qty);
                place
            })
    }

    /// Reservations not yet resolved (lapsed ones included until their expiry is written).
    pub fn live_count(self) -> usize {
        self.holds.len()
    }

    pub fn live_reservations(self) -> impl Iterator<Item = Reservation> + 'a {
        self.holds.iter().map(|(id, h)| h.with_id(id))
    }

    /// The instant of the latest event. Decisions never happen before it (see `decide`).
    pub fn last_event_at(self) -> Timestamp {
        self.tally.last_event_at
    }

    /// Units held by all live reservations, lapsed ones included.
    pub fn reserved_total(self) -> Quantity {
        self.tally.reserved
    }

    /// The earliest expiry among live reservations: when the expiry timer should fire next.
    pub fn next_expiry(self) -> Option<(Timestamp, ReservationId)> {
        self.holds.by_expiry(..).next()
    }

    /// A bound on [`StockRef::next_expiry`] that costs two lookups: never later than it.
    /// A timer armed at or before this is early enough for every live hold.
    pub fn next_expiry_bound(self) -> Option<Timestamp> {
        self.holds.earliest_expiry_bound()
    }

    /// Reservations lapsed at `now` whose `ReservationExpired` is not yet written.
    pub fn lapsed(self, now: Timestamp) -> impl Iterator<Item = Reservation> + 'a {
        // Every id sorts at or below the largest: the range ends with `now`'s last hold.
        let lapsed = ..=(now, ReservationId::from_uuid(uuid::Uuid::max()));
        self.holds
            .by_expiry(lapsed)
            .filter_map(move |(_, id)| self.reservation(&id))
    }

    /// The limit adjustments change: on hand, license limit or capacity.
    /// `None` for an unlimited digital pool, which has nothing to adjust.
    pub fn limit(self) -> Option<Quantity> {
        self.tally.limit()
    }

    /// The print-on-demand period `at` falls in; `None` for other pools.
    pub fn period_of(self, at: Timestamp) -> Option<u64> {
        self.tally.period_of(at)
    }

    /// Where `qty` of live hold `id`'s units are taken from when part of it ends: its last
    /// parts first. Empty at a SKU with fewer than two locations (its one location).
    pub fn parts_to_end(self, id: &ReservationId, qty: Quantity) -> Vec<Part> {
        let PoolState::Physical { places, .. } = &self.tally.pool else {
            return Vec::new();
        };
        let Some(hold) = self.holds.get(id).filter(|_| places.len() > 1) else {
            return Vec::new();
        };
        let held: Vec<(u32, Quantity)> = self.parts(id, &hold).collect();
        let mut left = qty;
        let mut parts = Vec::new();
        for (site, units) in held.into_iter().rev() {
            if left.is_zero() {
                break;
            }
            let take = units.min(left);
            left = left.saturating_sub(take);
            if let Some(place) = places.get(site as usize) {
                parts.push(Part {
                    location: place.id.clone(),
                    qty: take,
                });
            }
        }
        parts
    }

    /// Whether reservation `r` counts against the capacity that matters at `now`: every
    /// live unlapsed one, except in print on demand, only those of `now`'s period.
    fn counts_at(self, r: &Reservation, now: Timestamp) -> bool {
        r.expires_at > now
            && match self.period_of(now) {
                Some(period) => self.period_of(r.reserved_at) == Some(period),
                None => true,
            }
    }

    /// (units held by counting reservations, units sold that still count) at `now`.
    fn used(self, now: Timestamp) -> (Quantity, Quantity) {
        self.tally
            .used(now, self.lapsed(now).map(|r| (r.reserved_at, r.qty)))
    }

    /// The parts of live hold `id` (`hold` is its record), by site index.
    fn parts(self, id: &ReservationId, hold: &Hold) -> PartsIter<'a> {
        let split = if hold.site == SPLIT {
            self.holds.split(id)
        } else {
            None
        };
        parts_iter(hold, split)
    }

    /// Units held at each location at `now`, lapsed holds left out; `None` for a SKU at
    /// fewer than two locations (the totals say it).
    fn held_by_site(self, now: Timestamp) -> Option<Vec<Quantity>> {
        match &self.tally.pool {
            PoolState::Physical { sites, .. } if sites.len() > 1 => {}
            _ => return None,
        }
        let lapsed = ..=(now, ReservationId::from_uuid(uuid::Uuid::max()));
        let parts = self.holds.by_expiry(lapsed).flat_map(move |(_, id)| {
            let hold = self.holds.get(&id);
            hold.map(|h| self.parts(&id, &h).collect::<Vec<_>>())
                .unwrap_or_default()
        });
        self.tally.held_by_site(parts)
    }

    /// What may still be reserved at `now`.
    pub fn available(self, now: Timestamp) -> Availability {
        let by_site = self.held_by_site(now);
        self.tally
            .available_given(self.used(now), by_site.as_deref())
    }

    /// Units promised beyond what exists at `now` (safety stock is a buffer, not a promise).
    /// At a SKU with several locations, the sum of each location's.
    pub fn shortfall(self, now: Timestamp) -> Quantity {
        match self.limit() {
            None => Quantity::ZERO,
            Some(_) => {
                let by_site = self.held_by_site(now);
                self.tally
                    .shortfall_given(self.used(now), by_site.as_deref())
            }
        }
    }

    /// Each location's figures at `now`; empty for a pool without locations. A SKU
    /// registered without locations has one, `default`.
    pub fn locations(self, now: Timestamp) -> Vec<LocationView> {
        let by_site = self.held_by_site(now);
        let (held, _) = self.used(now);
        self.tally.locations(held, by_site.as_deref())
    }

    /// How many locations the SKU is stocked at (0 for a pool without locations).
    pub fn location_count(self) -> usize {
        match &self.tally.pool {
            PoolState::Physical { places, .. } => places.len(),
            _ => 0,
        }
    }

    /// What each location can offer at `now`, for [`allocate`](crate::allocation::allocate),
    /// with each location's shortfall. Borrows the ids: this runs for every line decided
    /// at a SKU with several locations, and copies nothing but figures.
    pub fn offers(self, now: Timestamp) -> Vec<(LocationStock<'a>, Quantity)> {
        let PoolState::Physical { places, sites, .. } = &self.tally.pool else {
            return Vec::new();
        };
        let by_site = self.held_by_site(now);
        let (held, _) = match by_site {
            Some(_) => (Quantity::ZERO, Quantity::ZERO),
            None => self.used(now),
        };
        places
            .iter()
            .zip(sites)
            .enumerate()
            .map(|(i, (place, site))| {
                let held = by_site
                    .as_ref()
                    .and_then(|b| b.get(i).copied())
                    .unwrap_or(held);
                let offer = LocationStock {
                    location: &place.id,
                    available: site.offer(held),
                    priority: place.priority,
                };
                (offer, site.shortfall(held))
            })
            .collect()
    }

    /// Units that may be held beyond on hand, as backorders.
    pub fn backorder_limit(self) -> Quantity {
        self.tally.backorder_limit()
    }

    /// The open receipt `reference`: (location, units still expected, expected arrival).
    pub fn receipt(self, reference: &ReceiptRef) -> Option<(LocationId, Quantity, Timestamp)> {
        let PoolState::Physical {
            places, receipts, ..
        } = &self.tally.pool
        else {
            return None;
        };
        let r = receipts.get(reference)?;
        let place = places.get(r.site as usize)?;
        Some((place.id.clone(), r.qty, r.eta))
    }

    /// The open receipts, earliest expected first.
    pub fn receipts(self) -> Vec<ReceiptView> {
        self.tally.receipt_views()
    }

    /// How many receipts are open.
    pub fn receipts_open(self) -> usize {
        match &self.tally.pool {
            PoolState::Physical { receipts, .. } => receipts.len(),
            _ => 0,
        }
    }

    /// The live holds with units beyond on hand, in line order, and how many of each:
    /// at each location that takes backorders, holds are covered oldest first, so the
    /// latest wait there (first in, first filled). Lapsed holds keep their place until
    /// their expiry is written, which fills those behind. Empty unless some such
    /// location holds more than it has on hand.
    pub fn backorders(self) -> Vec<(ReservationId, Quantity)> {
        self.backorders_given(&[], &[])
    }

    /// Each location's `(on hand, backorder limit, units held)`, by site index.
    fn site_lines(self) -> Vec<(Quantity, Quantity, Quantity)> {
        let PoolState::Physical { sites, .. } = &self.tally.pool else {
            return Vec::new();
        };
        match sites.as_slice() {
            // One location: the SKU's total is its figure.
            [one] => vec![(one.on_hand, one.backorder_limit, self.tally.reserved)],
            many => many
                .iter()
                .map(|s| (s.on_hand, s.backorder_limit, s.reserved))
                .collect(),
        }
    }

    /// Whether some location that takes backorders holds more than it has.
    fn any_waiting(self) -> bool {
        self.site_lines()
            .iter()
            .any(|(on_hand, limit, held)| !limit.is_zero() && held > on_hand)
    }

    /// The units of hold `id` waiting for stock. One pass over the holds, no sort (and
    /// none while nothing waits).
    pub fn backordered_of(self, id: &ReservationId) -> Quantity {
        self.place_in_line(id)
            .map_or(Quantity::ZERO, |(_, waiting)| waiting)
    }

    /// Where hold `id` is in line at each location where part of it waits: `(site, units
    /// beyond on hand there up to and including its own)`, and its units waiting in all;
    /// `None` unless it is live and some of it waits.
    fn place_in_line(self, id: &ReservationId) -> Option<(Vec<(u32, u128)>, Quantity)> {
        if !self.any_waiting() {
            return None;
        }
        let hold = self.holds.get(id)?;
        let lines = self.site_lines();
        let newest = hold.seq.saturating_add(1) == self.tally.next_seq;
        let mut ends = Vec::new();
        let mut waiting = 0u128;
        for (site, part) in self.parts(id, &hold).collect::<Vec<_>>() {
            let Some(&(on_hand, limit, held)) = lines.get(site as usize) else {
                continue;
            };
            if limit.is_zero() || held <= on_hand {
                continue;
            }
            // The newest hold ends the line: what is beyond on hand is all behind nobody.
            let through: u128 = if newest {
                u128::from(held.get())
            } else {
                self.holds
                    .iter()
                    .filter(|(_, h)| h.seq <= hold.seq)
                    .filter_map(|(other, h)| self.parts(&other, &h).find(|(s, _)| *s == site))
                    .map(|(_, q)| u128::from(q.get()))
                    .sum()
            };
            let beyond = through.saturating_sub(u128::from(on_hand.get()));
            let here = beyond.min(u128::from(part.get()));
            if here > 0 {
                waiting += here;
                ends.push((site, beyond));
            }
        }
        (waiting > 0).then(|| (ends, Quantity::new(u64::try_from(waiting).unwrap_or(0))))
    }

    /// When hold `id`'s backordered units are expected: the arrival of the receipt that
    /// brings the last of them, given that open receipts fill each location's line in
    /// order of arrival. `None` when it has none backordered, or the receipts do not cover
    /// them.
    pub fn backorder_eta(self, id: &ReservationId) -> Option<Timestamp> {
        self.backorder_of(id).1
    }

    /// What hold `id` waits for, as [`Self::backordered_of`] and [`Self::backorder_eta`]
    /// answer, in one pass.
    pub fn backorder_of(self, id: &ReservationId) -> (Quantity, Option<Timestamp>) {
        match self.place_in_line(id) {
            Some((ends, waiting)) => {
                let mut latest = None;
                for (site, end) in ends {
                    // Every location must bring its part: the latest of them.
                    let Some(eta) = self.eta_of(site, end) else {
                        return (waiting, None);
                    };
                    latest = Some(latest.map_or(eta, |l: Timestamp| l.max(eta)));
                }
                (waiting, latest)
            }
            None => (Quantity::ZERO, None),
        }
    }

    /// The arrival of the receipt that brings the `end`th unit beyond on hand at `site`,
    /// its receipts filling the line earliest first.
    fn eta_of(self, site: u32, end: u128) -> Option<Timestamp> {
        let PoolState::Physical { places, .. } = &self.tally.pool else {
            return None;
        };
        let here = places.get(site as usize)?;
        let mut coming = 0u128;
        for receipt in self.receipts().iter().filter(|r| r.location == here.id) {
            coming += u128::from(receipt.qty.get());
            if coming >= end {
                return Some(receipt.eta);
            }
        }
        None
    }

    /// The backorders if holds were `changed` (`(id, its parts now)`, none for ended) and
    /// locations had the on hand `on_hand` gives (`(site, units)`; the current figure of
    /// the others).
    fn backorders_given(
        self,
        changed: &[(ReservationId, Vec<(u32, Quantity)>)],
        on_hand: &[(u32, Quantity)],
    ) -> Vec<(ReservationId, Quantity)> {
        let lines = self.site_lines();
        // Without a backorder limit, units beyond on hand are a shortfall (at risk), not
        // backorders.
        let taking: Vec<u32> = lines
            .iter()
            .enumerate()
            .filter(|(_, (_, limit, _))| !limit.is_zero())
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        if taking.is_empty() || (changed.is_empty() && on_hand.is_empty() && !self.any_waiting()) {
            return Vec::new();
        }
        let mut held: Vec<(u64, ReservationId, SiteParts)> = self
            .holds
            .iter()
            .map(|(id, h)| {
                let parts = match changed.iter().find(|(c, _)| *c == id) {
                    Some((_, parts)) => parts.clone(),
                    None => self.parts(&id, &h).collect(),
                };
                (h.seq, id, parts)
            })
            .filter(|(_, _, parts)| parts.iter().any(|(_, q)| !q.is_zero()))
            .collect();
        held.sort_unstable_by_key(|(seq, _, _)| *seq);
        let mut promised = vec![0u128; lines.len()];
        let mut out = Vec::new();
        for (_, id, parts) in held {
            let mut waiting = 0u128;
            for (site, qty) in parts {
                if !taking.contains(&site) {
                    continue;
                }
                let Some(p) = promised.get_mut(site as usize) else {
                    continue;
                };
                let budget = on_hand
                    .iter()
                    .find(|(s, _)| *s == site)
                    .map(|(_, q)| *q)
                    .or_else(|| lines.get(site as usize).map(|l| l.0))
                    .map_or(0, |q| u128::from(q.get()));
                let before = *p;
                *p += u128::from(qty.get());
                if *p > budget {
                    waiting += *p - budget.max(before);
                }
            }
            if waiting > 0 {
                out.push((
                    id,
                    Quantity::new(u64::try_from(waiting).unwrap_or(u64::MAX)),
                ));
            }
        }
        out
    }

    /// The fills at a SKU at one location when hold `id` is left with `left` units (0: it
    /// ends), `on_hand` on hand. Holds behind it move up by the units it gives up, so the
    /// units of others now at positions `(on_hand - given up, on_hand]` of the line were
    /// waiting and are covered. Those positions are found by walking the line index from
    /// its nearer end, where a sort of the whole line per expiry made an expiry storm
    /// quadratic.
    fn fills_behind(
        self,
        id: &ReservationId,
        left: Quantity,
        on_hand: Quantity,
    ) -> Vec<(ReservationId, Quantity, Quantity)> {
        let Some(hold) = self.holds.get(id) else {
            return Vec::new();
        };
        let given_up = u128::from(hold.qty.saturating_sub(left).get());
        let boundary = u128::from(on_hand.get());
        let (lo, hi) = (boundary.saturating_sub(given_up), boundary);
        if given_up == 0 || hi == 0 {
            return Vec::new();
        }
        // The holds across the window, in line order, with their positions: walked from
        // the nearer end of the line (its front when little is on hand, its back when
        // little waits), so an expiry storm costs the holds on the short side per expiry.
        let units_of = |other: ReservationId| {
            if other == *id {
                u128::from(left.get())
            } else {
                self.holds
                    .get(&other)
                    .map_or(0, |h| u128::from(h.qty.get()))
            }
        };
        let total = u128::from(self.tally.reserved.get()).saturating_sub(given_up);
        let mut across: Vec<(u64, ReservationId, u128, u128)> = Vec::new();
        if hi <= total.saturating_sub(lo) {
            let mut position = 0u128;
            for (seq, other) in self.holds.by_line(false) {
                let start = position;
                position += units_of(other);
                if start >= hi {
                    break;
                }
                if position > lo {
                    across.push((seq, other, start, position));
                }
            }
        } else {
            let mut position = total;
            for (seq, other) in self.holds.by_line(true) {
                let end = position;
                position = position.saturating_sub(units_of(other));
                if end <= lo {
                    break;
                }
                if position < hi {
                    across.push((seq, other, position, end));
                }
            }
            across.reverse();
        }
        let as_qty = |n: u128| Quantity::new(u64::try_from(n).unwrap_or(u64::MAX));
        across
            .into_iter()
            // Only holds behind the changed one were waiting; those ahead stay as they were.
            .filter(|(seq, ..)| *seq > hold.seq)
            .filter_map(|(_, other, start, end)| {
                let covered_now = end.min(hi).saturating_sub(start.max(lo));
                let waiting = end.saturating_sub(hi).min(end - start);
                (covered_now > 0).then(|| (other, as_qty(covered_now), as_qty(waiting)))
            })
            .collect()
    }

    /// Whether nothing of hold `id` can be covered, found without a look at the line: each
    /// of its locations takes backorders and has nothing on hand (a preorder's expiry
    /// storm ends thousands of such holds, each in a step).
    fn wholly_waiting(
        self,
        id: &ReservationId,
        hold: &Hold,
        lines: &[(Quantity, Quantity, Quantity)],
    ) -> bool {
        self.parts(id, hold).all(|(site, _)| {
            lines
                .get(site as usize)
                .is_some_and(|(on_hand, limit, _)| on_hand.is_zero() && !limit.is_zero())
        })
    }

    /// The site of `location`, or the only one when none is named.
    fn site_of(self, location: Option<&LocationId>) -> Option<u32> {
        let PoolState::Physical { places, .. } = &self.tally.pool else {
            return None;
        };
        match location {
            Some(l) => site_index(places, l),
            None if places.len() == 1 => Some(0),
            None => None,
        }
    }

    /// The backordered units `event` would fill, per hold: `(id, filled, still waiting)`,
    /// in line order. An event that ends or shrinks a hold ahead, or brings stock, moves
    /// the line up; one that takes stock away fills nothing.
    pub fn fills(self, event: &Event) -> Vec<(ReservationId, Quantity, Quantity)> {
        if !self.any_waiting() {
            return Vec::new();
        }
        let lines = self.site_lines();
        let now_on_hand = |site: u32| lines.get(site as usize).map_or(Quantity::ZERO, |l| l.0);
        // Only covered units freed, or stock brought, move the line: a hold that ends
        // while wholly waiting (the usual expiry in a preorder) fills nobody, and is found
        // so in one pass rather than a sort.
        let (changed, on_hand): (Vec<(ReservationId, SiteParts)>, SiteParts) = match event {
            Event::ReservationReleased(_) | Event::ReservationExpired(_) => {
                let Some(id) = event.reservation_id() else {
                    return Vec::new();
                };
                let Some(hold) = self.holds.get(&id) else {
                    return Vec::new();
                };
                // (At one location the selection below finds nothing to fill for a hold
                // that was wholly waiting, without a pass of its own to find out first.)
                if self.wholly_waiting(&id, &hold, &lines)
                    || (lines.len() > 1 && self.backordered_of(&id) >= hold.qty)
                {
                    return Vec::new();
                }
                (vec![(id, Vec::new())], Vec::new())
            }
            Event::ReservationReduced(e) if e.outcome != Resolution::Committed => {
                let Some(hold) = self.holds.get(&e.reservation_id) else {
                    return Vec::new();
                };
                if self.wholly_waiting(&e.reservation_id, &hold, &lines) {
                    return Vec::new();
                }
                // Units come off a hold's last parts, at one location its waiting ones
                // first (there the walk below finds that nothing covered was given up
                // without a pass of its own).
                let mut parts: Vec<(u32, Quantity)> =
                    self.parts(&e.reservation_id, &hold).collect();
                if lines.len() == 1 {
                    parts = vec![(0, e.remaining)];
                } else {
                    if self.backordered_of(&e.reservation_id) >= hold.qty {
                        return Vec::new();
                    }
                    for ended in &e.parts {
                        if let Some(site) = self.site_of(Some(&ended.location))
                            && let Some(p) = parts.iter_mut().find(|(s, _)| *s == site)
                        {
                            p.1 = p.1.saturating_sub(ended.qty);
                        }
                    }
                }
                (vec![(e.reservation_id, parts)], Vec::new())
            }
            Event::StockAdjusted(e) if e.current > e.previous => {
                let Some(site) = self.site_of(e.location.as_ref()) else {
                    return Vec::new();
                };
                (Vec::new(), vec![(site, e.current)])
            }
            Event::ReceiptReceived(e) => {
                let Some(site) = self.site_of(Some(&e.location)) else {
                    return Vec::new();
                };
                (
                    Vec::new(),
                    vec![(site, now_on_hand(site).saturating_add(e.qty))],
                )
            }
            _ => return Vec::new(),
        };
        // At one location, a hold that ends or shrinks moves only the units just behind
        // the boundary: found by selection, not by sorting the line.
        if let ([(id, parts)], [], [(limit_on_hand, _, _)]) =
            (changed.as_slice(), on_hand.as_slice(), lines.as_slice())
        {
            let left = parts
                .iter()
                .map(|(_, q)| *q)
                .fold(Quantity::ZERO, |a, q| a.checked_add(q).unwrap_or(a));
            return self.fills_behind(id, left, *limit_on_hand);
        }
        let before = self.backorders();
        if before.is_empty() {
            return Vec::new();
        }
        let after = self.backorders_given(&changed, &on_hand);
        before
            .into_iter()
            .filter(|(id, _)| !changed.iter().any(|(c, _)| c == id))
            .filter_map(|(id, was)| {
                let now = after
                    .iter()
                    .find(|(a, _)| *a == id)
                    .map_or(Quantity::ZERO, |(_, q)| *q);
                let filled = was.saturating_sub(now);
                (!filled.is_zero()).then_some((id, filled, now))
            })
            .collect()
    }

    /// The transfer `id` if it is in transit: (from, to, units).
    pub fn transfer(self, id: &TransferId) -> Option<(LocationId, LocationId, Quantity)> {
        let PoolState::Physical {
            places, transfers, ..
        } = &self.tally.pool
        else {
            return None;
        };
        let t = transfers.get(id)?;
        let name = |i: u32| places.get(i as usize).map(|p| p.id.clone());
        Some((name(t.from)?, name(t.to)?, t.qty))
    }

    /// Units in transit between the SKU's locations.
    pub fn in_transit(self) -> Quantity {
        match &self.tally.pool {
            PoolState::Physical { transfers, .. } => bounded_sum(transfers.values().map(|t| t.qty)),
            _ => Quantity::ZERO,
        }
    }

    /// Transfers in transit.
    pub fn transfers_in_transit(self) -> usize {
        match &self.tally.pool {
            PoolState::Physical { transfers, .. } => transfers.len(),
            _ => 0,
        }
    }

    /// The reservations with units at `location` that cannot all be honoured at `now` if
    /// it had `on_hand`: walking that location's line oldest first, those that no longer
    /// fit. A split hold is at risk if its part here is.
    pub fn at_risk_at(
        self,
        now: Timestamp,
        location: &LocationId,
        on_hand: Quantity,
    ) -> Vec<ReservationId> {
        let PoolState::Physical { places, sites, .. } = &self.tally.pool else {
            return Vec::new();
        };
        let Some(site) = site_index(places, location) else {
            return Vec::new();
        };
        // Backorders within the location's limit are expected, not at risk.
        let on_hand = sites
            .get(site as usize)
            .map_or(on_hand, |s| on_hand.saturating_add(s.backorder_limit));
        let mut line: Vec<(u64, ReservationId, Quantity)> = self
            .holds
            .iter()
            .filter(|(_, h)| h.expires_at > now)
            .filter_map(|(id, h)| {
                let here = self.parts(&id, &h).find(|(s, _)| *s == site)?;
                Some((h.seq, id, here.1))
            })
            .collect();
        line.sort_by_key(|(seq, _, _)| *seq);
        let mut promised: u128 = 0;
        let mut at_risk = Vec::new();
        for (_, id, qty) in line {
            promised += u128::from(qty.get());
            if promised > u128::from(on_hand.get()) {
                at_risk.push(id);
            }
        }
        at_risk
    }

    /// The reservations that cannot all be honoured at `now` if the limit were `limit`:
    /// walking the line oldest first, those that no longer fit. Empty when nothing is short.
    pub fn at_risk_with_limit(self, now: Timestamp, limit: Quantity) -> Vec<ReservationId> {
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

    /// The reservations at risk at `now` with the current limit (at a SKU with several
    /// locations, with each short location's on hand).
    pub fn at_risk(self, now: Timestamp) -> Vec<ReservationId> {
        if self.location_count() > 1 {
            let mut at_risk: Vec<ReservationId> = self
                .locations(now)
                .into_iter()
                .filter(|l| !l.shortfall.is_zero())
                .flat_map(|l| self.at_risk_at(now, &l.location, l.on_hand))
                .collect();
            at_risk.sort_unstable();
            at_risk.dedup();
            return at_risk;
        }
        match self.tally.risk_limit() {
            Some(limit) if !self.shortfall(now).is_zero() => self.at_risk_with_limit(now, limit),
            _ => Vec::new(),
        }
    }

    pub fn view(self, now: Timestamp) -> StockView {
        let by_site = self.held_by_site(now);
        self.tally.view(
            self.sku,
            self.used(now),
            by_site.as_deref(),
            self.holds.len(),
        )
    }
}

/// What a hold was, as a reader that keeps no holds is told when the hold ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldFacts {
    pub qty: Quantity,
    pub reserved_at: Timestamp,
    pub expires_at: Timestamp,
    /// Where its units were, as its `StockReserved` recorded (empty: the one location).
    pub parts: Vec<Part>,
}

impl HoldFacts {
    /// The hold after `event` changed it (an extension, reduction or increase of it); `None`
    /// for any other event. How a reader that keeps its own record of holds (the
    /// projector's read models) follows a hold through its changes.
    pub fn after(&self, event: &Event) -> Option<HoldFacts> {
        match event {
            Event::ReservationExtended(e) => Some(HoldFacts {
                expires_at: e.expires_at,
                ..self.clone()
            }),
            Event::ReservationReduced(e) => {
                let mut parts = self.parts.clone();
                for ended in &e.parts {
                    if let Some(p) = parts.iter_mut().find(|p| p.location == ended.location) {
                        p.qty = p.qty.saturating_sub(ended.qty);
                    }
                }
                parts.retain(|p| !p.qty.is_zero());
                Some(HoldFacts {
                    qty: e.remaining,
                    parts,
                    ..self.clone()
                })
            }
            Event::ReservationIncreased(e) => {
                let mut parts = self.parts.clone();
                for added in &e.parts {
                    match parts.iter_mut().find(|p| p.location == added.location) {
                        Some(p) => p.qty = p.qty.checked_add(added.qty).unwrap_or(p.qty),
                        None => parts.push(added.clone()),
                    }
                }
                Some(HoldFacts {
                    qty: e.total,
                    parts,
                    ..self.clone()
                })
            }
            _ => None,
        }
    }
}

/// A SKU's figures folded without its holds, for a reader that shows stock but decides
/// nothing (the projector): the figures, and how many units lapse at each instant. Its
/// views are those of [`StockRef::view`], lapsed holds left out alike. It does not know
/// which holds are live: whoever applies a resolution says what the hold was
/// ([`HoldFacts`], e.g. from its own record of the hold), and is trusted; the log was
/// validated by the writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    stock: Option<LedgerStock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LedgerStock {
    sku: Sku,
    tally: Tally,
    /// Units and hold parts by (expires_at, reserved_at, site): the lazy-expiry view needs
    /// the units lapsed by an instant, in print on demand their period, and at several
    /// locations where they were.
    lapses: Lapses,
    live: usize,
    places: Places,
}

type Lapses = BTreeMap<(Timestamp, Timestamp, u32), (u128, usize)>;

/// The ledger's stand-in for holds: knows only the hold being resolved.
struct LedgerHolds<'a> {
    ended: Option<(Hold, Option<Split>)>,
    lapses: &'a mut Lapses,
    live: &'a mut usize,
    /// The waitlist's places, kept in full: a served hold is checked against the line.
    places: &'a mut Places,
}

impl HoldStore for LedgerHolds<'_> {
    fn hold(&self, _id: &ReservationId) -> Option<Hold> {
        self.ended.as_ref().map(|(hold, _)| *hold)
    }
    fn split(&self, _id: &ReservationId) -> Option<Split> {
        self.ended.as_ref().and_then(|(_, split)| split.clone())
    }
    fn tags(&self, _id: &ReservationId) -> Tags {
        Tags::default()
    }
    // The ledger keeps no accounts: readers see the waitlist and the limit, not who bought.
    fn account(&self, _customer: &CustomerId) -> Option<Account> {
        None
    }
    fn set_account(&mut self, _customer: CustomerId, _account: Account) {}
    fn first_place(&self) -> Option<(u64, Waiter)> {
        self.places.first()
    }
    fn place(&self, number: u64) -> Option<Waiter> {
        self.places.by_number.get(&number).cloned()
    }
    fn place_of(&self, customer: &CustomerId) -> Option<u64> {
        self.places.of(customer)
    }
    fn open_place(&mut self, number: u64, waiter: Waiter) {
        self.places.insert(number, waiter);
    }
    fn close_place(&mut self, number: u64) {
        self.places.remove(number);
    }
    fn insert(&mut self, _id: ReservationId, hold: Hold, _tags: Tags, split: Option<Split>) {
        for (site, qty) in parts_iter(&hold, split.as_ref()) {
            let slot = self
                .lapses
                .entry((hold.expires_at, hold.reserved_at, site))
                .or_default();
            slot.0 += u128::from(qty.get());
            slot.1 += 1;
        }
        *self.live += 1;
    }
    fn remove(&mut self, _id: &ReservationId) {
        let Some((hold, split)) = &self.ended else {
            return;
        };
        for (site, qty) in parts_iter(hold, split.as_ref()) {
            let key = (hold.expires_at, hold.reserved_at, site);
            if let Some(slot) = self.lapses.get_mut(&key) {
                slot.0 = slot.0.saturating_sub(u128::from(qty.get()));
                slot.1 = slot.1.saturating_sub(1);
                if slot.1 == 0 {
                    self.lapses.remove(&key);
                }
            }
        }
        *self.live = self.live.saturating_sub(1);
    }
}

impl Ledger {
    pub fn is_registered(&self) -> bool {
        self.stock.is_some()
    }

    /// Applies `event`. A resolution needs `ended`, the hold it ends; other events take
    /// `None`. An event that does not apply changes nothing.
    pub fn apply(&mut self, event: &Event, ended: Option<HoldFacts>) -> Result<(), Inconsistency> {
        match (event, &mut self.stock) {
            (Event::SkuRegistered(e), None) => {
                let tally = Stock::new(e.sku.clone(), &e.pool, e.at).tally;
                self.stock = Some(LedgerStock {
                    sku: e.sku.clone(),
                    tally,
                    lapses: BTreeMap::new(),
                    live: 0,
                    places: Places::default(),
                });
                Ok(())
            }
            (Event::SkuRegistered(_), Some(_)) => Err(Inconsistency::RegisteredTwice),
            // It changes no figure, and the ledger keeps no holds to check it against.
            (Event::BackorderFilled(e), Some(stock)) => {
                stock.tally.advance_clock(e.at);
                Ok(())
            }
            (other, None) => Err(Inconsistency::NotRegistered {
                event_type: other.event_type(),
            }),
            (other, Some(stock)) => {
                let ended = match (other, ended) {
                    (Event::StockReserved(_), _) | (_, None) => None,
                    (_, Some(f)) => {
                        let (site, split) = site_of_parts(&stock.tally, f.qty, &f.parts)?;
                        let hold = Hold {
                            qty: f.qty,
                            reserved_at: f.reserved_at,
                            expires_at: f.expires_at,
                            seq: 0,
                            site,
                        };
                        Some((hold, split))
                    }
                };
                let mut holds = LedgerHolds {
                    ended,
                    lapses: &mut stock.lapses,
                    live: &mut stock.live,
                    places: &mut stock.places,
                };
                apply_to(&mut stock.tally, &mut holds, other)
            }
        }
    }

    /// The SKU at `now`, as [`StockRef::view`] shows it; `None` before registration.
    pub fn view(&self, now: Timestamp) -> Option<StockView> {
        let stock = self.stock.as_ref()?;
        let lapsed = || {
            stock
                .lapses
                .range(..=(now, Timestamp::from_millis(u64::MAX), u32::MAX))
                .map(|((_, reserved_at, site), (units, _))| {
                    let units = Quantity::new(u64::try_from(*units).unwrap_or(u64::MAX));
                    (*reserved_at, *site, units)
                })
        };
        let used = stock
            .tally
            .used(now, lapsed().map(|(at, _, units)| (at, units)));
        let by_site = stock
            .tally
            .held_by_site(lapsed().map(|(_, site, units)| (site, units)));
        Some(
            stock
                .tally
                .view(&stock.sku, used, by_site.as_deref(), stock.live),
        )
    }
}
