//! An independent check of the log: did any SKU ever promise more than it had?
//!
//! Deliberately written without `SkuState` or `decide`: it re-derives holds and stock from
//! the raw events with its own arithmetic, so a bug in the domain's bookkeeping cannot hide
//! itself. Oversell is judged on physical pools (the ones that can be oversold by selling
//! what is not on the shelf); the lifecycle rules are checked on every pool.
//!
//! Rules, per SKU, walking its events in order at each event's own time `t`:
//! - a hold counts from its `StockReserved` until it is resolved or `expires_at <= t`;
//! - stock is per location (a SKU registered without locations has one): at every
//!   `StockReserved`, the live holds at each location it takes from (the new one
//!   included) must fit in that location's `on_hand - safety_stock`; at every commit each
//!   part of the sale must fit in its location's `on_hand`, and the sale must match the
//!   quantity held;
//! - a hold's parts name the SKU's locations and sum to its quantity; a transfer ships
//!   only units not promised to live holds, and is received once, where it was sent;
//! - a reservation id is created once while it is live or its key is still recognised
//!   (resolved less than the key window before: after that its key, and so its id, may
//!   come back);
//! - a reservation is resolved at most once, only if it was created, and an expiry is
//!   written only at or after the hold's `expires_at`;
//! - a hold is changed only while it is live and unlapsed: an extension moves its expiry
//!   later, never past 7 days from its making; a reduction ends fewer units than it holds,
//!   from locations where it holds them (a sale judged like a commit's); an increase is
//!   judged like a new hold at every location it takes from;
//! - an adjustment starts from the stock the log says there was; a SKU registers once;
//! - a stream's revisions run 0, 1, 2, ... without gaps;
//! - an idempotency key (per principal) is applied once per stream: the events carrying it
//!   are one append (consecutive revisions); the key may come back only after the engine
//!   has forgotten it ([`KEY_RETENTION`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use stockade_domain::pool::DEFAULT_LOCATION;
use stockade_domain::{
    Event, EventMetadata, LocationId, PoolConfig, ReservationId, Sku, Timestamp,
};
use stockade_store::{EventStore, Position, StoreError, StreamName, codec, scan_all};

/// Events read per page.
const PAGE: usize = 8_192;

/// How long the engine remembers an idempotency key by default
/// (`EngineConfig::idempotency_retention`); a key seen again later is a new request, not
/// a second application.
pub const KEY_RETENTION: std::time::Duration = crate::config::DEFAULT_IDEMPOTENCY_RETENTION;

/// What the log shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogReport {
    pub events: u64,
    pub skus: u64,
    pub reserved: u64,
    pub committed: u64,
    pub released: u64,
    pub expired: u64,
    /// Units promised or sold beyond stock, summed over every breach.
    pub oversold_units: u64,
    /// Every reservation created, per SKU.
    pub reservations: HashMap<Sku, HashSet<ReservationId>>,
    /// Every reservation committed, per SKU.
    pub commits: HashMap<Sku, HashSet<ReservationId>>,
    /// Live holds extended, partly ended, or grown.
    pub changed: u64,
    /// Backorders filled (each `BackorderFilled`).
    pub filled: u64,
    /// Human-readable breaches, with their log position.
    pub violations: Vec<String>,
}

/// One idempotency key's application in a stream.
struct KeyUse {
    /// The last revision that carried the key.
    last: u64,
    /// When its append was decided.
    at: Timestamp,
    /// The event ids of that append (derived from the key, so a second application of
    /// the key repeats them).
    ids: Vec<uuid::Uuid>,
}

/// One location's stock as the log tells it.
#[derive(Default)]
struct Place {
    on_hand: u128,
    safety_stock: u128,
    /// Units of unlapsed live holds here.
    held: u128,
    /// Units that may be held here beyond on hand.
    backorder_limit: u128,
}

/// A live hold: quantity, expiry, and its units by location (physical pools only).
type HeldHere = (u128, Timestamp, Vec<(LocationId, u128)>);

#[derive(Default)]
struct SkuCheck {
    registered: bool,
    /// A physical SKU's locations (one, `default`, when registered without).
    physical: Option<BTreeMap<LocationId, Place>>,
    /// Transfers in transit: destination and units.
    transfers: HashMap<String, (LocationId, u128)>,
    /// A kit's stream: it holds nothing; its components hold for it.
    kit: bool,
    /// Live holds.
    holds: HashMap<ReservationId, HeldHere>,
    /// When each open reservation was made (an extension may not pass 7 days from it).
    made: HashMap<ReservationId, Timestamp>,
    by_expiry: BTreeSet<(Timestamp, ReservationId)>,
    held: u128,
    /// Created and not yet resolved (lapsed holds included: they still await their event).
    open: HashSet<ReservationId>,
    /// Resolved, with the instant.
    resolved: HashMap<ReservationId, Timestamp>,
    /// The revision the next event must have.
    next_revision: u64,
    /// Each (principal, key): where and when it was applied.
    keys: HashMap<(String, String), KeyUse>,
    /// How many keys were left after the last pruning.
    keys_pruned_at: usize,
    /// Whether any location takes backorders (sales are then checked against the line).
    backorder_limit: u128,
    /// Open receipts: location and units still expected.
    receipts: HashMap<String, (LocationId, u128)>,
    /// Each hold's place in line (holds are covered by stock oldest first).
    line: HashMap<ReservationId, u64>,
    next_in_line: u64,
    fair: FairCheck,
}

/// Fair selling as the log tells it: the limit, each customer's holds and purchases in
/// its window, and the waitlist.
#[derive(Default)]
struct FairCheck {
    /// Units per customer, over a window in ms.
    limit: Option<(u128, u64)>,
    /// Live holds that name a customer: whose, and how many units.
    holds: HashMap<ReservationId, (stockade_domain::CustomerId, u128)>,
    /// Purchases while a limit was set, per customer, oldest first.
    bought: HashMap<stockade_domain::CustomerId, std::collections::VecDeque<(Timestamp, u128)>>,
    /// Units each customer holds.
    held: HashMap<stockade_domain::CustomerId, u128>,
    /// Places: number -> customer and units.
    waitlist: BTreeMap<u64, (stockade_domain::CustomerId, u128)>,
}

impl FairCheck {
    /// Units `customer` holds and bought inside the window ending at `t`.
    fn counted(&mut self, customer: &stockade_domain::CustomerId, t: Timestamp) -> u128 {
        let window = self.limit.map_or(0, |(_, w)| w);
        let since = t.as_millis().saturating_sub(window);
        let held = self.held.get(customer).copied().unwrap_or(0);
        let bought = self.bought.get_mut(customer).map_or(0, |b| {
            while b.front().is_some_and(|(at, _)| at.as_millis() <= since) {
                b.pop_front();
            }
            b.iter().map(|(_, q)| *q).sum()
        });
        held + bought
    }

    /// Checks `event` against the limit and the line; `None` when it fits.
    fn check(&mut self, event: &Event, t: Timestamp) -> Option<String> {
        let mut breach = None;
        let mut grew =
            |fair: &mut FairCheck, customer: &stockade_domain::CustomerId, more: u128| {
                if let Some((limit, _)) = fair.limit {
                    let counted = fair.counted(customer, t);
                    if counted + more > limit {
                        breach = Some(format!(
                            "lets customer {customer} reach {} units against a limit of {limit}",
                            counted + more
                        ));
                    }
                }
            };
        match event {
            Event::FairSellingSet(e) => {
                self.limit = e.per_customer.map(|l| (u128::from(l.get()), e.window_ms));
            }
            Event::StockReserved(e) => {
                let qty = u128::from(e.qty.get());
                if let Some(customer) = &e.customer {
                    grew(self, customer, qty);
                    self.holds.insert(e.reservation_id, (customer.clone(), qty));
                    *self.held.entry(customer.clone()).or_default() += qty;
                }
                match (e.waitlist, self.waitlist.first_key_value()) {
                    (None, Some(_)) => {
                        breach = Some(format!(
                            "holds {} for {} while {} wait in line",
                            e.qty,
                            e.reservation_id,
                            self.waitlist.len()
                        ));
                    }
                    (Some(n), first) => {
                        if first.map(|(k, (c, q))| (*k, Some(c), *q))
                            != Some((n, e.customer.as_ref(), qty))
                        {
                            breach = Some(format!(
                                "serves waitlist place {n} with {}, which was not first in line",
                                e.reservation_id
                            ));
                        }
                        self.waitlist.remove(&n);
                    }
                    (None, None) => {}
                }
            }
            Event::ReservationIncreased(e) => {
                if let Some((customer, _)) = self.holds.get(&e.reservation_id).cloned() {
                    grew(self, &customer, u128::from(e.qty.get()));
                    if let Some(h) = self.holds.get_mut(&e.reservation_id) {
                        h.1 += u128::from(e.qty.get());
                    }
                    *self.held.entry(customer).or_default() += u128::from(e.qty.get());
                }
            }
            Event::ReservationCommitted(e) => self.ended(e.reservation_id, e.qty, true, t),
            Event::ReservationReleased(e) => self.ended(e.reservation_id, e.qty, false, t),
            Event::ReservationExpired(e) => self.ended(e.reservation_id, e.qty, false, t),
            Event::ReservationReduced(e) => self.ended(
                e.reservation_id,
                e.qty,
                e.outcome == stockade_domain::Resolution::Committed,
                t,
            ),
            Event::WaitlistJoined(e) => {
                self.waitlist
                    .insert(e.number, (e.customer.clone(), u128::from(e.qty.get())));
            }
            Event::WaitlistLeft(e) if self.waitlist.remove(&e.number).is_none() => {
                breach = Some(format!(
                    "ends waitlist place {}, which is not open",
                    e.number
                ));
            }
            _ => {}
        }
        breach
    }

    fn ended(
        &mut self,
        id: ReservationId,
        qty: stockade_domain::Quantity,
        sold: bool,
        t: Timestamp,
    ) {
        let qty = u128::from(qty.get());
        let Some((customer, held)) = self.holds.get_mut(&id) else {
            return;
        };
        *held = held.saturating_sub(qty);
        let customer = customer.clone();
        if *held == 0 {
            self.holds.remove(&id);
        }
        if let Some(total) = self.held.get_mut(&customer) {
            *total = total.saturating_sub(qty);
            if *total == 0 {
                self.held.remove(&customer);
            }
        }
        if sold && self.limit.is_some() {
            self.bought.entry(customer).or_default().push_back((t, qty));
        }
    }
}

impl SkuCheck {
    /// Drops holds that lapsed by `t` from what is held (they stay open until resolved).
    fn lapse(&mut self, t: Timestamp) {
        while let Some(&(at, id)) = self.by_expiry.first() {
            if at > t {
                break;
            }
            self.by_expiry.pop_first();
            if let Some(hold) = self.holds.remove(&id) {
                self.release_parts(&hold);
            }
        }
    }

    fn unhold(&mut self, id: &ReservationId) -> Option<HeldHere> {
        self.line.remove(id);
        let hold = self.holds.remove(id)?;
        self.by_expiry.remove(&(hold.1, *id));
        self.release_parts(&hold);
        Some(hold)
    }

    fn release_parts(&mut self, (qty, _, parts): &HeldHere) {
        self.held -= qty;
        if let Some(places) = &mut self.physical {
            for (location, units) in parts {
                if let Some(place) = places.get_mut(location) {
                    place.held = place.held.saturating_sub(*units);
                }
            }
        }
    }

    /// With backorders taken, a sale of `units` of hold `id` must come from stock on hand
    /// that no hold ahead of it in line is owed; the breach if not. (Lapsed holds are out
    /// of line here, while the writer keeps them until their expiry is written: the
    /// writer covers fewer, never more, so a true log never breaches this.)
    fn sold_ahead_of_line(
        &self,
        id: &ReservationId,
        parts: &[(LocationId, u128)],
    ) -> Option<String> {
        if self.backorder_limit == 0 {
            return None;
        }
        parts.iter().find_map(|(location, units)| {
            let (on_hand, ahead) = self.beyond_line(id, location, *units)?;
            Some(format!(
                "sells {units} of {id} at {location} with {on_hand} on hand, {ahead} owed to \
                 holds ahead"
            ))
        })
    }

    /// `(on hand, units of the holds ahead of `id` in line at `location`)` when `units` of
    /// `id` there do not fit in on hand after those ahead; `None` when they do, or the
    /// location takes no backorders (its own checks apply), or `id` is not in line.
    fn beyond_line(
        &self,
        id: &ReservationId,
        location: &LocationId,
        units: u128,
    ) -> Option<(u128, u128)> {
        let place = self.physical.as_ref()?.get(location)?;
        if place.backorder_limit == 0 {
            return None;
        }
        let at = self.line.get(id).copied()?;
        let ahead: u128 = self
            .holds
            .iter()
            .filter(|(other, _)| self.line.get(other).is_some_and(|p| *p < at))
            .flat_map(|(_, hold)| hold.2.iter())
            .filter(|(l, _)| l == location)
            .map(|(_, units)| units)
            .sum();
        (ahead + units > place.on_hand).then_some((place.on_hand, ahead))
    }

    /// The location an event that names none is about: the SKU's only one.
    fn only_location(&self) -> Option<LocationId> {
        match &self.physical {
            Some(places) if places.len() == 1 => places.keys().next().cloned(),
            _ => None,
        }
    }

    /// Whether `id` may not be held again at `t`: it is live, or it ended within the key
    /// window (ids are random or derived from a key, and a key's reuse within its window
    /// is answered from the log, never held again).
    fn remembers(&self, id: &ReservationId, t: Timestamp) -> bool {
        self.open.contains(id)
            || self
                .resolved
                .get(id)
                .is_some_and(|at| at.checked_add(KEY_RETENTION).is_none_or(|u| u >= t))
    }
}

/// Reads the whole log and checks it.
pub async fn check_log(store: &Arc<dyn EventStore>) -> Result<LogReport, StoreError> {
    check_log_of(store, |_| true).await
}

/// Checks the streams of the SKUs for which `only` holds (the whole log is read).
pub async fn check_log_of(
    store: &Arc<dyn EventStore>,
    only: impl Fn(&Sku) -> bool,
) -> Result<LogReport, StoreError> {
    check_log_with(store, only, KEY_RETENTION, |_| {}).await
}

/// [`check_log_of`] for an engine that remembers idempotency keys for `key_retention`,
/// calling `progress` with the position reached after every event (for a progress bar on
/// long logs).
pub async fn check_log_with(
    store: &Arc<dyn EventStore>,
    only: impl Fn(&Sku) -> bool,
    key_retention: std::time::Duration,
    mut progress: impl FnMut(Position),
) -> Result<LogReport, StoreError> {
    let mut report = LogReport::default();
    let mut skus: HashMap<StreamName, SkuCheck> = HashMap::new();
    scan_all(store.as_ref(), Position::START, PAGE, |recorded| {
        progress(recorded.position);
        let Some(sku) = recorded.stream.sku().filter(|s| only(s)) else {
            return Ok(());
        };
        report.events += 1;
        let (event, meta) = codec::decode_stored(recorded)?;
        let check = skus.entry(recorded.stream.clone()).or_default();
        check_record(
            check,
            key_retention,
            recorded.revision,
            &event,
            &meta,
            &sku,
            recorded.position,
            &mut report,
        );
        check_event(check, &event, &sku, recorded.position, &mut report);
        Ok(())
    })
    .await?;
    Ok(report)
}

/// The checks on where an event sits in its stream: its revision, and its idempotency key.
#[allow(clippy::too_many_arguments)]
fn check_record(
    check: &mut SkuCheck,
    key_retention: std::time::Duration,
    revision: u64,
    event: &Event,
    meta: &EventMetadata,
    sku: &Sku,
    at: Position,
    report: &mut LogReport,
) {
    let mut breach = |what: String| {
        report
            .violations
            .push(format!("position {at}: {sku} {what}"))
    };
    if revision != check.next_revision {
        breach(format!(
            "is at revision {revision}, expected {} (a gap or a repeat)",
            check.next_revision
        ));
    }
    check.next_revision = stockade_store::version_after(revision);
    if let Some(key) = &meta.idempotency_key {
        let principal = meta
            .principal
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let t = event.at();
        let scope = (principal, key.clone());
        // The events of one append under a key sit at consecutive revisions with distinct
        // ids. Anything else while the engine still remembers the key is a second
        // application: a later revision, or an id the key already produced.
        let same_append = match check.keys.get(&scope) {
            Some(used) if used.at.checked_add(key_retention).is_none_or(|u| u >= t) => {
                let next = used.last.checked_add(1) == Some(revision);
                if !next || used.ids.contains(&meta.event_id) {
                    breach(format!(
                        "applies idempotency key {key:?} again (last applied at revision {})",
                        used.last
                    ));
                }
                next
            }
            _ => false,
        };
        match check.keys.get_mut(&scope) {
            Some(used) if same_append => {
                used.last = revision;
                used.ids.push(meta.event_id);
            }
            _ => {
                check.keys.insert(
                    scope,
                    KeyUse {
                        last: revision,
                        at: t,
                        ids: vec![meta.event_id],
                    },
                );
            }
        }
        // Forget keys the engine has forgotten, in amortised constant time per event.
        if check.keys.len() >= check.keys_pruned_at.saturating_mul(2).max(1024) {
            check
                .keys
                .retain(|_, used| used.at.checked_add(key_retention).is_none_or(|u| u >= t));
            check.keys_pruned_at = check.keys.len();
        }
    }
}

fn check_event(
    check: &mut SkuCheck,
    event: &Event,
    sku: &Sku,
    at: Position,
    report: &mut LogReport,
) {
    let t = event.at();
    check.lapse(t);
    let mut breach = |what: String| {
        report
            .violations
            .push(format!("position {at}: {sku} {what}"))
    };
    if let Some(what) = check.fair.check(event, t) {
        breach(what);
    }
    match event {
        Event::SkuRegistered(e) => {
            if check.registered {
                breach("registered twice".into());
            }
            check.registered = true;
            report.skus += 1;
            if let PoolConfig::Physical {
                on_hand,
                safety_stock,
                locations,
            } = &e.pool
            {
                let mut places = BTreeMap::new();
                if locations.is_empty()
                    && let Ok(default) = LocationId::new(DEFAULT_LOCATION)
                {
                    places.insert(
                        default,
                        Place {
                            on_hand: on_hand.get().into(),
                            safety_stock: safety_stock.get().into(),
                            held: 0,
                            backorder_limit: 0,
                        },
                    );
                }
                for l in locations {
                    places.insert(
                        l.location.clone(),
                        Place {
                            on_hand: l.on_hand.get().into(),
                            safety_stock: l.safety_stock.get().into(),
                            held: 0,
                            backorder_limit: 0,
                        },
                    );
                }
                let sum = |f: fn(&Place) -> u128| places.values().map(f).sum::<u128>();
                if sum(|p| p.on_hand) != u128::from(on_hand.get())
                    || sum(|p| p.safety_stock) != u128::from(safety_stock.get())
                {
                    breach("registers totals that are not its locations' sums".into());
                }
                check.physical = Some(places);
            }
            check.kit = matches!(e.pool, PoolConfig::Kit { .. });
        }
        Event::StockAdjusted(e) => {
            let location = e.location.clone().or_else(|| check.only_location());
            if let Some(places) = &mut check.physical {
                match location.as_ref().and_then(|l| places.get_mut(l)) {
                    None => breach(format!(
                        "adjusts {}, not one of its locations",
                        location.map_or("no location".into(), |l| l.to_string())
                    )),
                    Some(place) => {
                        if u128::from(e.previous.get()) != place.on_hand {
                            breach(format!(
                                "adjusts from {} but had {} on hand",
                                e.previous, place.on_hand
                            ));
                        }
                        place.on_hand = e.current.get().into();
                    }
                }
            }
        }
        Event::TransferShipped(e) => match &mut check.physical {
            None => breach(format!(
                "ships transfer {}, but has no locations",
                e.transfer_id
            )),
            Some(places) => {
                let qty = u128::from(e.qty.get());
                let to_known = places.contains_key(&e.to) && e.to != e.from;
                match places.get_mut(&e.from) {
                    Some(from) if to_known => {
                        let free = from.on_hand.saturating_sub(from.held);
                        if qty > free {
                            breach(format!(
                                "ships {qty} from {} with {free} not promised",
                                e.from
                            ));
                        }
                        from.on_hand = from.on_hand.saturating_sub(qty);
                    }
                    _ => breach(format!(
                        "ships transfer {} between unknown locations",
                        e.transfer_id
                    )),
                }
                let key = e.transfer_id.as_str().to_owned();
                if check.transfers.insert(key, (e.to.clone(), qty)).is_some() {
                    breach(format!("ships transfer {} twice", e.transfer_id));
                }
            }
        },
        Event::TransferReceived(e) => {
            match check.transfers.remove(e.transfer_id.as_str()) {
                Some((to, qty)) if to == e.to && qty == u128::from(e.qty.get()) => {}
                _ => breach(format!(
                    "receives transfer {}, which is not in transit there with {} units",
                    e.transfer_id, e.qty
                )),
            }
            if let Some(place) = check.physical.as_mut().and_then(|p| p.get_mut(&e.to)) {
                place.on_hand += u128::from(e.qty.get());
            }
        }
        Event::StockReserved(e) => {
            let id = e.reservation_id;
            if check.kit {
                breach(format!(
                    "holds {} for {id}, but it is a kit: its components hold for it",
                    e.qty
                ));
            }
            if check.remembers(&id, t) {
                breach(format!("reservation {id} created twice"));
                // Count the new hold instead of the old one, not both.
                check.unhold(&id);
            }
            report.reserved += 1;
            report
                .reservations
                .entry(sku.clone())
                .or_default()
                .insert(id);
            check.open.insert(id);
            check.resolved.remove(&id);
            let qty = u128::from(e.qty.get());
            let parts: Vec<(LocationId, u128)> = match (&check.physical, e.parts.as_slice()) {
                (None, []) => Vec::new(),
                (None, _) => {
                    breach(format!("holds {id} at locations, but has none"));
                    Vec::new()
                }
                (Some(_), []) => match check.only_location() {
                    Some(only) => vec![(only, qty)],
                    None => {
                        breach(format!(
                            "holds {id} without saying at which of its locations"
                        ));
                        Vec::new()
                    }
                },
                (Some(_), parts) => {
                    let parts: Vec<_> = parts
                        .iter()
                        .map(|p| (p.location.clone(), u128::from(p.qty.get())))
                        .collect();
                    if parts.iter().map(|(_, q)| q).sum::<u128>() != qty {
                        breach(format!("holds {id} in parts that do not sum to {qty}"));
                    }
                    parts
                }
            };
            check.by_expiry.insert((e.expires_at, id));
            check.held += qty;
            check.line.insert(id, check.next_in_line);
            check.next_in_line += 1;
            if let Some(places) = &mut check.physical {
                let many = places_len_gt1(places);
                for (location, units) in &parts {
                    let Some(place) = places.get_mut(location) else {
                        breach(format!(
                            "holds {id} at {location}, not one of its locations"
                        ));
                        continue;
                    };
                    place.held += units;
                    let offer =
                        place.on_hand.saturating_sub(place.safety_stock) + place.backorder_limit;
                    if place.held > offer {
                        let over = place.held - offer;
                        report.oversold_units += over.min(*units) as u64;
                        let at = if many {
                            format!(" at {location}")
                        } else {
                            String::new()
                        };
                        breach(format!("holds {}{at} of {offer} on offer", place.held));
                    }
                }
            }
            check.holds.insert(id, (qty, e.expires_at, parts));
            check.made.insert(id, t);
        }
        Event::ReservationExtended(e) => {
            report.changed += 1;
            let id = e.reservation_id;
            let made = check.made.get(&id).copied();
            match check.holds.get_mut(&id) {
                None => breach(format!("extends {id}, which is not live (or lapsed)")),
                Some(hold) => {
                    let latest = made.and_then(|m| m.checked_add(stockade_domain::MAX_TTL));
                    if hold.1 != e.previous_expires_at
                        || e.expires_at <= hold.1
                        || latest.is_none_or(|l| e.expires_at > l)
                    {
                        breach(format!(
                            "extends {id} from {} to {}; it expired at {} and was made at {}",
                            e.previous_expires_at,
                            e.expires_at,
                            hold.1,
                            made.map_or("an unknown time".into(), |m| m.to_string())
                        ));
                    }
                    check.by_expiry.remove(&(hold.1, id));
                    hold.1 = e.expires_at;
                    check.by_expiry.insert((e.expires_at, id));
                }
            }
        }
        Event::ReservationReduced(e) => {
            report.changed += 1;
            let id = e.reservation_id;
            let ended = u128::from(e.qty.get());
            let only = check.only_location();
            let Some(hold) = check.holds.get_mut(&id) else {
                breach(format!("reduces {id}, which is not live (or lapsed)"));
                return;
            };
            if e.remaining.is_zero()
                || ended == 0
                || hold.0 != ended + u128::from(e.remaining.get())
                || e.outcome == stockade_domain::Resolution::Expired
            {
                breach(format!(
                    "ends {ended} of {id} ({}) leaving {}; it holds {}",
                    e.outcome, e.remaining, hold.0
                ));
            }
            let parts: Vec<(LocationId, u128)> = match (&check.physical, e.parts.as_slice()) {
                (None, []) => Vec::new(),
                (Some(_), []) => only.map(|l| vec![(l, ended)]).unwrap_or_default(),
                (_, parts) => parts
                    .iter()
                    .map(|p| (p.location.clone(), u128::from(p.qty.get())))
                    .collect(),
            };
            if check.physical.is_some() && parts.iter().map(|(_, q)| q).sum::<u128>() != ended {
                breach(format!(
                    "ends {ended} of {id} in parts that do not sum to it"
                ));
            }
            for (location, units) in &parts {
                match hold.2.iter_mut().find(|(l, _)| l == location) {
                    Some(here) if here.1 >= *units => here.1 -= units,
                    _ => breach(format!(
                        "ends {units} of {id} at {location}, where it holds fewer"
                    )),
                }
            }
            hold.2.retain(|(_, units)| *units > 0);
            hold.0 = hold.0.saturating_sub(ended);
            check.held = check.held.saturating_sub(ended);
            let sold = e.outcome == stockade_domain::Resolution::Committed;
            if sold && let Some(short) = check.sold_ahead_of_line(&id, &parts) {
                breach(short);
            }
            if let Some(places) = &mut check.physical {
                let many = places_len_gt1(places);
                for (location, units) in parts {
                    let Some(place) = places.get_mut(&location) else {
                        breach(format!(
                            "ends units of {id} at {location}, not one of its locations"
                        ));
                        continue;
                    };
                    place.held = place.held.saturating_sub(units);
                    if sold {
                        if units > place.on_hand {
                            report.oversold_units += (units - place.on_hand) as u64;
                            let at = if many {
                                format!(" at {location}")
                            } else {
                                String::new()
                            };
                            breach(format!("sells {units}{at} with {} on hand", place.on_hand));
                        }
                        place.on_hand = place.on_hand.saturating_sub(units);
                    }
                }
            }
        }
        Event::ReservationIncreased(e) => {
            report.changed += 1;
            let id = e.reservation_id;
            let more = u128::from(e.qty.get());
            let only = check.only_location();
            let Some(hold) = check.holds.get_mut(&id) else {
                breach(format!("grows {id}, which is not live (or lapsed)"));
                return;
            };
            if more == 0 || hold.0 + more != u128::from(e.total.get()) {
                breach(format!(
                    "grows {id} by {more} to {}; it holds {}",
                    e.total, hold.0
                ));
            }
            let parts: Vec<(LocationId, u128)> = match (&check.physical, e.parts.as_slice()) {
                (None, []) => Vec::new(),
                (Some(_), []) => only.map(|l| vec![(l, more)]).unwrap_or_default(),
                (_, parts) => parts
                    .iter()
                    .map(|p| (p.location.clone(), u128::from(p.qty.get())))
                    .collect(),
            };
            if check.physical.is_some() && parts.iter().map(|(_, q)| q).sum::<u128>() != more {
                breach(format!("grows {id} in parts that do not sum to {more}"));
            }
            for (location, units) in &parts {
                match hold.2.iter_mut().find(|(l, _)| l == location) {
                    Some(here) => here.1 += units,
                    None => hold.2.push((location.clone(), *units)),
                }
            }
            hold.0 += more;
            check.held += more;
            if let Some(places) = &mut check.physical {
                let many = places_len_gt1(places);
                for (location, units) in &parts {
                    let Some(place) = places.get_mut(location) else {
                        breach(format!(
                            "grows {id} at {location}, not one of its locations"
                        ));
                        continue;
                    };
                    place.held += units;
                    let offer =
                        place.on_hand.saturating_sub(place.safety_stock) + place.backorder_limit;
                    if place.held > offer {
                        let over = place.held - offer;
                        report.oversold_units += over.min(*units) as u64;
                        let at = if many {
                            format!(" at {location}")
                        } else {
                            String::new()
                        };
                        breach(format!("holds {}{at} of {offer} on offer", place.held));
                    }
                }
            }
        }
        Event::ReservationCommitted(e) => {
            report.committed += 1;
            let id = e.reservation_id;
            report.commits.entry(sku.clone()).or_default().insert(id);
            let sold = u128::from(e.qty.get());
            let held_at = check
                .holds
                .get(&id)
                .map(|h| h.2.clone())
                .unwrap_or_default();
            if let Some(short) = check.sold_ahead_of_line(&id, &held_at) {
                breach(short);
            }
            let parts = match check.unhold(&id) {
                None => {
                    breach(format!(
                        "commits {id}, which is not live (never reserved, resolved or lapsed)"
                    ));
                    // Judge the sale against the only location, if there is one.
                    check
                        .only_location()
                        .map(|l| vec![(l, sold)])
                        .unwrap_or_default()
                }
                Some((held, _, parts)) => {
                    if held != sold {
                        breach(format!("commits {sold} of {id}, which holds {held}"));
                    }
                    parts
                }
            };
            resolve(check, id, t, &mut breach);
            if let Some(places) = &mut check.physical {
                let many = places_len_gt1(places);
                for (location, units) in parts {
                    let Some(place) = places.get_mut(&location) else {
                        continue;
                    };
                    if units > place.on_hand {
                        report.oversold_units += (units - place.on_hand) as u64;
                        let at = if many {
                            format!(" at {location}")
                        } else {
                            String::new()
                        };
                        breach(format!("sells {units}{at} with {} on hand", place.on_hand));
                    }
                    place.on_hand = place.on_hand.saturating_sub(units);
                }
            }
        }
        Event::BackorderLimitSet(e) => {
            let location = e.location.clone().or_else(|| check.only_location());
            match location
                .as_ref()
                .and_then(|l| check.physical.as_mut()?.get_mut(l))
            {
                Some(place) => {
                    if u128::from(e.previous.get()) != place.backorder_limit {
                        breach(format!(
                            "sets a backorder limit from {}; it was {}",
                            e.previous, place.backorder_limit
                        ));
                    }
                    place.backorder_limit = e.limit.get().into();
                }
                None => breach(format!(
                    "sets a backorder limit at {}, not one of its locations",
                    location.map_or("no location".into(), |l| l.to_string())
                )),
            }
            check.backorder_limit = check
                .physical
                .as_ref()
                .map_or(0, |p| p.values().map(|place| place.backorder_limit).sum());
        }
        Event::ReceiptExpected(e) => {
            let known = check
                .physical
                .as_ref()
                .is_some_and(|p| p.contains_key(&e.location));
            if !known || e.qty.is_zero() || e.eta <= e.at {
                breach(format!(
                    "expects receipt {} of {} at {} by {}: not a location of its, empty, or \
                     not in the future",
                    e.reference, e.qty, e.location, e.eta
                ));
            }
            let entry = (e.location.clone(), u128::from(e.qty.get()));
            if check
                .receipts
                .insert(e.reference.as_str().to_owned(), entry)
                .is_some()
            {
                breach(format!("expects receipt {} twice", e.reference));
            }
        }
        Event::ReceiptReceived(e) => {
            let units = u128::from(e.qty.get());
            match check.receipts.get_mut(e.reference.as_str()) {
                Some((location, expected))
                    if *location == e.location
                        && units > 0
                        && expected.saturating_sub(units) == u128::from(e.remaining.get()) =>
                {
                    *expected = u128::from(e.remaining.get());
                }
                _ => breach(format!(
                    "receives {} of receipt {} at {} leaving {}, which is not what it expected",
                    e.qty, e.reference, e.location, e.remaining
                )),
            }
            if e.remaining.is_zero() {
                check.receipts.remove(e.reference.as_str());
            }
            if let Some(place) = check.physical.as_mut().and_then(|p| p.get_mut(&e.location)) {
                place.on_hand += units;
            }
        }
        Event::ReceiptCancelled(e) => match check.receipts.remove(e.reference.as_str()) {
            Some((_, expected)) if expected == u128::from(e.qty.get()) => {}
            _ => breach(format!(
                "cancels {} of receipt {}, which is not what it expected",
                e.qty, e.reference
            )),
        },
        // Checked by `FairCheck` above.
        Event::FairSellingSet(_) | Event::WaitlistJoined(_) | Event::WaitlistLeft(_) => {}
        Event::BackorderFilled(e) => {
            report.filled += 1;
            let id = e.reservation_id;
            if !check.open.contains(&id) || e.qty.is_zero() {
                breach(format!(
                    "fills {} backordered units of {id}, which is not open",
                    e.qty
                ));
            }
            // First in, first out: what the hold has covered now fits in on hand after
            // every hold ahead of it (a lapsed hold is out of line here, so a true log
            // never breaches this).
            // (At a SKU at several locations the event does not say where: its sales are
            // checked there instead.)
            if let Some(hold) = check.holds.get(&id)
                && let Some(only) = check.only_location()
            {
                let covered = hold.0.saturating_sub(u128::from(e.backordered.get()));
                if let Some((on_hand, ahead)) = check.beyond_line(&id, &only, covered) {
                    breach(format!(
                        "fills {id} to {covered} covered with {on_hand} on hand and {ahead} \
                         ahead of it in line"
                    ));
                }
            }
        }
        Event::ReservationReleased(e) => {
            report.released += 1;
            check.unhold(&e.reservation_id);
            resolve(check, e.reservation_id, t, &mut breach);
        }
        Event::ReservationExpired(e) => {
            report.expired += 1;
            // A hold still counted at `t` has not reached its expiry: written too early.
            if let Some((_, expires_at, _)) = check.unhold(&e.reservation_id) {
                breach(format!(
                    "expires {} at {t}, before its expiry {expires_at}",
                    e.reservation_id
                ));
            }
            resolve(check, e.reservation_id, t, &mut breach);
        }
    }
}

fn places_len_gt1(places: &BTreeMap<LocationId, Place>) -> bool {
    places.len() > 1
}

/// Marks `id` resolved at `t`; it must have been created and not resolved since.
fn resolve(check: &mut SkuCheck, id: ReservationId, t: Timestamp, breach: &mut impl FnMut(String)) {
    if !check.open.remove(&id) {
        if check.resolved.contains_key(&id) {
            breach(format!("resolves {id} twice"));
        } else {
            breach(format!("resolves {id}, which was never created"));
        }
    }
    check.resolved.insert(id, t);
    check.made.remove(&id);
}

#[cfg(test)]
mod tests {
    use stockade_domain::testing::{
        adjusted, committed, expired, registered_physical, released, reserved, rid, secs,
    };
    use stockade_domain::{Quantity, StockChange};

    use super::*;

    fn check(events: &[Event]) -> LogReport {
        let sku = Sku::new("A").expect("sku");
        let mut state = SkuCheck::default();
        let mut report = LogReport::default();
        for (n, e) in events.iter().enumerate() {
            check_event(&mut state, e, &sku, Position::at(n as u64 + 1), &mut report);
        }
        report
    }

    /// Runs the stream checks on `(revision, event, key)` records.
    fn check_records(records: &[(u64, Event, Option<&str>)]) -> LogReport {
        let sku = Sku::new("A").expect("sku");
        let mut state = SkuCheck::default();
        let mut report = LogReport::default();
        for (n, (revision, e, key)) in records.iter().enumerate() {
            let meta = EventMetadata {
                idempotency_key: key.map(str::to_owned),
                ..EventMetadata::new(uuid::Uuid::new_v4(), e.at())
            };
            let at = Position::at(n as u64 + 1);
            check_record(
                &mut state,
                KEY_RETENTION,
                *revision,
                e,
                &meta,
                &sku,
                at,
                &mut report,
            );
            check_event(&mut state, e, &sku, at, &mut report);
        }
        report
    }

    /// Backorders: holds within the limit are no oversell; a sale of units owed to a hold
    /// ahead, or a fill out of line order, is a breach.
    #[test]
    fn backorders_are_filled_and_sold_in_line_order() {
        use stockade_domain::{
            BackorderFilled, BackorderLimitSet, ReceiptExpected, ReceiptReceived,
        };
        let po = stockade_domain::ReceiptRef::new("PO-1").expect("ref");
        let default = LocationId::new(DEFAULT_LOCATION).expect("location");
        let base = vec![
            registered_physical(0, 0),
            Event::BackorderLimitSet(BackorderLimitSet {
                location: None,
                limit: Quantity::new(4),
                previous: Quantity::ZERO,
                at: secs(1),
            }),
            reserved(1, 2, secs(2), secs(100)),
            reserved(2, 2, secs(3), secs(100)),
            Event::ReceiptExpected(ReceiptExpected {
                reference: po.clone(),
                location: default.clone(),
                qty: Quantity::new(2),
                eta: secs(50),
                at: secs(4),
            }),
            Event::ReceiptReceived(ReceiptReceived {
                reference: po,
                location: default,
                qty: Quantity::new(2),
                remaining: Quantity::ZERO,
                at: secs(5),
            }),
        ];
        let fill = |id: u128| {
            Event::BackorderFilled(BackorderFilled {
                reservation_id: rid(id),
                qty: Quantity::new(2),
                backordered: Quantity::ZERO,
                at: secs(5),
            })
        };
        let mut fair = base.clone();
        fair.extend([fill(1), committed(1, 2, secs(6))]);
        let report = check(&fair);
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.filled, 1);
        // The second in line filled first, and sold with the first still owed.
        let mut unfair = base;
        unfair.extend([fill(2), committed(2, 2, secs(6))]);
        let report = check(&unfair);
        assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
        assert!(report.violations[0].contains("ahead of it in line"));
        assert!(report.violations[1].contains("owed to holds ahead"));
    }

    #[test]
    fn gaps_and_keys_applied_twice_are_named() {
        let window = KEY_RETENTION.as_secs();
        let report = check_records(&[
            (0, registered_physical(5, 0), None),
            (1, reserved(1, 1, secs(1), secs(100)), Some("k1")),
            (3, reserved(2, 1, secs(2), secs(100)), Some("k2")),
            (4, reserved(3, 1, secs(3), secs(100)), Some("k1")),
            // Past the key window: a new request.
            (
                5,
                reserved(4, 1, secs(window + 10), secs(window + 100)),
                Some("k2"),
            ),
        ]);
        assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
        assert!(
            report.violations[0].starts_with("position 3: A is at revision 3, expected 2"),
            "{:?}",
            report.violations
        );
        assert!(
            report.violations[1].starts_with("position 4: A applies idempotency key \"k1\""),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn a_key_whose_event_id_comes_back_next_is_applied_twice() {
        let sku = Sku::new("A").expect("sku");
        let mut state = SkuCheck::default();
        let mut report = LogReport::default();
        let id = uuid::Uuid::new_v4();
        let events = [
            registered_physical(5, 0),
            reserved(1, 1, secs(1), secs(100)),
            reserved(2, 1, secs(2), secs(100)),
        ];
        for (n, e) in events.iter().enumerate() {
            let meta = EventMetadata {
                idempotency_key: (n > 0).then(|| "retry".to_owned()),
                ..EventMetadata::new(if n > 0 { id } else { uuid::Uuid::new_v4() }, e.at())
            };
            let at = Position::at(n as u64 + 1);
            check_record(
                &mut state,
                KEY_RETENTION,
                n as u64,
                e,
                &meta,
                &sku,
                at,
                &mut report,
            );
            check_event(&mut state, e, &sku, at, &mut report);
        }
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
        assert!(report.violations[0].contains("applies idempotency key \"retry\" again"));
    }

    #[test]
    fn a_legal_history_passes() {
        let window = KEY_RETENTION.as_secs();
        let report = check(&[
            registered_physical(2, 0),
            reserved(1, 2, secs(0), secs(10)),
            // R1 lapsed at 10: its units are free before its expiry is written.
            reserved(2, 2, secs(10), secs(20)),
            expired(1, 2, secs(10), secs(11)),
            released(2, 2, secs(12)),
            // The id comes back (its key used again) once the key window has passed.
            reserved(2, 1, secs(12 + window + 1), secs(12 + window + 9)),
        ]);
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.oversold_units, 0);
    }

    #[test]
    fn holding_more_than_is_on_offer_is_an_oversell() {
        let report = check(&[
            registered_physical(3, 1),
            reserved(1, 1, secs(0), secs(10)),
            committed(1, 1, secs(1)),
            reserved(2, 2, secs(2), secs(10)),
        ]);
        assert_eq!(report.oversold_units, 1, "{:?}", report.violations);
    }

    fn extended(id: u128, from: u64, to: u64, at: u64) -> Event {
        Event::ReservationExtended(stockade_domain::ReservationExtended {
            reservation_id: rid(id),
            previous_expires_at: secs(from),
            expires_at: secs(to),
            at: secs(at),
        })
    }

    fn reduced(id: u128, n: u64, left: u64, sold: bool, at: u64) -> Event {
        Event::ReservationReduced(stockade_domain::ReservationReduced {
            reservation_id: rid(id),
            qty: Quantity::new(n),
            remaining: Quantity::new(left),
            outcome: if sold {
                stockade_domain::Resolution::Committed
            } else {
                stockade_domain::Resolution::Released
            },
            parts: Vec::new(),
            at: secs(at),
        })
    }

    fn increased(id: u128, n: u64, total: u64, at: u64) -> Event {
        Event::ReservationIncreased(stockade_domain::ReservationIncreased {
            reservation_id: rid(id),
            qty: Quantity::new(n),
            total: Quantity::new(total),
            parts: Vec::new(),
            at: secs(at),
        })
    }

    #[test]
    fn changes_to_live_holds_are_followed_and_judged() {
        // Legal: extended past its first expiry, grown, partly sold, partly given back.
        let report = check(&[
            registered_physical(4, 0),
            reserved(1, 2, secs(0), secs(10)),
            extended(1, 10, 30, 5),
            increased(1, 2, 4, 20),
            reduced(1, 1, 3, true, 21),
            reduced(1, 1, 2, false, 22),
            // 3 on hand, 2 held: one more unit may be held.
            reserved(2, 1, secs(23), secs(40)),
            committed(1, 2, secs(24)),
        ]);
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!(report.changed, 4);
        // Growing beyond what is on offer is an oversell; so is a change to a lapsed hold,
        // an extension past 7 days, and ending more than is held.
        let report = check(&[
            registered_physical(3, 0),
            reserved(1, 2, secs(0), secs(10)),
            increased(1, 2, 4, 1),
        ]);
        assert_eq!(report.oversold_units, 1, "{:?}", report.violations);
        let week = 7 * 24 * 3600;
        let report = check(&[
            registered_physical(3, 0),
            reserved(1, 2, secs(0), secs(10)),
            extended(1, 10, week + 1, 1),
            reduced(1, 3, 1, false, 2),
            reserved(2, 1, secs(3), secs(5)),
            extended(2, 5, 9, 6),
        ]);
        // Ending 3 of 2 is named twice: against the hold, and against its location.
        assert_eq!(report.violations.len(), 4, "{:?}", report.violations);
    }

    /// A reservation at `location`s of a SKU at several locations.
    fn held_at(id: u128, parts: &[(&str, u64)], at: u64) -> Event {
        let qty = parts.iter().map(|(_, q)| q).sum();
        let Event::StockReserved(e) = reserved(id, qty, secs(at), secs(at + 60)) else {
            unreachable!("reserved builds a StockReserved")
        };
        Event::StockReserved(stockade_domain::StockReserved {
            parts: parts
                .iter()
                .map(|(l, q)| stockade_domain::Part {
                    location: LocationId::new(*l).expect("location"),
                    qty: stockade_domain::Quantity::new(*q),
                })
                .collect(),
            ..e
        })
    }

    fn two_locations() -> Event {
        use stockade_domain::testing::registered;
        use stockade_domain::{LocationConfig, Quantity};
        let at = |l: &str, n: u64| LocationConfig {
            location: LocationId::new(l).expect("location"),
            on_hand: Quantity::new(n),
            safety_stock: Quantity::ZERO,
            priority: 0,
        };
        registered(PoolConfig::at_locations(vec![
            at("berlin", 1),
            at("munich", 5),
        ]))
    }

    #[test]
    fn each_location_is_judged_on_its_own_stock() {
        // Legal: within each location, and given back where it was held.
        let legal = check(&[
            two_locations(),
            held_at(1, &[("berlin", 1), ("munich", 2)], 0),
            released(1, 3, secs(1)),
            held_at(2, &[("berlin", 1)], 2),
            committed(2, 1, secs(3)),
        ]);
        assert_eq!(legal.violations, Vec::<String>::new());

        // The SKU has 6 in all, but Berlin has 1: two there is an oversell, though the
        // total would cover it.
        let over = check(&[
            two_locations(),
            held_at(1, &[("berlin", 1)], 0),
            held_at(2, &[("berlin", 1)], 1),
        ]);
        assert_eq!(over.oversold_units, 1, "{:?}", over.violations);
        assert!(
            over.violations.join("\n").contains("at berlin"),
            "{:?}",
            over.violations
        );

        let nowhere = check(&[two_locations(), reserved(1, 1, secs(0), secs(10))]);
        assert!(
            nowhere
                .violations
                .join("\n")
                .contains("without saying at which"),
            "{:?}",
            nowhere.violations
        );
        let unknown = check(&[two_locations(), held_at(1, &[("paris", 1)], 0)]);
        assert!(
            unknown
                .violations
                .join("\n")
                .contains("not one of its locations"),
            "{:?}",
            unknown.violations
        );
    }

    #[test]
    fn a_transfer_of_promised_units_or_received_twice_is_a_breach() {
        use stockade_domain::{Quantity, TransferId, TransferReceived, TransferShipped};
        let ship = |n: u64| {
            Event::TransferShipped(TransferShipped {
                transfer_id: TransferId::new("T1").expect("id"),
                from: LocationId::new("munich").expect("location"),
                to: LocationId::new("berlin").expect("location"),
                qty: Quantity::new(n),
                reference: None,
                at: secs(1),
            })
        };
        let receive = Event::TransferReceived(TransferReceived {
            transfer_id: TransferId::new("T1").expect("id"),
            to: LocationId::new("berlin").expect("location"),
            qty: Quantity::new(3),
            at: secs(2),
        });
        let legal = check(&[
            two_locations(),
            held_at(1, &[("munich", 2)], 0),
            ship(3),
            receive.clone(),
            held_at(2, &[("berlin", 4)], 3),
        ]);
        assert_eq!(legal.violations, Vec::<String>::new());
        let promised = check(&[two_locations(), held_at(1, &[("munich", 2)], 0), ship(4)]);
        assert!(
            promised.violations.join("\n").contains("not promised"),
            "{:?}",
            promised.violations
        );
        let twice = check(&[two_locations(), ship(3), receive.clone(), receive]);
        assert!(
            twice.violations.join("\n").contains("not in transit"),
            "{:?}",
            twice.violations
        );
    }

    #[test]
    fn a_kit_that_holds_stock_itself_is_a_breach() {
        use stockade_domain::testing::registered;
        use stockade_domain::{Component, PoolConfig, Quantity};
        let kit = PoolConfig::Kit {
            components: vec![Component {
                sku: Sku::new("MUG").expect("sku"),
                qty: Quantity::new(2),
            }],
        };
        assert!(check(&[registered(kit.clone())]).violations.is_empty());
        let report = check(&[registered(kit), reserved(1, 1, secs(0), secs(10))]);
        assert!(
            report.violations.join("\n").contains("it is a kit"),
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn breaches_are_named() {
        let report = check(&[
            registered_physical(1, 0),
            reserved(1, 1, secs(0), secs(100)),
            expired(1, 1, secs(100), secs(5)),
            reserved(1, 1, secs(6), secs(100)),
            committed(7, 1, secs(7)),
            adjusted(StockChange::Delta(1), 9, 10, "recount", &[], secs(8)),
        ]);
        let text = report.violations.join("\n");
        assert!(text.contains("before its expiry"), "{text}");
        assert!(text.contains("created twice"), "{text}");
        assert!(text.contains("which is not live"), "{text}");
        assert!(text.contains("adjusts from 9"), "{text}");
    }
}
