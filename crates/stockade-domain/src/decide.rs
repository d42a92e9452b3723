//! The decision: given a SKU's state, a command and the time, which events happen, or why
//! not. Pure and total: every input, however hostile, gives events or a [`Rejection`].

use crate::allocation::Placement;
use crate::allocation::{Part, Unallocatable, allocate};
use crate::command::{
    Adjust, Amend, CancelReceipt, Command, Commit, ExpectReceipt, Expire, Extend, JoinWaitlist,
    LeaveWaitlist, MAX_LIMIT_WINDOW, MAX_REASON_CHARS, MAX_REFERENCE_CHARS, MAX_TTL,
    MAX_WAITLIST_HOLD, MIN_WAITLIST_HOLD, ReceiveReceipt, ReceiveTransfer, Reduce, RegisterSku,
    Release, Reserve, SetBackorderLimit, SetFairSelling, ShipTransfer, StockChange,
};
use crate::event::{
    BackorderFilled, BackorderLimitSet, Event, FairSellingSet, LeftReason, ReceiptCancelled,
    ReceiptExpected, ReceiptReceived, ReservationCommitted, ReservationExpired,
    ReservationExtended, ReservationIncreased, ReservationReduced, ReservationReleased,
    SkuRegistered, StockAdjusted, StockReserved, TransferReceived, TransferShipped, WaitlistJoined,
    WaitlistLeft,
};
use crate::ids::{CustomerId, ReservationId};
use crate::pool::{PoolConfig, PoolKind};
use crate::quantity::{ArithmeticError, Quantity};
use crate::rejection::{Rejection, Resolution};
use crate::state::{
    Availability, MAX_IN_TRANSIT, MAX_RECEIPTS, MAX_WAITERS, Reservation, SkuState, StockRef,
};
use crate::time::Timestamp;

/// Decides `command` against `state` at `now`.
///
/// The events returned, applied in order to `state`, always succeed (a property test holds
/// this function to it).
///
/// Time never runs backwards within a SKU: a `now` earlier than the SKU's latest event (a
/// clock stepped back, or skew between two nodes) is taken as that event's instant. So
/// event times are non-decreasing along a stream, and a print-on-demand period that has
/// already been left cannot be reopened.
pub fn decide(
    state: &SkuState,
    command: &Command,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let Some(stock) = state.speculative() else {
        return match command {
            Command::RegisterSku(c) => register(c, now),
            _ => Err(Rejection::UnknownSku),
        };
    };
    let now = now.max(stock.last_event_at());
    let event = match command {
        Command::RegisterSku(c) => {
            return Err(Rejection::AlreadyRegistered { sku: c.sku.clone() });
        }
        Command::Reserve(c) => reserve(stock, c, now)?,
        Command::Commit(c) => commit(stock, c, now)?,
        Command::Release(c) => release(stock, c, now)?,
        Command::Extend(c) => extend(stock, c, now)?,
        Command::Reduce(c) => reduce(stock, c, now)?,
        Command::Amend(c) => amend(stock, c, now)?,
        Command::Expire(c) => expire(stock, c, now)?,
        Command::Adjust(c) => adjust(stock, c, now)?,
        Command::ShipTransfer(c) => ship(stock, c, now)?,
        Command::ReceiveTransfer(c) => receive(stock, c, now)?,
        Command::SetBackorderLimit(c) => set_backorder_limit(stock, c, now)?,
        Command::ExpectReceipt(c) => expect_receipt(stock, c, now)?,
        Command::ReceiveReceipt(c) => receive_receipt(stock, c, now)?,
        Command::CancelReceipt(c) => cancel_receipt(stock, c, now)?,
        Command::SetFairSelling(c) => set_fair_selling(stock, c, now)?,
        Command::JoinWaitlist(c) => join_waitlist(stock, c, now)?,
        Command::LeaveWaitlist(c) => leave_waitlist(stock, c, now)?,
        // Several events, none of which frees stock (so none fills a backorder).
        Command::ServeWaitlist => return serve_waitlist(stock, now),
    };
    // Stock freed or brought in fills the backorders waiting, first in first out: each
    // filling is told in the same decision, right after its cause.
    let fills = stock.fills(&event);
    let mut events = Vec::with_capacity(1 + fills.len());
    events.push(event);
    events.extend(fills.into_iter().map(|(id, qty, backordered)| {
        Event::BackorderFilled(BackorderFilled {
            reservation_id: id,
            qty,
            backordered,
            at: now,
        })
    }));
    Ok(events)
}

fn register(c: &RegisterSku, now: Timestamp) -> Result<Vec<Event>, Rejection> {
    for quantity in c.pool.quantities() {
        quantity.in_range()?;
    }
    if let PoolConfig::PrintOnDemand { period_millis, .. } = c.pool
        && period_millis == 0
    {
        return Err(Rejection::InvalidPool {
            reason: "a print-on-demand period must be at least 1 ms".into(),
        });
    }
    if let PoolConfig::Kit { components } = &c.pool {
        crate::pool::check_kit(&c.sku, components)?;
    }
    if let PoolConfig::Physical {
        on_hand,
        safety_stock,
        locations,
    } = &c.pool
    {
        crate::pool::check_locations(*on_hand, *safety_stock, locations)?;
    }
    Ok(vec![Event::SkuRegistered(SkuRegistered {
        sku: c.sku.clone(),
        pool: c.pool.clone(),
        at: now,
    })])
}

fn reserve(stock: StockRef<'_>, c: &Reserve, now: Timestamp) -> Result<Event, Rejection> {
    if stock.pool_kind() == PoolKind::Kit {
        return Err(Rejection::UnsupportedForPool {
            pool: PoolKind::Kit,
            what: "be held itself (an order for a kit holds its components)".into(),
        });
    }
    if c.qty.is_zero() {
        return Err(Rejection::InvalidQuantity);
    }
    c.qty.in_range()?;
    // A TTL under a millisecond would expire at `now`: a hold that never holds.
    let expires_at = now
        .checked_add(c.ttl)
        .filter(|at| *at > now && c.ttl <= MAX_TTL)
        .ok_or(Rejection::InvalidTtl)?;
    // Only a live id can be seen here. Ids are the engine's (random, or derived from an
    // idempotency key whose earlier use the engine finds in the log), so an id that ended
    // is never offered again within the key window.
    if stock.reservation(&c.reservation_id).is_some() {
        return Err(Rejection::DuplicateReservation {
            reservation_id: c.reservation_id,
        });
    }
    // First come, first served: while anyone waits, freed stock is theirs (the engine
    // serves the line after every decision), so a newcomer queues behind them.
    let (waiting, _) = stock.waitlist_len();
    if waiting > 0 {
        return Err(Rejection::Waitlisted {
            waiting: u64::try_from(waiting).unwrap_or(u64::MAX),
        });
    }
    within_limit(stock, c.customer.as_ref(), c.qty, now)?;
    let parts = take(stock, &c.placement, c.qty, now)?;
    // Every pool counts what it holds (unlimited ones too); that count must not wrap.
    stock.reserved_total().checked_add(c.qty)?;
    Ok(Event::StockReserved(StockReserved {
        reservation_id: c.reservation_id,
        order_id: c.order_id.clone(),
        lines: c.lines.clone(),
        qty: c.qty,
        parts,
        channel: c.channel.clone(),
        at: now,
        expires_at,
        customer: c.customer.clone(),
        waitlist: None,
    }))
}

/// Whether `customer` may hold `qty` more units under the SKU's purchase limit. Their
/// live holds and their purchases inside the window count; the single writer decides
/// one command at a time, so concurrent orders of one customer cannot overrun it.
fn within_limit(
    stock: StockRef<'_>,
    customer: Option<&CustomerId>,
    qty: Quantity,
    now: Timestamp,
) -> Result<(), Rejection> {
    let Some((limit, _)) = stock.purchase_limit() else {
        return Ok(());
    };
    let Some(customer) = customer else {
        return Err(Rejection::CustomerRequired);
    };
    let counted = stock.counted(customer, now);
    if counted.checked_add(qty)? > limit {
        return Err(Rejection::PurchaseLimit {
            customer: customer.clone(),
            limit,
            counted,
            requested: qty,
            remaining: limit.saturating_sub(counted),
        });
    }
    Ok(())
}

/// Whether `qty` more units may be held now, and where they come from (empty parts at a
/// SKU with one location): the check every new hold, and every hold that grows, passes.
fn take(
    stock: StockRef<'_>,
    placement: &Placement,
    qty: Quantity,
    now: Timestamp,
) -> Result<Vec<Part>, Rejection> {
    if stock.location_count() > 1 {
        return place(stock, placement, qty, now);
    }
    // One location (or none): the whole SKU's figures are that location's.
    if let Some(location) = &placement.location
        && stock.locations(now).first().map(|l| &l.location) != Some(location)
    {
        return Err(Rejection::UnknownLocation {
            location: location.clone(),
        });
    }
    let shortfall = stock.shortfall(now);
    if !shortfall.is_zero() {
        return Err(Rejection::Short { shortfall });
    }
    if let Availability::Limited(available) = stock.available(now)
        && qty > available
    {
        return Err(Rejection::InsufficientStock {
            requested: qty,
            available,
        });
    }
    Ok(Vec::new())
}

/// Where the units of a line at a SKU with several locations come from: the allocation,
/// decided here, in the writer, against what each location can offer now. A location
/// short of what it promised offers nothing; a line that names one is refused as short.
fn place(
    stock: StockRef<'_>,
    placement: &Placement,
    qty: Quantity,
    now: Timestamp,
) -> Result<Vec<Part>, Rejection> {
    let offers = stock.offers(now);
    if let Some(hard) = &placement.location {
        match offers.iter().find(|(o, _)| o.location == hard) {
            None => {
                return Err(Rejection::UnknownLocation {
                    location: hard.clone(),
                });
            }
            Some((_, shortfall)) if !shortfall.is_zero() => {
                return Err(Rejection::Short {
                    shortfall: *shortfall,
                });
            }
            Some(_) => {}
        }
    }
    let offer: Vec<_> = offers.into_iter().map(|(o, _)| o).collect();
    allocate(&offer, &placement.request(qty)).map_err(|e| match e {
        Unallocatable::UnknownLocation(location) => Rejection::UnknownLocation { location },
        Unallocatable::Insufficient { available } => Rejection::InsufficientStock {
            requested: qty,
            available,
        },
    })
}

/// The live, unlapsed reservation `id`, or why it cannot be resolved by its holder.
fn holdable(
    stock: StockRef<'_>,
    id: ReservationId,
    now: Timestamp,
) -> Result<Reservation, Rejection> {
    match stock.reservation(&id) {
        Some(r) if r.expires_at <= now => Err(Rejection::Lapsed {
            reservation_id: id,
            expires_at: r.expires_at,
        }),
        Some(r) => Ok(r),
        None => Err(not_live(id)),
    }
}

/// Not live here: never held, or resolved. Which of the two is history, and history is
/// the log's: the engine turns this into `AlreadyResolved` when the log says so.
fn not_live(id: ReservationId) -> Rejection {
    Rejection::UnknownReservation { reservation_id: id }
}

fn commit(stock: StockRef<'_>, c: &Commit, now: Timestamp) -> Result<Event, Rejection> {
    let r = holdable(stock, c.reservation_id, now)?;
    if stock.at_risk(now).contains(&r.id) {
        return Err(Rejection::AtRisk {
            reservation_id: r.id,
        });
    }
    let backordered = stock.backordered_of(&r.id);
    if !backordered.is_zero() {
        return Err(Rejection::Backordered {
            reservation_id: r.id,
            backordered,
        });
    }
    Ok(Event::ReservationCommitted(ReservationCommitted {
        reservation_id: r.id,
        qty: r.qty,
        at: now,
    }))
}

fn release(stock: StockRef<'_>, c: &Release, now: Timestamp) -> Result<Event, Rejection> {
    let r = holdable(stock, c.reservation_id, now)?;
    Ok(Event::ReservationReleased(ReservationReleased {
        reservation_id: r.id,
        qty: r.qty,
        at: now,
    }))
}

fn extend(stock: StockRef<'_>, c: &Extend, now: Timestamp) -> Result<Event, Rejection> {
    let r = holdable(stock, c.reservation_id, now)?;
    let expires_at = now
        .checked_add(c.ttl)
        .filter(|at| *at > now && c.ttl <= MAX_TTL)
        .ok_or(Rejection::InvalidTtl)?;
    // The 7-day bound is from the hold's making, so extensions cannot chain past it.
    let latest = r.reserved_at.checked_add(MAX_TTL).unwrap_or(r.reserved_at);
    if expires_at > latest {
        return Err(Rejection::BeyondMaxHold {
            reservation_id: r.id,
            latest,
        });
    }
    if expires_at <= r.expires_at {
        return Err(Rejection::NotAnExtension {
            reservation_id: r.id,
            expires_at: r.expires_at,
        });
    }
    Ok(Event::ReservationExtended(ReservationExtended {
        reservation_id: r.id,
        previous_expires_at: r.expires_at,
        expires_at,
        at: now,
    }))
}

/// Part of a hold sold or given back. Selling follows the whole commit's rule: a hold
/// that is at risk sells nothing until the shortage is resolved.
fn reduce(stock: StockRef<'_>, c: &Reduce, now: Timestamp) -> Result<Event, Rejection> {
    let r = holdable(stock, c.reservation_id, now)?;
    if c.qty.is_zero() {
        return Err(Rejection::InvalidQuantity);
    }
    if c.qty > r.qty {
        return Err(Rejection::ExceedsHold {
            reservation_id: r.id,
            requested: c.qty,
            held: r.qty,
        });
    }
    if c.sell && stock.at_risk(now).contains(&r.id) {
        return Err(Rejection::AtRisk {
            reservation_id: r.id,
        });
    }
    // A hold's first units are the covered ones: those may be sold, the rest wait.
    if c.sell {
        let backordered = stock.backordered_of(&r.id);
        if c.qty > r.qty.saturating_sub(backordered) {
            return Err(Rejection::Backordered {
                reservation_id: r.id,
                backordered,
            });
        }
    }
    if c.qty == r.qty {
        return Ok(ended_whole(r.id, r.qty, c.sell, now));
    }
    Ok(Event::ReservationReduced(reduced(
        stock, r, c.qty, c.sell, now,
    )))
}

/// The whole hold sold or given back: the events a commit and a release write.
fn ended_whole(id: ReservationId, qty: Quantity, sell: bool, at: Timestamp) -> Event {
    if sell {
        Event::ReservationCommitted(ReservationCommitted {
            reservation_id: id,
            qty,
            at,
        })
    } else {
        Event::ReservationReleased(ReservationReleased {
            reservation_id: id,
            qty,
            at,
        })
    }
}

/// `qty` (fewer than held) of `r`'s units ended, taken from its last parts first.
fn reduced(
    stock: StockRef<'_>,
    r: Reservation,
    qty: Quantity,
    sell: bool,
    at: Timestamp,
) -> ReservationReduced {
    ReservationReduced {
        reservation_id: r.id,
        qty,
        remaining: r.qty.saturating_sub(qty),
        outcome: if sell {
            Resolution::Committed
        } else {
            Resolution::Released
        },
        parts: stock.parts_to_end(&r.id, qty),
        at,
    }
}

/// A hold changed to a new quantity: grown after the checks a new hold passes, shrunk by
/// giving units back, ended at 0.
fn amend(stock: StockRef<'_>, c: &Amend, now: Timestamp) -> Result<Event, Rejection> {
    let r = holdable(stock, c.reservation_id, now)?;
    c.qty.in_range()?;
    if c.qty == r.qty {
        return Err(Rejection::Unchanged {
            reservation_id: r.id,
            qty: r.qty,
        });
    }
    if c.qty.is_zero() {
        return Ok(ended_whole(r.id, r.qty, false, now));
    }
    if c.qty < r.qty {
        let fewer = r.qty.saturating_sub(c.qty);
        return Ok(Event::ReservationReduced(reduced(
            stock, r, fewer, false, now,
        )));
    }
    let more = c.qty.checked_sub(r.qty)?;
    if stock.pool_kind() == PoolKind::PrintOnDemand
        && stock.period_of(r.reserved_at) != stock.period_of(now)
    {
        return Err(Rejection::UnsupportedForPool {
            pool: PoolKind::PrintOnDemand,
            what: "grow a hold made in an earlier period (hold the extra units anew)".into(),
        });
    }
    // A hold without a customer at a SKU with a limit predates the limit: its growth
    // is not a customer's to count.
    if let Some(customer) = stock.customer_of(&r.id) {
        within_limit(stock, Some(customer), more, now)?;
    }
    let parts = take(stock, &c.placement, more, now)?;
    let total = stock.reserved_total().checked_add(more)?;
    // A hold keeps its place in line: growing it beyond what is on hand would push the
    // backorders behind it further back. Beyond stock, the extra units are a new line.
    if !stock.backorder_limit().is_zero()
        && let Some(on_hand) = stock.limit()
        && total > on_hand
    {
        return Err(Rejection::InsufficientStock {
            requested: more,
            available: on_hand.saturating_sub(stock.reserved_total()),
        });
    }
    Ok(Event::ReservationIncreased(ReservationIncreased {
        reservation_id: r.id,
        qty: more,
        total: c.qty,
        parts,
        at: now,
    }))
}

fn expire(stock: StockRef<'_>, c: &Expire, now: Timestamp) -> Result<Event, Rejection> {
    match stock.reservation(&c.reservation_id) {
        Some(r) if r.expires_at > now => Err(Rejection::NotYetExpired {
            reservation_id: r.id,
            expires_at: r.expires_at,
        }),
        Some(r) => Ok(Event::ReservationExpired(ReservationExpired {
            reservation_id: r.id,
            qty: r.qty,
            expires_at: r.expires_at,
            at: now,
        })),
        None => Err(not_live(c.reservation_id)),
    }
}

fn adjust(stock: StockRef<'_>, c: &Adjust, now: Timestamp) -> Result<Event, Rejection> {
    let reason_chars = c.reason.trim().chars().count();
    if reason_chars == 0 || c.reason.chars().count() > MAX_REASON_CHARS {
        return Err(Rejection::InvalidReason {
            max: MAX_REASON_CHARS,
        });
    }
    if let Some(reference) = &c.reference
        && reference.chars().count() > MAX_REFERENCE_CHARS
    {
        return Err(Rejection::InvalidReference {
            max: MAX_REFERENCE_CHARS,
        });
    }
    if stock.pool_kind() == PoolKind::Kit {
        return Err(Rejection::UnsupportedForPool {
            pool: PoolKind::Kit,
            what: "be adjusted (its stock is its components')".into(),
        });
    }
    if stock.location_count() > 1 || c.location.is_some() {
        return adjust_location(stock, c, now);
    }
    let Some(previous) = stock.limit() else {
        return Err(Rejection::UnsupportedForPool {
            pool: stock.pool_kind(),
            what: "be adjusted (it has no limit)".into(),
        });
    };
    let current = changed(previous, c.change)?;
    // A count below what is promised is still a fact: accept it, name who is at risk.
    // Backorders within their limit are expected, not at risk.
    let at_risk = stock.at_risk_with_limit(now, current.saturating_add(stock.backorder_limit()));
    Ok(Event::StockAdjusted(StockAdjusted {
        location: None,
        change: c.change,
        previous,
        current,
        reason: c.reason.clone(),
        reference: c.reference.clone(),
        at_risk,
        at: now,
    }))
}

/// The new figure after `change` to `previous`, or why not.
fn changed(previous: Quantity, change: StockChange) -> Result<Quantity, Rejection> {
    match change {
        StockChange::Delta(0) => Err(Rejection::ZeroDelta),
        StockChange::Delta(delta) => previous.checked_add_signed(delta).map_err(|e| match e {
            ArithmeticError::Underflow { .. } => Rejection::BelowZero {
                current: previous,
                delta,
            },
            other @ (ArithmeticError::Overflow { .. }
            | ArithmeticError::TooLarge { .. }
            | ArithmeticError::ProductOverflow { .. }) => other.into(),
        }),
        StockChange::Count(counted) => Ok(counted.in_range()?),
    }
}

/// An adjustment or count of one location's on hand. At a SKU with several locations the
/// location must be named; at a SKU with one, naming it is allowed. The SKU's total moves
/// by the same amount, and only holds at this location can be put at risk.
fn adjust_location(stock: StockRef<'_>, c: &Adjust, now: Timestamp) -> Result<Event, Rejection> {
    let locations = stock.locations(now);
    if locations.is_empty() {
        return Err(match &c.location {
            Some(location) => Rejection::UnknownLocation {
                location: location.clone(),
            },
            None => Rejection::UnsupportedForPool {
                pool: stock.pool_kind(),
                what: "be adjusted (it has no limit)".into(),
            },
        });
    }
    let here = match &c.location {
        None if locations.len() > 1 => Err(Rejection::LocationRequired),
        None => locations.first().ok_or(Rejection::LocationRequired),
        Some(location) => locations
            .iter()
            .find(|l| &l.location == location)
            .ok_or_else(|| Rejection::UnknownLocation {
                location: location.clone(),
            }),
    }?;
    let previous = here.on_hand;
    let current = changed(previous, c.change)?;
    // The SKU's total must stay in range too, and so must both once the units in transit
    // arrive: a receipt is never refused for a range a count let slip.
    stock
        .limit()
        .unwrap_or(Quantity::ZERO)
        .saturating_sub(previous)
        .checked_add(current)?
        .checked_add(stock.in_transit())?
        .in_range()?;
    current.checked_add(here.incoming)?.in_range()?;
    Ok(Event::StockAdjusted(StockAdjusted {
        // Recorded when named (always, at several locations): so a keyed retry's command
        // and the event it wrote compare equal.
        location: c.location.clone(),
        change: c.change,
        previous,
        current,
        reason: c.reason.clone(),
        reference: c.reference.clone(),
        at_risk: stock.at_risk_at(now, &here.location, current),
        at: now,
    }))
}

fn ship(stock: StockRef<'_>, c: &ShipTransfer, now: Timestamp) -> Result<Event, Rejection> {
    let invalid = |reason: &str| {
        Err(Rejection::InvalidTransfer {
            reason: reason.into(),
        })
    };
    if stock.location_count() == 0 {
        return Err(Rejection::UnsupportedForPool {
            pool: stock.pool_kind(),
            what: "transfer stock (it has no locations)".into(),
        });
    }
    if let Some(reference) = &c.reference
        && reference.chars().count() > MAX_REFERENCE_CHARS
    {
        return Err(Rejection::InvalidReference {
            max: MAX_REFERENCE_CHARS,
        });
    }
    if c.qty.is_zero() {
        return Err(Rejection::InvalidQuantity);
    }
    c.qty.in_range()?;
    if c.from == c.to {
        return invalid("a transfer needs two different locations");
    }
    if stock.transfer(&c.transfer_id).is_some() {
        return Err(Rejection::DuplicateTransfer {
            transfer_id: c.transfer_id.clone(),
        });
    }
    if stock.transfers_in_transit() >= MAX_IN_TRANSIT {
        return invalid("too many transfers in transit; receive some first");
    }
    let locations = stock.locations(now);
    let find = |l| locations.iter().find(|v| &v.location == l);
    let Some(from) = find(&c.from) else {
        return Err(Rejection::UnknownLocation {
            location: c.from.clone(),
        });
    };
    let Some(to) = find(&c.to) else {
        return Err(Rejection::UnknownLocation {
            location: c.to.clone(),
        });
    };
    // Received, the units must fit in range where they arrive.
    to.on_hand
        .checked_add(to.incoming)?
        .checked_add(c.qty)?
        .in_range()?;
    // Units promised to buyers here stay here; the rest (safety stock too) may leave.
    let free = from.on_hand.saturating_sub(from.reserved);
    if c.qty > free {
        return Err(Rejection::InsufficientStock {
            requested: c.qty,
            available: free,
        });
    }
    Ok(Event::TransferShipped(TransferShipped {
        transfer_id: c.transfer_id.clone(),
        from: c.from.clone(),
        to: c.to.clone(),
        qty: c.qty,
        reference: c.reference.clone(),
        at: now,
    }))
}

fn receive(stock: StockRef<'_>, c: &ReceiveTransfer, now: Timestamp) -> Result<Event, Rejection> {
    let Some((_, to, qty)) = stock.transfer(&c.transfer_id) else {
        return Err(Rejection::UnknownTransfer {
            transfer_id: c.transfer_id.clone(),
        });
    };
    // Shipping and counting keep this in range; a log written otherwise is refused here
    // rather than decided into an event its own fold would refuse.
    arrival_fits(stock, &to, qty, now)?;
    Ok(Event::TransferReceived(TransferReceived {
        transfer_id: c.transfer_id.clone(),
        to,
        qty,
        at: now,
    }))
}

/// Whether `qty` units arriving at `location` keep its on hand, and the SKU's, in range.
fn arrival_fits(
    stock: StockRef<'_>,
    location: &crate::ids::LocationId,
    qty: Quantity,
    now: Timestamp,
) -> Result<(), Rejection> {
    let here = stock
        .locations(now)
        .into_iter()
        .find(|l| &l.location == location)
        .map_or(Quantity::ZERO, |l| l.on_hand);
    here.checked_add(qty)?.in_range()?;
    stock
        .limit()
        .unwrap_or(Quantity::ZERO)
        .checked_add(qty)?
        .in_range()?;
    Ok(())
}

fn physical_only(stock: StockRef<'_>, what: &str) -> Result<(), Rejection> {
    match stock.pool_kind() {
        PoolKind::Physical => Ok(()),
        pool => Err(Rejection::UnsupportedForPool {
            pool,
            what: what.into(),
        }),
    }
}

fn set_backorder_limit(
    stock: StockRef<'_>,
    c: &SetBackorderLimit,
    now: Timestamp,
) -> Result<Event, Rejection> {
    physical_only(
        stock,
        "take backorders (only stock on hand can be backordered)",
    )?;
    let limit = c.limit.in_range()?;
    // At a SKU with several locations the limit is a location's, named; at one, it is
    // the SKU's (naming its one location is the same).
    let locations = stock.locations(now);
    let here = match &c.location {
        Some(named) => locations
            .iter()
            .find(|l| &l.location == named)
            .ok_or_else(|| Rejection::UnknownLocation {
                location: named.clone(),
            })?,
        None if locations.len() == 1 => &locations[0],
        None => return Err(Rejection::LocationRequired),
    };
    let previous = here.backorder_limit;
    if limit == previous {
        return Err(Rejection::InvalidPool {
            reason: format!("the backorder limit is already {limit}"),
        });
    }
    // Lowering it below what is backordered is allowed: the latest holds beyond the new
    // limit are then at risk, as after a count that found less.
    Ok(Event::BackorderLimitSet(BackorderLimitSet {
        location: (locations.len() > 1).then(|| here.location.clone()),
        limit,
        previous,
        at: now,
    }))
}

fn expect_receipt(
    stock: StockRef<'_>,
    c: &ExpectReceipt,
    now: Timestamp,
) -> Result<Event, Rejection> {
    physical_only(stock, "expect receipts (it has no stock on hand)")?;
    if c.qty.is_zero() {
        return Err(Rejection::InvalidQuantity);
    }
    c.qty.in_range()?;
    if c.eta <= now {
        return Err(Rejection::InvalidReceipt {
            reason: format!("the expected arrival {} is not in the future", c.eta),
        });
    }
    if stock.receipt(&c.reference).is_some() {
        return Err(Rejection::DuplicateReceipt {
            reference: c.reference.clone(),
        });
    }
    if stock.receipts_open() >= MAX_RECEIPTS {
        return Err(Rejection::InvalidReceipt {
            reason: format!("a SKU expects at most {MAX_RECEIPTS} receipts at once"),
        });
    }
    let locations = stock.locations(now);
    let location = match &c.location {
        Some(named) => locations
            .iter()
            .find(|l| &l.location == named)
            .map(|l| l.location.clone())
            .ok_or_else(|| Rejection::UnknownLocation {
                location: named.clone(),
            })?,
        None if locations.len() == 1 => locations[0].location.clone(),
        None => return Err(Rejection::LocationRequired),
    };
    Ok(Event::ReceiptExpected(ReceiptExpected {
        reference: c.reference.clone(),
        location,
        qty: c.qty,
        eta: c.eta,
        at: now,
    }))
}

fn receive_receipt(
    stock: StockRef<'_>,
    c: &ReceiveReceipt,
    now: Timestamp,
) -> Result<Event, Rejection> {
    let Some((location, expected, _)) = stock.receipt(&c.reference) else {
        return Err(Rejection::UnknownReceipt {
            reference: c.reference.clone(),
        });
    };
    let qty = c.qty.unwrap_or(expected);
    if qty.is_zero() {
        return Err(Rejection::InvalidQuantity);
    }
    qty.in_range()?;
    arrival_fits(stock, &location, qty, now)?;
    Ok(Event::ReceiptReceived(ReceiptReceived {
        reference: c.reference.clone(),
        location,
        qty,
        remaining: expected.saturating_sub(qty),
        at: now,
    }))
}

fn cancel_receipt(
    stock: StockRef<'_>,
    c: &CancelReceipt,
    now: Timestamp,
) -> Result<Event, Rejection> {
    let Some((_, qty, _)) = stock.receipt(&c.reference) else {
        return Err(Rejection::UnknownReceipt {
            reference: c.reference.clone(),
        });
    };
    Ok(Event::ReceiptCancelled(ReceiptCancelled {
        reference: c.reference.clone(),
        qty,
        at: now,
    }))
}

fn set_fair_selling(
    stock: StockRef<'_>,
    c: &SetFairSelling,
    now: Timestamp,
) -> Result<Event, Rejection> {
    if stock.pool_kind() == PoolKind::Kit {
        return Err(Rejection::UnsupportedForPool {
            pool: PoolKind::Kit,
            what: "limit purchases or keep a waitlist itself (set them on its components)".into(),
        });
    }
    let invalid = |reason: &str| {
        Err(Rejection::InvalidRules {
            reason: reason.into(),
        })
    };
    if let Some(limit) = c.per_customer {
        if limit.is_zero() {
            return invalid("a limit of 0 would sell nothing: lift the limit, or stop selling");
        }
        limit.in_range()?;
        if c.window.as_millis() < 1_000 || c.window > MAX_LIMIT_WINDOW {
            return invalid("the window must be between 1 second and 366 days");
        }
    }
    if c.waitlist_hold < MIN_WAITLIST_HOLD || c.waitlist_hold > MAX_WAITLIST_HOLD {
        return invalid("a waitlist hold must last between 1 second and 24 hours");
    }
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let window_ms = if c.per_customer.is_some() {
        millis(c.window)
    } else {
        0
    };
    let unchanged = stock.purchase_limit().map(|(l, w)| (l, millis(w)))
        == c.per_customer.map(|l| (l, window_ms))
        && stock.waitlist_hold() == c.waitlist_hold;
    if unchanged {
        return invalid("these are already the SKU's rules");
    }
    Ok(Event::FairSellingSet(FairSellingSet {
        per_customer: c.per_customer,
        window_ms,
        waitlist_hold_ms: millis(c.waitlist_hold),
        at: now,
    }))
}

fn join_waitlist(
    stock: StockRef<'_>,
    c: &JoinWaitlist,
    now: Timestamp,
) -> Result<Event, Rejection> {
    if stock.pool_kind() == PoolKind::Kit {
        return Err(Rejection::UnsupportedForPool {
            pool: PoolKind::Kit,
            what: "keep a waitlist (its components each keep their own)".into(),
        });
    }
    if c.qty.is_zero() {
        return Err(Rejection::InvalidQuantity);
    }
    c.qty.in_range()?;
    if let Some(place) = stock.waitlist_place(&c.customer) {
        return Err(Rejection::AlreadyWaiting {
            customer: c.customer.clone(),
            position: place.position,
        });
    }
    if stock.reservation(&c.hold_id).is_some() {
        return Err(Rejection::DuplicateReservation {
            reservation_id: c.hold_id,
        });
    }
    let (waiting, units) = stock.waitlist_len();
    if waiting >= MAX_WAITERS {
        return Err(Rejection::WaitlistFull { max: MAX_WAITERS });
    }
    units.checked_add(c.qty)?;
    // A place the limit could never serve is refused now, not at the customer's turn.
    within_limit(stock, Some(&c.customer), c.qty, now)?;
    Ok(Event::WaitlistJoined(WaitlistJoined {
        customer: c.customer.clone(),
        qty: c.qty,
        channel: c.channel.clone(),
        number: stock.waitlist_next(),
        hold_id: c.hold_id,
        at: now,
    }))
}

fn leave_waitlist(
    stock: StockRef<'_>,
    c: &LeaveWaitlist,
    now: Timestamp,
) -> Result<Event, Rejection> {
    let place = stock
        .waitlist_place(&c.customer)
        .ok_or_else(|| Rejection::NotWaiting {
            customer: c.customer.clone(),
        })?;
    Ok(Event::WaitlistLeft(WaitlistLeft {
        customer: c.customer.clone(),
        number: place.number,
        reason: LeftReason::Left,
        at: now,
    }))
}

/// Most places one serving decision serves: its events must fit one append, and the
/// actor decides again for the rest.
pub const MAX_SERVED_PER_DECISION: usize = 256;

/// Gives the places first in line holds of what they wait for, as far as the stock goes;
/// a place whose customer's purchase limit no longer allows it is taken off the line
/// instead. Strictly first in, first out: a later place that would fit never jumps one
/// that does not. At a SKU with one location the stock free is read once and counted
/// down (reading it costs a step per lapsed hold, and an expiry storm frees thousands at
/// once); at several locations, where each place is allocated against what every
/// location offers, one place per decision.
fn serve_waitlist(stock: StockRef<'_>, now: Timestamp) -> Result<Vec<Event>, Rejection> {
    let expires_at = now
        .checked_add(stock.waitlist_hold())
        .ok_or(Rejection::InvalidTtl)?;
    let one_location = stock.location_count() <= 1;
    let mut free: Option<Availability> = None;
    let mut reserved = stock.reserved_total();
    let mut events = Vec::new();
    for first in stock.line().take(MAX_SERVED_PER_DECISION) {
        let left = |reason| {
            Event::WaitlistLeft(WaitlistLeft {
                customer: first.customer.clone(),
                number: first.number,
                reason,
                at: now,
            })
        };
        // One place per customer, so what this decision served counts for no one here.
        if within_limit(stock, Some(&first.customer), first.qty, now).is_err() {
            events.push(left(LeftReason::PurchaseLimit));
            continue;
        }
        // Engine ids never collide; a hand-made one that does cannot be served.
        if stock.reservation(&first.hold_id).is_some() {
            events.push(left(LeftReason::Left));
            continue;
        }
        let parts = if one_location {
            // Read once: both cost a step per lapsed hold.
            let free = match &mut free {
                Some(free) => free,
                None if !stock.shortfall(now).is_zero() => break,
                None => free.insert(stock.available(now)),
            };
            match *free {
                Availability::Unlimited => {}
                Availability::Limited(units) if units >= first.qty => {
                    *free = Availability::Limited(units.saturating_sub(first.qty));
                }
                Availability::Limited(_) => break,
            }
            Vec::new()
        } else {
            if events.iter().any(|e| matches!(e, Event::StockReserved(_))) {
                break;
            }
            match take(stock, &Placement::default(), first.qty, now) {
                Ok(parts) => parts,
                Err(_) => break,
            }
        };
        reserved = reserved.checked_add(first.qty)?;
        events.push(Event::StockReserved(StockReserved {
            reservation_id: first.hold_id,
            order_id: None,
            lines: Vec::new(),
            qty: first.qty,
            parts,
            channel: first.channel,
            at: now,
            expires_at,
            customer: Some(first.customer),
            waitlist: Some(first.number),
        }));
    }
    if events.is_empty() {
        return Err(Rejection::NothingToServe);
    }
    Ok(events)
}
