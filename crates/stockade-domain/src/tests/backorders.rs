//! Backorders and incoming stock: a SKU with a backorder limit holds lines beyond what is
//! on hand, the latest ones waiting; stock freed or brought in fills them first in, first
//! out, each filling an event; expected receipts say when. One given / when / then per
//! rule.

use crate::command::{
    Amend, CancelReceipt, Command, ExpectReceipt, ReceiveReceipt, Reduce, SetBackorderLimit,
    StockChange,
};
use crate::event::{
    BackorderFilled, BackorderLimitSet, Event, ReceiptCancelled, ReceiptExpected, ReceiptReceived,
    ReservationReduced,
};
use crate::ids::{LocationId, ReceiptRef};
use crate::pool::{LocationConfig, PoolConfig};
use crate::rejection::{Rejection, Resolution};
use crate::state::{Availability, SkuState};
use crate::testing::*;
use crate::time::Timestamp;

fn limit_set(limit: u64, previous: u64, at: Timestamp) -> Event {
    Event::BackorderLimitSet(BackorderLimitSet {
        location: None,
        limit: qty(limit),
        previous: qty(previous),
        at,
    })
}

fn filled(id: u128, n: u64, left: u64, at: Timestamp) -> Event {
    Event::BackorderFilled(BackorderFilled {
        reservation_id: rid(id),
        qty: qty(n),
        backordered: qty(left),
        at,
    })
}

fn po(name: &str) -> ReceiptRef {
    ReceiptRef::new(name).unwrap()
}

fn default_location() -> LocationId {
    LocationId::new("default").unwrap()
}

fn expected(name: &str, n: u64, eta: Timestamp, at: Timestamp) -> Event {
    Event::ReceiptExpected(ReceiptExpected {
        reference: po(name),
        location: default_location(),
        qty: qty(n),
        eta,
        at,
    })
}

fn expect(name: &str, n: u64, eta: Timestamp) -> Command {
    Command::ExpectReceipt(ExpectReceipt {
        reference: po(name),
        qty: qty(n),
        eta,
        location: None,
    })
}

fn receive(name: &str, n: Option<u64>) -> Command {
    Command::ReceiveReceipt(ReceiveReceipt {
        reference: po(name),
        qty: n.map(qty),
    })
}

/// 3 on hand, 5 more may be backordered; reservation 1 holds 2 (covered), reservation 2
/// holds 4, of which 1 is covered and 3 wait.
fn backordered() -> Vec<Event> {
    vec![
        registered_physical(3, 0),
        limit_set(5, 0, secs(0)),
        reserved(1, 2, secs(1), secs(600)),
        reserved(2, 4, secs(2), secs(600)),
    ]
}

fn stock_of(state: &SkuState) -> crate::state::StockRef<'_> {
    state.stock().unwrap()
}

#[test]
fn a_line_beyond_on_hand_within_the_limit_is_held_backordered() {
    given([registered_physical(3, 0), limit_set(5, 0, secs(0))])
        .at(secs(1))
        .when(reserve(1, 2, 600))
        .then([reserved(1, 2, secs(1), secs(601))]);
    let state = given([
        registered_physical(3, 0),
        limit_set(5, 0, secs(0)),
        reserved(1, 2, secs(1), secs(601)),
    ])
    .at(secs(2))
    .when(reserve(2, 4, 600))
    .then([reserved(2, 4, secs(2), secs(602))]);
    let stock = stock_of(&state);
    assert_eq!(stock.backorders(), vec![(rid(2), qty(3))]);
    assert_eq!(stock.backordered_of(&rid(1)), qty(0));
    let view = stock.view(secs(2));
    assert_eq!(view.backordered, qty(3));
    assert_eq!(view.available, Availability::Limited(qty(2)));
    assert_eq!(view.shortfall, qty(0));
}

#[test]
fn beyond_the_backorder_limit_is_refused() {
    given(backordered())
        .at(secs(3))
        .when(reserve(3, 3, 600))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(3),
            available: qty(2),
        });
}

#[test]
fn a_backordered_hold_sells_only_its_covered_units() {
    given(backordered())
        .at(secs(3))
        .when(commit(2))
        .then_rejected(Rejection::Backordered {
            reservation_id: rid(2),
            backordered: qty(3),
        });
    given(backordered())
        .at(secs(3))
        .when(Command::Reduce(Reduce {
            reservation_id: rid(2),
            qty: qty(2),
            sell: true,
        }))
        .then_rejected(Rejection::Backordered {
            reservation_id: rid(2),
            backordered: qty(3),
        });
    let state = given(backordered())
        .at(secs(3))
        .when(Command::Reduce(Reduce {
            reservation_id: rid(2),
            qty: qty(1),
            sell: true,
        }))
        .then([Event::ReservationReduced(ReservationReduced {
            reservation_id: rid(2),
            qty: qty(1),
            remaining: qty(3),
            outcome: Resolution::Committed,
            parts: Vec::new(),
            at: secs(3),
        })]);
    // Selling its covered unit took one from on hand: the other three still wait.
    assert_eq!(stock_of(&state).backorders(), vec![(rid(2), qty(3))]);
    // A hold wholly covered sells as ever.
    given(backordered())
        .at(secs(3))
        .when(commit(1))
        .then([committed(1, 2, secs(3))]);
}

#[test]
fn a_release_ahead_fills_the_line_first_in_first_out() {
    let mut events = backordered();
    events.push(reserved(3, 1, secs(3), secs(600)));
    let state = given(events)
        .at(secs(4))
        .when(release(1))
        .then([released(1, 2, secs(4)), filled(2, 2, 1, secs(4))]);
    // Reservation 2 still waits for one unit, and reservation 3 (behind it) for its one.
    assert_eq!(
        stock_of(&state).backorders(),
        vec![(rid(2), qty(1)), (rid(3), qty(1))]
    );
}

#[test]
fn an_expiry_ahead_fills_too() {
    given(backordered()).at(secs(600)).when(expire(1)).then([
        expired(1, 2, secs(600), secs(600)),
        filled(2, 2, 1, secs(600)),
    ]);
}

#[test]
fn a_count_that_finds_more_fills_and_one_that_finds_less_does_not() {
    given(backordered())
        .at(secs(5))
        .when(adjust(StockChange::Delta(2), "found two"))
        .then([
            adjusted(StockChange::Delta(2), 3, 5, "found two", &[], secs(5)),
            filled(2, 2, 1, secs(5)),
        ]);
    // Fewer on hand: more wait; within the backorder limit nothing is at risk.
    let state = given(backordered())
        .at(secs(5))
        .when(adjust(StockChange::Delta(-1), "damaged"))
        .then([adjusted(
            StockChange::Delta(-1),
            3,
            2,
            "damaged",
            &[],
            secs(5),
        )]);
    assert_eq!(stock_of(&state).backordered_of(&rid(2)), qty(4));
}

#[test]
fn a_receipt_is_expected_with_an_eta_and_its_arrival_fills_backorders() {
    let state = given(backordered())
        .at(secs(10))
        .when(expect("PO-7", 10, secs(1000)))
        .then([expected("PO-7", 10, secs(1000), secs(10))]);
    let stock = stock_of(&state);
    assert_eq!(stock.backorder_eta(&rid(2)), Some(secs(1000)));
    assert_eq!(stock.backorder_eta(&rid(1)), None);
    let view = stock.view(secs(10));
    assert_eq!((view.incoming, view.next_eta), (qty(10), Some(secs(1000))));

    let mut events = backordered();
    events.push(expected("PO-7", 10, secs(1000), secs(10)));
    let state = given(events.clone())
        .at(secs(900))
        .when(receive("PO-7", Some(2)))
        .then([
            Event::ReceiptReceived(ReceiptReceived {
                reference: po("PO-7"),
                location: default_location(),
                qty: qty(2),
                remaining: qty(8),
                at: secs(900),
            }),
            filled(2, 2, 1, secs(900)),
        ]);
    let view = stock_of(&state).view(secs(900));
    assert_eq!((view.limit, view.incoming), (Some(qty(5)), qty(8)));
    // The rest arrives: the receipt closes.
    let state = given(events)
        .at(secs(900))
        .when(receive("PO-7", None))
        .then([
            Event::ReceiptReceived(ReceiptReceived {
                reference: po("PO-7"),
                location: default_location(),
                qty: qty(10),
                remaining: qty(0),
                at: secs(900),
            }),
            filled(2, 3, 0, secs(900)),
        ]);
    let stock = stock_of(&state);
    assert!(stock.backorders().is_empty() && stock.receipts().is_empty());
}

#[test]
fn earlier_receipts_answer_for_the_first_in_line() {
    let mut events = backordered();
    events.push(reserved(3, 2, secs(3), secs(600)));
    events.push(expected("LATE", 4, secs(2000), secs(4)));
    events.push(expected("SOON", 3, secs(1000), secs(4)));
    let state = given(events).state().clone();
    let stock = stock_of(&state);
    // Reservation 2 waits for 3 units, the first three to come (SOON); reservation 3 for
    // the next two (LATE).
    assert_eq!(stock.backorder_eta(&rid(2)), Some(secs(1000)));
    assert_eq!(stock.backorder_eta(&rid(3)), Some(secs(2000)));
}

#[test]
fn bad_receipts_are_refused() {
    let base = || given(backordered()).at(secs(10));
    base()
        .when(expect("PO-1", 5, secs(10)))
        .then_rejected(Rejection::InvalidReceipt {
            reason: format!("the expected arrival {} is not in the future", secs(10)),
        });
    base()
        .when(expect("PO-1", 0, secs(100)))
        .then_rejected(Rejection::InvalidQuantity);
    base()
        .when(receive("NOPE", None))
        .then_rejected(Rejection::UnknownReceipt {
            reference: po("NOPE"),
        });
    let mut events = backordered();
    events.push(expected("PO-1", 5, secs(100), secs(5)));
    given(events.clone())
        .at(secs(10))
        .when(expect("PO-1", 5, secs(200)))
        .then_rejected(Rejection::DuplicateReceipt {
            reference: po("PO-1"),
        });
    given(events.clone())
        .at(secs(10))
        .when(receive("PO-1", Some(0)))
        .then_rejected(Rejection::InvalidQuantity);
    let state = given(events)
        .at(secs(10))
        .when(Command::CancelReceipt(CancelReceipt {
            reference: po("PO-1"),
        }))
        .then([Event::ReceiptCancelled(ReceiptCancelled {
            reference: po("PO-1"),
            qty: qty(5),
            at: secs(10),
        })]);
    assert_eq!(stock_of(&state).view(secs(10)).incoming, qty(0));
}

fn located(name: &str, on_hand: u64, priority: u32) -> LocationConfig {
    LocationConfig {
        location: LocationId::new(name).unwrap(),
        on_hand: qty(on_hand),
        safety_stock: qty(0),
        priority,
    }
}

fn set_limit(limit: u64, location: Option<&str>) -> Command {
    Command::SetBackorderLimit(SetBackorderLimit {
        limit: qty(limit),
        location: location.map(|l| LocationId::new(l).unwrap()),
    })
}

#[test]
fn the_backorder_limit_is_for_physical_skus_and_named_locations() {
    let at_two = || {
        registered(PoolConfig::at_locations(vec![
            located("a", 1, 0),
            located("b", 1, 1),
        ]))
    };
    given([at_two()])
        .when(set_limit(5, None))
        .then_rejected(Rejection::LocationRequired);
    given([at_two()])
        .when(set_limit(5, Some("c")))
        .then_rejected(Rejection::UnknownLocation {
            location: LocationId::new("c").unwrap(),
        });
    given([registered(PoolConfig::Digital {
        license_limit: None,
    })])
    .when(set_limit(5, None))
    .then_rejected(Rejection::UnsupportedForPool {
        pool: crate::pool::PoolKind::Digital,
        what: "take backorders (only stock on hand can be backordered)".into(),
    });
    given([registered_physical(3, 0), limit_set(5, 0, secs(0))])
        .when(set_limit(5, None))
        .then_rejected(Rejection::InvalidPool {
            reason: "the backorder limit is already 5".into(),
        });
}

/// At a SKU at two locations, only the one with a backorder limit sells beyond its
/// stock; its line is its own, filled by what arrives there, and an order that names the
/// other location is refused beyond that location's stock.
#[test]
fn backorders_are_per_location() {
    let a = || LocationId::new("a").unwrap();
    let events = vec![
        registered(PoolConfig::at_locations(vec![
            located("a", 1, 0),
            located("b", 2, 1),
        ])),
        Event::BackorderLimitSet(BackorderLimitSet {
            location: Some(a()),
            limit: qty(3),
            previous: qty(0),
            at: secs(0),
        }),
    ];
    let state = given(events.clone()).state().clone();
    let view = stock_of(&state).view(secs(1));
    // a: 1 on hand + 3 backorders; b: 2.
    assert_eq!(view.available, Availability::Limited(qty(6)));
    assert_eq!(view.locations[0].backorder_limit, qty(3));
    let at = |location: &str, n: u64, id: u128| {
        Command::Reserve(crate::command::Reserve {
            customer: None,
            placement: crate::allocation::Placement::at(LocationId::new(location).unwrap()),
            reservation_id: rid(id),
            order_id: None,
            lines: Vec::new(),
            qty: qty(n),
            ttl: std::time::Duration::from_secs(600),
            channel: web(),
        })
    };
    let mut log = events;
    for (location, n, id) in [("a", 1, 1), ("a", 2, 2), ("b", 2, 3)] {
        let state = SkuState::from_events(&log).unwrap();
        let decided = crate::decide::decide(&state, &at(location, n, id), secs(id as u64)).unwrap();
        log.extend(decided);
    }
    let state = SkuState::from_events(&log).unwrap();
    let stock = stock_of(&state);
    assert_eq!(stock.backorders(), vec![(rid(2), qty(2))]);
    // b has no backorders: beyond its stock is refused.
    assert!(matches!(
        crate::decide::decide(&state, &at("b", 1, 4), secs(5)),
        Err(Rejection::InsufficientStock { .. })
    ));
    // A receipt at a fills a's line; one expected at b would not.
    log.push(Event::ReceiptExpected(ReceiptExpected {
        reference: po("PO-A"),
        location: a(),
        qty: qty(1),
        eta: secs(100),
        at: secs(6),
    }));
    let state = SkuState::from_events(&log).unwrap();
    assert_eq!(
        stock_of(&state).backorder_eta(&rid(2)),
        None,
        "1 of 2 covered"
    );
    given(log).at(secs(7)).when(receive("PO-A", None)).then([
        Event::ReceiptReceived(ReceiptReceived {
            reference: po("PO-A"),
            location: a(),
            qty: qty(1),
            remaining: qty(0),
            at: secs(7),
        }),
        filled(2, 1, 1, secs(7)),
    ]);
}

#[test]
fn lowering_the_limit_below_what_waits_puts_the_latest_at_risk() {
    let state = given(backordered())
        .at(secs(5))
        .when(set_limit(1, None))
        .then([limit_set(1, 5, secs(5))]);
    let stock = stock_of(&state);
    assert_eq!(stock.at_risk(secs(5)), vec![rid(2)]);
    assert_eq!(stock.view(secs(5)).shortfall, qty(2));
}

#[test]
fn a_hold_does_not_grow_past_stock_when_backorders_are_taken() {
    given(backordered())
        .at(secs(3))
        .when(Command::Amend(Amend {
            reservation_id: rid(1),
            qty: qty(3),
            placement: Default::default(),
        }))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(1),
            available: qty(0),
        });
}

/// Random histories at a SKU that takes backorders, against a flat model of its line:
/// every decision's fills are exactly the units it moved from waiting to covered, first in
/// line first; nothing waiting is ever sold; the projector's ledger, a fold of the log and
/// a snapshot all read as the writer's state.
mod random {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::command::Reserve;
    use crate::decide::decide;
    use crate::state::{HoldFacts, Ledger};

    #[derive(Debug, Clone)]
    enum Op {
        Reserve { id: u8, qty: u64, ttl_ms: u64 },
        Commit(u8),
        Release(u8),
        Expire(u8),
        Reduce { id: u8, qty: u64, sell: bool },
        Delta(i64),
        Receive(u64),
        Limit(u64),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = 0u8..8;
        prop_oneof![
            6 => (id.clone(), 1u64..5, 1u64..60_000)
                .prop_map(|(id, qty, ttl_ms)| Op::Reserve { id, qty, ttl_ms }),
            2 => id.clone().prop_map(Op::Commit),
            2 => id.clone().prop_map(Op::Release),
            2 => id.clone().prop_map(Op::Expire),
            2 => (id, 1u64..4, any::<bool>())
                .prop_map(|(id, qty, sell)| Op::Reduce { id, qty, sell }),
            2 => (-3i64..6).prop_map(Op::Delta),
            2 => (1u64..6).prop_map(Op::Receive),
            1 => (0u64..8).prop_map(Op::Limit),
            3 => (0u64..30_000).prop_map(Op::Advance),
        ]
    }

    /// The writer's live holds in line order (lapsed ones too, until their expiry is
    /// written), with on hand: the model's view of who waits for how much.
    #[derive(Debug, Default, Clone)]
    struct Line {
        on_hand: u64,
        limit: u64,
        holds: Vec<(u128, u64, HoldFacts)>,
    }

    impl Line {
        /// Units of each hold beyond on hand, walking the line oldest first: waiting for
        /// stock while the SKU takes backorders (without a limit they are at risk).
        fn waiting(&self) -> Vec<(u128, u64)> {
            if self.limit == 0 {
                return Vec::new();
            }
            self.beyond()
        }

        fn beyond(&self) -> Vec<(u128, u64)> {
            let mut promised = 0u64;
            let mut out = Vec::new();
            for (id, qty, _) in &self.holds {
                let before = promised;
                promised += qty;
                if promised > self.on_hand {
                    out.push((*id, promised - self.on_hand.max(before)));
                }
            }
            out
        }

        fn waiting_of(&self, id: u128) -> u64 {
            self.waiting()
                .into_iter()
                .find(|(h, _)| *h == id)
                .map_or(0, |(_, n)| n)
        }

        fn facts(&self, id: u128) -> Option<HoldFacts> {
            self.holds
                .iter()
                .find(|(h, _, _)| *h == id)
                .map(|(_, _, f)| f.clone())
        }

        fn apply(&mut self, event: &Event) {
            let n = |id: &crate::ids::ReservationId| id.as_uuid().as_u128();
            match event {
                Event::StockReserved(e) => self.holds.push((
                    n(&e.reservation_id),
                    e.qty.get(),
                    HoldFacts {
                        qty: e.qty,
                        reserved_at: e.at,
                        expires_at: e.expires_at,
                        parts: Vec::new(),
                    },
                )),
                Event::ReservationCommitted(e) => {
                    self.holds.retain(|(h, _, _)| *h != n(&e.reservation_id));
                    self.on_hand -= e.qty.get();
                }
                Event::ReservationReleased(e) => {
                    self.holds.retain(|(h, _, _)| *h != n(&e.reservation_id))
                }
                Event::ReservationExpired(e) => {
                    self.holds.retain(|(h, _, _)| *h != n(&e.reservation_id))
                }
                Event::ReservationReduced(e) => {
                    let hold = self
                        .holds
                        .iter_mut()
                        .find(|(h, _, _)| *h == n(&e.reservation_id))
                        .unwrap();
                    hold.1 = e.remaining.get();
                    hold.2.qty = e.remaining;
                    if e.outcome == Resolution::Committed {
                        self.on_hand -= e.qty.get();
                    }
                }
                Event::StockAdjusted(e) => self.on_hand = e.current.get(),
                Event::ReceiptReceived(e) => self.on_hand += e.qty.get(),
                Event::BackorderLimitSet(e) => self.limit = e.limit.get(),
                _ => {}
            }
        }
    }

    fn command(op: &Op, receipt: u64, now: u64) -> Vec<Command> {
        let id = |n: u8| rid(u128::from(n) + 1);
        match *op {
            Op::Reserve {
                id: n,
                qty: q,
                ttl_ms,
            } => vec![Command::Reserve(Reserve {
                customer: None,
                placement: Default::default(),
                reservation_id: id(n),
                order_id: None,
                lines: Vec::new(),
                qty: qty(q),
                ttl: Duration::from_millis(ttl_ms),
                channel: web(),
            })],
            Op::Commit(n) => vec![commit(u128::from(n) + 1)],
            Op::Release(n) => vec![release(u128::from(n) + 1)],
            Op::Expire(n) => vec![expire(u128::from(n) + 1)],
            Op::Reduce {
                id: n,
                qty: q,
                sell,
            } => vec![Command::Reduce(Reduce {
                reservation_id: id(n),
                qty: qty(q),
                sell,
            })],
            Op::Delta(d) => vec![adjust(StockChange::Delta(d), "random")],
            Op::Receive(q) => {
                let reference = ReceiptRef::new(format!("PO-{receipt}")).unwrap();
                vec![
                    Command::ExpectReceipt(ExpectReceipt {
                        reference: reference.clone(),
                        qty: qty(q),
                        eta: Timestamp::from_millis(now + 1_000),
                        location: None,
                    }),
                    Command::ReceiveReceipt(ReceiveReceipt {
                        reference,
                        qty: None,
                    }),
                ]
            }
            Op::Limit(l) => vec![set_limit(l, None)],
            Op::Advance(_) => Vec::new(),
        }
    }

    fn run(on_hand: u64, limit: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let first = registered_physical(on_hand, 0);
        let mut log = vec![first.clone()];
        let mut state = SkuState::from_events(&log).unwrap();
        let mut ledger = Ledger::default();
        ledger.apply(&first, None).unwrap();
        let mut line = Line {
            on_hand,
            ..Line::default()
        };
        let mut now = 1_000u64;
        let mut receipts = 0u64;
        let mut ops = ops;
        ops.insert(0, Op::Limit(limit));
        for op in &ops {
            if let Op::Advance(ms) = op {
                now += ms;
                continue;
            }
            receipts += 1;
            for cmd in command(op, receipts, now) {
                let at = Timestamp::from_millis(now);
                let Ok(events) = decide(&state, &cmd, at) else {
                    continue;
                };
                let before = line.beyond();
                let took_backorders = line.limit > 0;
                let first_event = &events[0];
                // Nothing waiting is sold.
                match first_event {
                    Event::ReservationCommitted(e) => {
                        prop_assert_eq!(line.waiting_of(e.reservation_id.as_uuid().as_u128()), 0)
                    }
                    Event::ReservationReduced(e) if e.outcome == Resolution::Committed => {
                        let id = e.reservation_id.as_uuid().as_u128();
                        let held = line.facts(id).unwrap().qty.get();
                        prop_assert!(e.qty.get() <= held - line.waiting_of(id));
                    }
                    _ => {}
                }
                for event in &events {
                    let ended = match event {
                        Event::StockReserved(_) | Event::BackorderFilled(_) => None,
                        other => other
                            .reservation_id()
                            .and_then(|id| line.facts(id.as_uuid().as_u128())),
                    };
                    ledger
                        .apply(event, ended)
                        .map_err(|e| TestCaseError::fail(format!("ledger: {e} at {event:?}")))?;
                    state
                        .apply(event)
                        .map_err(|e| TestCaseError::fail(format!("state: {e} at {event:?}")))?;
                    line.apply(event);
                    log.push(event.clone());
                }
                // The fills are exactly what moved from waiting to covered, in line order,
                // for holds this decision did not itself end or shrink.
                let own = first_event
                    .reservation_id()
                    .map(|id| id.as_uuid().as_u128());
                let after = line.beyond();
                let expected: Vec<(u128, u64, u64)> = before
                    .iter()
                    .filter(|_| took_backorders)
                    .filter(|(id, _)| Some(*id) != own)
                    .filter_map(|(id, was)| {
                        let now_waiting =
                            after.iter().find(|(a, _)| a == id).map_or(0, |(_, n)| *n);
                        (now_waiting < *was).then(|| (*id, was - now_waiting, now_waiting))
                    })
                    .collect();
                let got: Vec<(u128, u64, u64)> = events[1..]
                    .iter()
                    .map(|e| match e {
                        Event::BackorderFilled(f) => (
                            f.reservation_id.as_uuid().as_u128(),
                            f.qty.get(),
                            f.backordered.get(),
                        ),
                        other => panic!("after its first event, a decision fills: {other:?}"),
                    })
                    .collect();
                prop_assert_eq!(&got, &expected, "{:?} at {}: {:?}", op, now, line);
                // First in, first out: a filled hold has no one still waiting ahead of it.
                for (id, _, _) in &got {
                    for (ahead, _, _) in line.holds.iter().take_while(|(h, _, _)| h != id) {
                        prop_assert_eq!(line.waiting_of(*ahead), 0);
                    }
                }
                let stock = state.stock().unwrap();
                let waiting: Vec<(u128, u64)> = stock
                    .backorders()
                    .into_iter()
                    .map(|(id, q)| (id.as_uuid().as_u128(), q.get()))
                    .collect();
                prop_assert_eq!(waiting, line.waiting());
                prop_assert_eq!(ledger.view(at), Some(stock.view(at)));
            }
        }
        crate::tests::folds_and_restores(&log, &state)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn backorders_fill_first_in_first_out_and_are_never_sold(
            on_hand in 0u64..5,
            limit in 1u64..8,
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            run(on_hand, limit, ops)?;
        }
    }
}

/// The same at a SKU stocked at two locations, each with its own limit and line: fills,
/// waiting units and sales against a flat per-location model, and the ledger, a fold and
/// a snapshot against the writer.
mod random_at_locations {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::allocation::Placement;
    use crate::command::Reserve;
    use crate::decide::decide;
    use crate::state::{HoldFacts, Ledger};

    const PLACES: [&str; 2] = ["a", "b"];

    #[derive(Debug, Clone)]
    enum Op {
        Reserve {
            id: u8,
            qty: u64,
            at: Option<usize>,
            ttl_ms: u64,
        },
        Commit(u8),
        Release(u8),
        Expire(u8),
        Shrink {
            id: u8,
            qty: u64,
        },
        Receive {
            at: usize,
            qty: u64,
        },
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = 0u8..8;
        prop_oneof![
            6 => (id.clone(), 1u64..5, prop::option::of(0usize..2), 1u64..60_000)
                .prop_map(|(id, qty, at, ttl_ms)| Op::Reserve { id, qty, at, ttl_ms }),
            2 => id.clone().prop_map(Op::Commit),
            2 => id.clone().prop_map(Op::Release),
            2 => id.clone().prop_map(Op::Expire),
            2 => (id, 1u64..3).prop_map(|(id, qty)| Op::Shrink { id, qty }),
            3 => (0usize..2, 1u64..4).prop_map(|(at, qty)| Op::Receive { at, qty }),
            3 => (0u64..30_000).prop_map(Op::Advance),
        ]
    }

    /// A live hold: its id, its units by location, and what the ledger needs of it.
    type ModelHold = (u128, Vec<(usize, u64)>, HoldFacts);

    /// Per location `(on hand, limit)`, and the live holds in line order with their parts.
    #[derive(Debug, Default)]
    struct Model {
        sites: [(u64, u64); 2],
        holds: Vec<ModelHold>,
    }

    fn site(location: &LocationId) -> usize {
        PLACES.iter().position(|p| *p == location.as_str()).unwrap()
    }

    impl Model {
        /// Units of each hold beyond on hand, location by location (where it has a limit).
        fn waiting(&self) -> Vec<(u128, u64)> {
            let mut promised = [0u64; 2];
            let mut out = Vec::new();
            for (id, parts, _) in &self.holds {
                let mut waiting = 0;
                for (s, q) in parts {
                    let (on_hand, limit) = self.sites[*s];
                    let before = promised[*s];
                    promised[*s] += q;
                    if limit > 0 && promised[*s] > on_hand {
                        waiting += promised[*s] - on_hand.max(before);
                    }
                }
                if waiting > 0 {
                    out.push((*id, waiting));
                }
            }
            out
        }

        fn waiting_of(&self, id: u128) -> u64 {
            self.waiting()
                .into_iter()
                .find(|(h, _)| *h == id)
                .map_or(0, |(_, n)| n)
        }

        fn apply(&mut self, event: &Event) {
            let n = |id: &crate::ids::ReservationId| id.as_uuid().as_u128();
            let hold = |m: &mut Model, id: u128| m.holds.iter().position(|(h, _, _)| *h == id);
            match event {
                Event::StockReserved(e) => self.holds.push((
                    n(&e.reservation_id),
                    e.parts
                        .iter()
                        .map(|p| (site(&p.location), p.qty.get()))
                        .collect(),
                    HoldFacts {
                        qty: e.qty,
                        reserved_at: e.at,
                        expires_at: e.expires_at,
                        parts: e.parts.clone(),
                    },
                )),
                Event::ReservationCommitted(e) => {
                    let at = hold(self, n(&e.reservation_id)).unwrap();
                    let (_, parts, _) = self.holds.remove(at);
                    for (s, q) in parts {
                        self.sites[s].0 -= q;
                    }
                }
                Event::ReservationReleased(e) => {
                    let at = hold(self, n(&e.reservation_id)).unwrap();
                    self.holds.remove(at);
                }
                Event::ReservationExpired(e) => {
                    let at = hold(self, n(&e.reservation_id)).unwrap();
                    self.holds.remove(at);
                }
                Event::ReservationReduced(e) => {
                    let at = hold(self, n(&e.reservation_id)).unwrap();
                    let entry = &mut self.holds[at];
                    entry.2 = entry.2.after(event).unwrap();
                    for ended in &e.parts {
                        let s = site(&ended.location);
                        let part = entry.1.iter_mut().find(|(p, _)| *p == s).unwrap();
                        part.1 -= ended.qty.get();
                        if e.outcome == Resolution::Committed {
                            self.sites[s].0 -= ended.qty.get();
                        }
                    }
                    entry.1.retain(|(_, q)| *q > 0);
                }
                Event::ReceiptReceived(e) => self.sites[site(&e.location)].0 += e.qty.get(),
                Event::BackorderLimitSet(e) => {
                    self.sites[site(e.location.as_ref().unwrap())].1 = e.limit.get()
                }
                _ => {}
            }
        }
    }

    fn command(op: &Op, receipt: u64, now: u64) -> Vec<Command> {
        let id = |n: u8| rid(u128::from(n) + 1);
        let place = |i: usize| LocationId::new(PLACES[i]).unwrap();
        match *op {
            Op::Reserve {
                id: n,
                qty: q,
                at,
                ttl_ms,
            } => vec![Command::Reserve(Reserve {
                customer: None,
                // Unnamed, a line may be split over both locations.
                placement: at.map_or_else(
                    || Placement {
                        allow_split: true,
                        ..Placement::default()
                    },
                    |i| Placement::at(place(i)),
                ),
                reservation_id: id(n),
                order_id: None,
                lines: Vec::new(),
                qty: qty(q),
                ttl: Duration::from_millis(ttl_ms),
                channel: web(),
            })],
            Op::Commit(n) => vec![commit(u128::from(n) + 1)],
            Op::Release(n) => vec![release(u128::from(n) + 1)],
            Op::Expire(n) => vec![expire(u128::from(n) + 1)],
            Op::Shrink { id: n, qty: q } => vec![Command::Reduce(Reduce {
                reservation_id: id(n),
                qty: qty(q),
                sell: false,
            })],
            Op::Receive { at, qty: q } => {
                let reference = ReceiptRef::new(format!("PO-{receipt}")).unwrap();
                vec![
                    Command::ExpectReceipt(ExpectReceipt {
                        reference: reference.clone(),
                        qty: qty(q),
                        eta: Timestamp::from_millis(now + 1_000),
                        location: Some(place(at)),
                    }),
                    Command::ReceiveReceipt(ReceiveReceipt {
                        reference,
                        qty: None,
                    }),
                ]
            }
            Op::Advance(_) => Vec::new(),
        }
    }

    fn run(stock: [u64; 2], limits: [u64; 2], ops: Vec<Op>) -> Result<(), TestCaseError> {
        let first = registered(PoolConfig::at_locations(vec![
            located("a", stock[0], 0),
            located("b", stock[1], 1),
        ]));
        let mut log = vec![first.clone()];
        let mut state = SkuState::from_events(&log).unwrap();
        let mut ledger = Ledger::default();
        ledger.apply(&first, None).unwrap();
        let mut model = Model {
            sites: [(stock[0], 0), (stock[1], 0)],
            ..Model::default()
        };
        let mut now = 1_000u64;
        let mut commands: Vec<Command> = limits
            .iter()
            .zip(PLACES)
            .filter(|(l, _)| **l > 0)
            .map(|(l, p)| set_limit(*l, Some(p)))
            .collect();
        for (n, op) in ops.iter().enumerate() {
            if let Op::Advance(ms) = op {
                now += ms;
            }
            commands.extend(command(op, n as u64, now));
            for cmd in std::mem::take(&mut commands) {
                let at = Timestamp::from_millis(now);
                let Ok(events) = decide(&state, &cmd, at) else {
                    continue;
                };
                let before = model.waiting();
                let first_event = &events[0];
                if let Event::ReservationCommitted(e) = first_event {
                    prop_assert_eq!(model.waiting_of(e.reservation_id.as_uuid().as_u128()), 0);
                }
                for event in &events {
                    let ended = match event {
                        Event::StockReserved(_) | Event::BackorderFilled(_) => None,
                        other => other.reservation_id().and_then(|id| {
                            let id = id.as_uuid().as_u128();
                            model
                                .holds
                                .iter()
                                .find(|(h, _, _)| *h == id)
                                .map(|(_, _, f)| f.clone())
                        }),
                    };
                    ledger
                        .apply(event, ended)
                        .map_err(|e| TestCaseError::fail(format!("ledger: {e} at {event:?}")))?;
                    state
                        .apply(event)
                        .map_err(|e| TestCaseError::fail(format!("state: {e} at {event:?}")))?;
                    model.apply(event);
                    log.push(event.clone());
                }
                let own = first_event
                    .reservation_id()
                    .map(|id| id.as_uuid().as_u128());
                let after = model.waiting();
                let expected: Vec<(u128, u64, u64)> = before
                    .iter()
                    .filter(|(id, _)| Some(*id) != own)
                    .filter_map(|(id, was)| {
                        let left = after.iter().find(|(a, _)| a == id).map_or(0, |(_, n)| *n);
                        (left < *was).then(|| (*id, was - left, left))
                    })
                    .collect();
                let got: Vec<(u128, u64, u64)> = events[1..]
                    .iter()
                    .map(|e| match e {
                        Event::BackorderFilled(f) => (
                            f.reservation_id.as_uuid().as_u128(),
                            f.qty.get(),
                            f.backordered.get(),
                        ),
                        other => panic!("after its first event, a decision fills: {other:?}"),
                    })
                    .collect();
                prop_assert_eq!(&got, &expected, "{:?} at {}: {:?}", cmd, now, model);
                let stock = state.stock().unwrap();
                let waiting: Vec<(u128, u64)> = stock
                    .backorders()
                    .into_iter()
                    .map(|(id, q)| (id.as_uuid().as_u128(), q.get()))
                    .collect();
                prop_assert_eq!(waiting, after);
                for (id, n) in model.waiting() {
                    let r = crate::ids::ReservationId::from_u128(id);
                    prop_assert_eq!(stock.backordered_of(&r).get(), n);
                }
                prop_assert_eq!(ledger.view(at), Some(stock.view(at)));
            }
        }
        crate::tests::folds_and_restores(&log, &state)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn each_location_fills_its_own_line_first_in_first_out(
            stock in [0u64..4, 0u64..4],
            limits in [0u64..5, 0u64..5],
            ops in proptest::collection::vec(op(), 1..100),
        ) {
            run(stock, limits, ops)?;
        }
    }
}
