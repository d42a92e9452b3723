//! Random command sequences with time advancing, checked against a naive model that
//! recomputes everything from a flat list of reservations at every step. The state under
//! test keeps running totals and an expiry index; the model keeps neither, so agreement
//! between them is evidence, not a tautology.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use proptest::prelude::*;

use crate::command::{
    Adjust, Amend, Command, Commit, Expire, Extend, Reduce, Release, Reserve, StockChange,
};
use crate::decide::decide;
use crate::event::Event;
use crate::pool::PoolConfig;
use crate::quantity::Quantity;
use crate::rejection::Rejection;
use crate::state::{Availability, HoldFacts, Landed, Ledger, SkuState, StockRef};
use crate::testing::{registered, rid, web};
use crate::time::Timestamp;

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        id: u8,
        qty: u64,
        ttl_ms: u64,
    },
    Commit(u8),
    Release(u8),
    Expire(u8),
    Extend {
        id: u8,
        ttl_ms: u64,
    },
    /// Part of a hold sold (`sell`) or given back.
    Reduce {
        id: u8,
        qty: u64,
        sell: bool,
    },
    Amend {
        id: u8,
        qty: u64,
    },
    Delta(i64),
    Count(u64),
    Advance(u64),
}

/// The largest quantity the domain takes (`Quantity::MAX`), written out for the model.
const MAX: u64 = i64::MAX as u64;

fn quantity() -> impl Strategy<Value = u64> {
    prop_oneof![
        24 => 0u64..6,
        1 => Just(u64::MAX),
        1 => Just(7 * 24 * 3600 * 1000 + 1),
        1 => (u64::MAX - 3)..=u64::MAX,
        1 => Just(i64::MAX as u64 + 1),
        1 => Just(i64::MAX as u64),
    ]
}

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => -6i64..8,
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
    ]
}

/// Reservation ids drawn from a small space, so commits and releases find their target.
const IDS: u8 = 12;

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(7 * 24 * 3600 * 1000 + 1),
        12 => (1u64..180).prop_map(|s| s * 1000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..IDS, quantity(), ttl())
            .prop_map(|(id, qty, ttl_ms)| Op::Reserve { id, qty, ttl_ms }),
        3 => (0u8..IDS).prop_map(Op::Commit),
        2 => (0u8..IDS).prop_map(Op::Release),
        2 => (0u8..IDS).prop_map(Op::Expire),
        2 => (0u8..IDS, ttl()).prop_map(|(id, ttl_ms)| Op::Extend { id, ttl_ms }),
        3 => (0u8..IDS, quantity(), any::<bool>())
            .prop_map(|(id, qty, sell)| Op::Reduce { id, qty, sell }),
        3 => (0u8..IDS, quantity()).prop_map(|(id, qty)| Op::Amend { id, qty }),
        1 => delta().prop_map(Op::Delta),
        1 => quantity().prop_map(Op::Count),
        // Whole seconds, like the TTLs, so that `now == expires_at` happens often.
        4 => prop_oneof![4 => (0u64..90).prop_map(|s| s * 1000), 1 => 0u64..90_000]
            .prop_map(Op::Advance),
    ]
}

fn pool() -> impl Strategy<Value = PoolConfig> {
    prop_oneof![
        (0u64..15, 0u64..3).prop_map(|(on_hand, safety)| PoolConfig::Physical {
            locations: Vec::new(),
            on_hand: Quantity::new(on_hand),
            safety_stock: Quantity::new(safety),
        }),
        proptest::option::of(0u64..15).prop_map(|limit| PoolConfig::Digital {
            license_limit: limit.map(Quantity::new),
        }),
        (0u64..10, 60_000u64..200_000).prop_map(|(capacity, period_millis)| {
            PoolConfig::PrintOnDemand {
                capacity: Quantity::new(capacity),
                period_millis,
            }
        }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Live,
    Committed,
    Ended,
}

#[derive(Debug, Clone)]
struct ModelReservation {
    id: u8,
    qty: u128,
    at: u64,
    expires_at: u64,
    status: Status,
}

/// The naive model: a flat list, everything recomputed on demand, in u128.
#[derive(Debug)]
struct Model {
    pool: PoolConfig,
    limit: Option<u128>,
    safety: u128,
    reservations: Vec<ModelReservation>,
    /// Units sold by partial commits, with when their hold was made (its period).
    sold_parts: Vec<(u64, u128)>,
}

/// Seven days in milliseconds: the longest a hold may last from when it was made.
const MAX_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

impl Model {
    fn new(pool: &PoolConfig) -> Model {
        let (limit, safety) = match pool {
            PoolConfig::Physical {
                on_hand,
                safety_stock,
                ..
            } => (Some(on_hand.get().into()), safety_stock.get().into()),
            PoolConfig::Digital { license_limit } => (license_limit.map(|q| q.get().into()), 0),
            PoolConfig::PrintOnDemand { capacity, .. } => (Some(capacity.get().into()), 0),
            // Never generated: a kit holds nothing, its components do (tests/kit.rs).
            PoolConfig::Kit { .. } => (Some(0), 0),
        };
        Model {
            pool: pool.clone(),
            limit,
            safety,
            reservations: Vec::new(),
            sold_parts: Vec::new(),
        }
    }

    fn period(&self, at: u64) -> Option<u64> {
        match self.pool {
            PoolConfig::PrintOnDemand { period_millis, .. } => Some(at / period_millis),
            _ => None,
        }
    }

    fn in_scope(&self, r: &ModelReservation, now: u64) -> bool {
        self.period(now).is_none() || self.period(r.at) == self.period(now)
    }

    fn counting(&self, r: &ModelReservation, now: u64) -> bool {
        r.status == Status::Live && r.expires_at > now && self.in_scope(r, now)
    }

    /// Units that count against the limit at `now`: (held, sold).
    fn used(&self, now: u64) -> (u128, u128) {
        let held = self
            .reservations
            .iter()
            .filter(|r| self.counting(r, now))
            .map(|r| r.qty)
            .sum();
        let sold = match self.pool {
            PoolConfig::Physical { .. } => 0,
            _ => {
                let whole: u128 = self
                    .reservations
                    .iter()
                    .filter(|r| r.status == Status::Committed && self.in_scope(r, now))
                    .map(|r| r.qty)
                    .sum();
                let parts: u128 = self
                    .sold_parts
                    .iter()
                    .filter(|(at, _)| {
                        self.period(now).is_none() || self.period(*at) == self.period(now)
                    })
                    .map(|(_, qty)| qty)
                    .sum();
                whole + parts
            }
        };
        (held, sold)
    }

    fn available(&self, now: u64) -> Option<u128> {
        let (held, sold) = self.used(now);
        self.limit
            .map(|limit| limit.saturating_sub(self.safety + held + sold))
    }

    fn shortfall(&self, now: u64) -> u128 {
        let (held, sold) = self.used(now);
        self.limit
            .map_or(0, |limit| (held + sold).saturating_sub(limit))
    }

    fn at_risk(&self, now: u64, limit: u128) -> Vec<u8> {
        let (_, sold) = self.used(now);
        let budget = limit.saturating_sub(sold);
        let mut promised = 0;
        let mut out = Vec::new();
        for r in self.reservations.iter().filter(|r| self.counting(r, now)) {
            promised += r.qty;
            if promised > budget {
                out.push(r.id);
            }
        }
        out
    }

    /// The latest reservation under `id` (an ended id may be held again: the state keeps
    /// live holds only, and ids are the engine's to keep unique).
    fn find(&self, id: u8) -> Option<&ModelReservation> {
        self.reservations.iter().rev().find(|r| r.id == id)
    }

    /// The live, unlapsed reservation `id`.
    fn holdable(&self, id: u8, now: u64) -> Option<&ModelReservation> {
        self.find(id)
            .filter(|r| r.status == Status::Live && r.expires_at > now)
    }

    /// Whether `id`'s units may be sold at `now`: held, and not at risk.
    fn sellable(&self, id: u8, now: u64) -> bool {
        self.holdable(id, now).is_some()
            && !self
                .limit
                .is_some_and(|l| self.shortfall(now) > 0 && self.at_risk(now, l).contains(&id))
    }

    /// Whether the model expects `command` at `now` to be accepted.
    fn accepts(&self, op: &Op, now: u64) -> bool {
        match *op {
            Op::Reserve { id, qty, ttl_ms } => {
                let held_total: u128 = self
                    .reservations
                    .iter()
                    .filter(|r| r.status == Status::Live)
                    .map(|r| r.qty)
                    .sum();
                qty > 0
                    && ttl_ms > 0
                    && now.checked_add(ttl_ms).is_some()
                    && ttl_ms <= 7 * 24 * 3600 * 1000
                    && self.find(id).is_none_or(|r| r.status != Status::Live)
                    && self.shortfall(now) == 0
                    && self.available(now).is_none_or(|a| u128::from(qty) <= a)
                    && qty <= MAX
                    && held_total + u128::from(qty) <= u128::from(MAX)
            }
            Op::Commit(id) => self.sellable(id, now),
            Op::Extend { id, ttl_ms } => self.holdable(id, now).is_some_and(|r| {
                let until = now.checked_add(ttl_ms);
                ttl_ms > 0
                    && ttl_ms <= MAX_TTL_MS
                    && until.is_some_and(|u| u > r.expires_at && u <= r.at + MAX_TTL_MS)
            }),
            Op::Reduce { id, qty, sell } => self.holdable(id, now).is_some_and(|r| {
                qty > 0 && u128::from(qty) <= r.qty && (!sell || self.sellable(id, now))
            }),
            Op::Amend { id, qty } => self.holdable(id, now).is_some_and(|r| {
                let target = u128::from(qty);
                let more = target.saturating_sub(r.qty);
                let held_total: u128 = self
                    .reservations
                    .iter()
                    .filter(|r| r.status == Status::Live)
                    .map(|r| r.qty)
                    .sum();
                qty <= MAX
                    && target != r.qty
                    && (more == 0
                        || (self.shortfall(now) == 0
                            && self.available(now).is_none_or(|a| more <= a)
                            && self.period(r.at) == self.period(now)
                            && held_total + more <= u128::from(MAX)))
            }),
            Op::Release(id) => self
                .find(id)
                .is_some_and(|r| r.status == Status::Live && r.expires_at > now),
            Op::Expire(id) => self
                .find(id)
                .is_some_and(|r| r.status == Status::Live && r.expires_at <= now),
            Op::Delta(d) => self.limit.is_some_and(|l| {
                let next = l as i128 + i128::from(d);
                d != 0 && next >= 0 && next <= i128::from(MAX)
            }),
            Op::Count(c) => self.limit.is_some() && c <= MAX,
            Op::Advance(_) => false,
        }
    }

    fn live_mut(&mut self, id: u8) -> &mut ModelReservation {
        let r = self
            .reservations
            .iter_mut()
            .rev()
            .find(|r| r.id == id)
            .unwrap();
        assert_eq!(r.status, Status::Live, "changed after it ended");
        r
    }

    fn apply(&mut self, event: &Event, id_of: &HashMap<crate::ids::ReservationId, u8>) {
        let resolve = |m: &mut Model, rid, status| {
            let id = id_of[&rid];
            let r = m
                .reservations
                .iter_mut()
                .rev()
                .find(|r| r.id == id)
                .unwrap();
            assert_eq!(r.status, Status::Live, "resolved twice");
            r.status = status;
            r.qty
        };
        match event {
            Event::StockReserved(e) => self.reservations.push(ModelReservation {
                id: id_of[&e.reservation_id],
                qty: e.qty.get().into(),
                at: e.at.as_millis(),
                expires_at: e.expires_at.as_millis(),
                status: Status::Live,
            }),
            Event::ReservationCommitted(e) => {
                let qty = resolve(self, e.reservation_id, Status::Committed);
                if let (PoolConfig::Physical { .. }, Some(limit)) = (&self.pool, &mut self.limit) {
                    *limit -= qty;
                }
            }
            Event::ReservationReleased(e) => {
                resolve(self, e.reservation_id, Status::Ended);
            }
            Event::ReservationExpired(e) => {
                resolve(self, e.reservation_id, Status::Ended);
            }
            Event::StockAdjusted(e) => self.limit = Some(e.current.get().into()),
            Event::ReservationExtended(e) => {
                let r = self.live_mut(id_of[&e.reservation_id]);
                r.expires_at = e.expires_at.as_millis();
            }
            Event::ReservationReduced(e) => {
                let qty = u128::from(e.qty.get());
                let r = self.live_mut(id_of[&e.reservation_id]);
                r.qty -= qty;
                let at = r.at;
                if e.outcome == crate::rejection::Resolution::Committed {
                    match (&self.pool, &mut self.limit) {
                        (PoolConfig::Physical { .. }, Some(limit)) => *limit -= qty,
                        _ => self.sold_parts.push((at, qty)),
                    }
                }
            }
            Event::ReservationIncreased(e) => {
                let r = self.live_mut(id_of[&e.reservation_id]);
                r.qty += u128::from(e.qty.get());
                assert_eq!(r.qty, u128::from(e.total.get()));
            }
            Event::SkuRegistered(_) | Event::TransferShipped(_) | Event::TransferReceived(_) => {
                unreachable!("not decided for a SKU at one location")
            }
            Event::BackorderLimitSet(_)
            | Event::ReceiptExpected(_)
            | Event::ReceiptReceived(_)
            | Event::ReceiptCancelled(_)
            | Event::BackorderFilled(_) => unreachable!("backorders are tested in their own model"),
            Event::FairSellingSet(_) | Event::WaitlistJoined(_) | Event::WaitlistLeft(_) => {
                unreachable!("fair selling is tested in its own model")
            }
        }
    }
}

fn command(op: &Op) -> Option<Command> {
    let id = |n: u8| rid(u128::from(n) + 1);
    Some(match *op {
        Op::Reserve { id: n, qty, ttl_ms } => Command::Reserve(Reserve {
            customer: None,
            placement: Default::default(),
            reservation_id: id(n),
            order_id: None,
            lines: Vec::new(),
            qty: Quantity::new(qty),
            ttl: Duration::from_millis(ttl_ms),
            channel: web(),
        }),
        Op::Commit(n) => Command::Commit(Commit {
            reservation_id: id(n),
        }),
        Op::Release(n) => Command::Release(Release {
            reservation_id: id(n),
        }),
        Op::Expire(n) => Command::Expire(Expire {
            reservation_id: id(n),
        }),
        Op::Extend { id: n, ttl_ms } => Command::Extend(Extend {
            reservation_id: id(n),
            ttl: Duration::from_millis(ttl_ms),
        }),
        Op::Reduce { id: n, qty, sell } => Command::Reduce(Reduce {
            reservation_id: id(n),
            qty: Quantity::new(qty),
            sell,
        }),
        Op::Amend { id: n, qty } => Command::Amend(Amend {
            reservation_id: id(n),
            qty: Quantity::new(qty),
            placement: Default::default(),
        }),
        Op::Delta(d) => Command::Adjust(Adjust {
            location: None,
            change: StockChange::Delta(d),
            reason: "property".into(),
            reference: None,
        }),
        Op::Count(c) => Command::Adjust(Adjust {
            location: None,
            change: StockChange::Count(Quantity::new(c)),
            reason: "property".into(),
            reference: None,
        }),
        Op::Advance(_) => return None,
    })
}

fn run(pool: PoolConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let first = registered(pool.clone());
    let mut state = SkuState::default();
    state.apply(&first).unwrap();
    // The actor's way: every accepted event staged, landed a few events later (and now
    // and then the layer rebuilt). Its durable side must read as `landed`, its
    // speculative side as `state`, and its decisions must be `state`'s.
    let mut pipelined = SkuState::default();
    prop_assert_eq!(pipelined.stage(&first), Ok(()));
    let mut staged: VecDeque<Event> = VecDeque::from([first.clone()]);
    let mut landed = SkuState::default();
    // The projector's way: figures without holds, told what a hold was when it ends.
    let mut ledger = Ledger::default();
    prop_assert_eq!(ledger.apply(&first, None), Ok(()));
    let mut log = vec![first];
    let mut model = Model::new(&pool);
    let id_of: HashMap<_, _> = (0u8..IDS).map(|n| (rid(u128::from(n) + 1), n)).collect();
    let mut now: u64 = 1_000;

    for op in &ops {
        if let Op::Advance(ms) = op {
            now += ms;
        } else {
            let cmd = command(op).unwrap();
            let expected = model.accepts(op, now);
            let at = Timestamp::from_millis(now);
            prop_assert_eq!(decide(&pipelined, &cmd, at), decide(&state, &cmd, at));
            match decide(&state, &cmd, at) {
                Ok(events) => {
                    prop_assert!(
                        expected,
                        "accepted {op:?} at {now}; model says no: {model:?}"
                    );
                    for event in &events {
                        if let Event::StockAdjusted(e) = event {
                            let at_risk: Vec<_> = e.at_risk.iter().map(|r| id_of[r]).collect();
                            prop_assert_eq!(at_risk, model.at_risk(now, e.current.get().into()));
                        }
                        let ended = event
                            .reservation_id()
                            .and_then(|id| state.stock()?.reservation(&id))
                            .map(|r| HoldFacts {
                                parts: Vec::new(),
                                qty: r.qty,
                                reserved_at: r.reserved_at,
                                expires_at: r.expires_at,
                            });
                        ledger.apply(event, ended).map_err(|e| {
                            TestCaseError::fail(format!("own event does not fold: {e}"))
                        })?;
                        state.apply(event).map_err(|e| {
                            TestCaseError::fail(format!("own event does not apply: {e}"))
                        })?;
                        model.apply(event, &id_of);
                        log.push(event.clone());
                        pipelined.stage(event).map_err(|e| {
                            TestCaseError::fail(format!("own event does not stage: {e}"))
                        })?;
                        staged.push_back(event.clone());
                    }
                    // Never oversell: an accepted reservation or increase leaves nothing
                    // promised twice.
                    let grew = events.iter().any(|e| {
                        matches!(e, Event::StockReserved(_) | Event::ReservationIncreased(_))
                    });
                    if grew {
                        prop_assert_eq!(model.shortfall(now), 0);
                        if let (Some(limit), (held, sold)) = (model.limit, model.used(now)) {
                            prop_assert!(held + sold + model.safety <= limit.max(held + sold));
                            prop_assert!(held + sold <= limit);
                        }
                    }
                }
                Err(rejection) => {
                    prop_assert!(
                        !expected,
                        "rejected {op:?} at {now}: {rejection}; model says yes"
                    );
                    if let (Op::Reserve { qty, .. }, Rejection::OutOfRange { .. }) =
                        (op, &rejection)
                    {
                        prop_assert!(*qty > 0, "overflow rejection for a zero quantity");
                    }
                }
            }
        }
        let lag = log.len() % 4;
        while staged.len() > lag {
            let Some(event) = staged.pop_front() else {
                break;
            };
            landed.apply(&event).unwrap();
            if pipelined.land(&event) == Ok(Landed::Dropped) {
                prop_assert!(matches!(event, Event::SkuRegistered(_)));
                pipelined.discard_staged();
                for e in &staged {
                    pipelined.stage(e).unwrap();
                }
            }
        }
        if log.len() % 7 == 0 {
            pipelined.discard_staged();
            for e in &staged {
                pipelined.stage(e).unwrap();
            }
        }
        let at = Timestamp::from_millis(now);
        prop_assert_eq!(pipelined.staged(), staged.len());
        same_side(pipelined.speculative(), state.stock(), at)?;
        prop_assert_eq!(ledger.view(at), state.stock().map(|s| s.view(at)));
        same_side(pipelined.stock(), landed.stock(), at)?;

        // Availability is exact at every instant, lapsed holds left out without events.
        let stock = state.stock().unwrap();
        let at = Timestamp::from_millis(now);
        let available = match stock.available(at) {
            Availability::Unlimited => None,
            Availability::Limited(q) => Some(u128::from(q.get())),
        };
        prop_assert_eq!(available, model.available(now));
        prop_assert_eq!(u128::from(stock.shortfall(at).get()), model.shortfall(now));
    }

    // Each hold resolves at most once in the log: along an id's events, holds and
    // resolutions alternate, a hold first; changes happen only to a live hold.
    let mut open: HashMap<_, bool> = HashMap::new();
    for event in &log {
        let Some(id) = event.reservation_id() else {
            continue;
        };
        match event {
            Event::ReservationExtended(_)
            | Event::ReservationReduced(_)
            | Event::ReservationIncreased(_) => {
                prop_assert!(open.get(&id) == Some(&true), "changed without a live hold");
                continue;
            }
            _ => {}
        }
        let was_open = open.insert(id, matches!(event, Event::StockReserved(_)));
        match event {
            Event::StockReserved(_) => prop_assert!(was_open != Some(true), "held twice"),
            _ => prop_assert!(was_open == Some(true), "resolved without a live hold"),
        }
    }

    // Once everything staged has landed, the layer is gone: one state, as if applied.
    while let Some(event) = staged.pop_front() {
        let landing = pipelined.land(&event);
        if landing == Ok(Landed::Dropped) {
            // Only the registration lands on a state with no stock to layer over.
            prop_assert!(matches!(event, Event::SkuRegistered(_)));
            for e in &staged {
                pipelined.stage(e).unwrap();
            }
        } else {
            prop_assert_eq!(landing, Ok(Landed::Kept));
        }
    }
    prop_assert_eq!(&pipelined, &state);

    // Folding the log from nothing gives the live state; so does a snapshot round trip.
    crate::tests::folds_and_restores(&log, &state)
}

/// Two sides that must read the same at `at`, hold by hold.
fn same_side(
    a: Option<StockRef<'_>>,
    b: Option<StockRef<'_>>,
    at: Timestamp,
) -> Result<(), TestCaseError> {
    let (Some(a), Some(b)) = (a, b) else {
        prop_assert_eq!(a.is_some(), b.is_some());
        return Ok(());
    };
    prop_assert_eq!(a.view(at), b.view(at));
    prop_assert_eq!(a.next_expiry(), b.next_expiry());
    // The bound a timer may be armed at is never later than the next expiry, on the
    // staged side too; with nothing staged it is the next expiry.
    for side in [a, b] {
        let exact = side.next_expiry().map(|(t, _)| t);
        let bound = side.next_expiry_bound();
        prop_assert!(exact.is_none_or(|e| bound.is_some_and(|b| b <= e)));
    }
    prop_assert_eq!(b.next_expiry_bound(), b.next_expiry().map(|(t, _)| t));
    prop_assert_eq!(a.reserved_total(), b.reserved_total());
    prop_assert_eq!(a.last_event_at(), b.last_event_at());
    let line = |s: StockRef<'_>| {
        let mut line: Vec<_> = s
            .live_reservations()
            .map(|r| (r, s.order_of(&r.id).cloned()))
            .collect();
        line.sort_by_key(|(r, _)| r.seq);
        line
    };
    prop_assert_eq!(line(a), line(b));
    let lapsed = |s: StockRef<'_>| s.lapsed(at).map(|r| r.id).collect::<Vec<_>>();
    prop_assert_eq!(lapsed(a), lapsed(b));
    prop_assert_eq!(a.at_risk(at), b.at_risk(at));
    for n in 0..IDS {
        let id = rid(u128::from(n) + 1);
        prop_assert_eq!(a.reservation(&id), b.reservation(&id));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_histories_keep_every_invariant(
        pool in pool(),
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        run(pool, ops)?;
    }
}

#[test]
fn a_damaged_snapshot_is_refused() {
    use crate::rejection::Inconsistency;
    use crate::testing::{registered_physical, reserved, secs};
    let state =
        SkuState::from_events(&[registered_physical(5, 0), reserved(1, 2, secs(1), secs(60))])
            .unwrap();
    assert_eq!(state.validate(), Ok(()));
    // Damage the `reserved` total in the encoded bytes: the key is the fixstr "reserved"
    // (0xa8 + 8 bytes), its value the positive fixint 2.
    let mut bytes = rmp_serde::to_vec_named(&state).unwrap();
    let key: Vec<u8> = [&[0xa8][..], b"reserved"].concat();
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    assert_eq!(bytes[at], 0x02);
    bytes[at] = 0x07;
    let damaged: SkuState = rmp_serde::from_slice(&bytes).unwrap();
    assert!(matches!(
        damaged.validate(),
        Err(Inconsistency::InvalidSnapshot(_))
    ));
}
