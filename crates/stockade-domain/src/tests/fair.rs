//! Fair selling: purchase limits per customer across orders, and the waitlist that gets
//! freed stock first in, first out.

use std::time::Duration;

use crate::command::{Command, JoinWaitlist, LeaveWaitlist, Reserve, SetFairSelling};
use crate::decide::decide;
use crate::event::{Event, LeftReason};
use crate::ids::CustomerId;
use crate::rejection::Rejection;
use crate::state::SkuState;
use crate::testing::*;

fn customer(name: &str) -> CustomerId {
    CustomerId::new(name).unwrap()
}

fn rules(per_customer: Option<u64>, window_secs: u64, hold_secs: u64) -> Command {
    Command::SetFairSelling(SetFairSelling {
        per_customer: per_customer.map(qty),
        window: Duration::from_secs(window_secs),
        waitlist_hold: Duration::from_secs(hold_secs),
    })
}

fn reserve_for(id: u128, who: &str, n: u64) -> Command {
    Command::Reserve(Reserve {
        placement: Default::default(),
        reservation_id: rid(id),
        order_id: None,
        lines: Vec::new(),
        qty: qty(n),
        ttl: Duration::from_secs(600),
        channel: web(),
        customer: Some(customer(who)),
    })
}

fn join(who: &str, n: u64) -> Command {
    // A hold id per customer and size, as unique as these tests need.
    let id = 1_000_000 + u128::from(who.bytes().map(u32::from).sum::<u32>()) * 100 + u128::from(n);
    Command::JoinWaitlist(JoinWaitlist {
        customer: customer(who),
        qty: qty(n),
        channel: web(),
        hold_id: rid(id),
    })
}

/// Decides `command` at `at` and applies what it decided; panics on a refusal.
fn run(state: &mut SkuState, command: &Command, at: crate::time::Timestamp) -> Vec<Event> {
    let events = decide(state, command, at).unwrap_or_else(|r| panic!("{command:?}: {r}"));
    for e in &events {
        state.apply(e).unwrap();
    }
    events
}

/// Serves the waitlist as the engine does after every decision: until no one can be.
fn serve(state: &mut SkuState, at: crate::time::Timestamp) -> Vec<Event> {
    let mut served = Vec::new();
    while let Ok(events) = decide(state, &Command::ServeWaitlist, at) {
        for e in &events {
            state.apply(e).unwrap();
        }
        served.extend(events);
    }
    served
}

fn limited(on_hand: u64, per_customer: u64, window_secs: u64) -> SkuState {
    let mut state = SkuState::from_events(&[registered_physical(on_hand, 0)]).unwrap();
    run(
        &mut state,
        &rules(Some(per_customer), window_secs, 60),
        secs(1),
    );
    state
}

#[test]
fn a_limit_counts_holds_and_sales_across_orders() {
    let mut state = limited(100, 2, 3600);
    run(&mut state, &reserve_for(1, "ann", 1), secs(2));
    run(&mut state, &commit(1), secs(3));
    run(&mut state, &reserve_for(2, "ann", 1), secs(4));
    // One bought, one held: a third order of one unit is refused, saying none remain.
    let refused = decide(&state, &reserve_for(3, "ann", 1), secs(5)).unwrap_err();
    assert_eq!(
        refused,
        Rejection::PurchaseLimit {
            customer: customer("ann"),
            limit: qty(2),
            counted: qty(2),
            requested: qty(1),
            remaining: qty(0),
        }
    );
    // Someone else is not affected; and a release gives ann's unit back to her count.
    run(&mut state, &reserve_for(4, "bob", 2), secs(5));
    run(&mut state, &release(2), secs(6));
    run(&mut state, &reserve_for(5, "ann", 1), secs(7));
}

#[test]
fn a_purchase_leaves_the_count_when_it_leaves_the_window() {
    let mut state = limited(100, 1, 10);
    run(&mut state, &reserve_for(1, "ann", 1), secs(2));
    run(&mut state, &commit(1), secs(3));
    assert!(matches!(
        decide(&state, &reserve_for(2, "ann", 1), secs(12)),
        Err(Rejection::PurchaseLimit { .. })
    ));
    run(&mut state, &reserve_for(2, "ann", 1), secs(14));
}

#[test]
fn a_limited_sku_needs_the_customer_and_sane_rules() {
    let state = limited(10, 2, 60);
    assert_eq!(
        decide(&state, &reserve(1, 1, 60), secs(2)),
        Err(Rejection::CustomerRequired)
    );
    for bad in [
        rules(Some(0), 60, 60),
        rules(Some(2), 0, 60),
        rules(Some(2), 400 * 24 * 3600, 60),
        rules(Some(2), 60, 0),
        rules(None, 0, 2 * 24 * 3600),
    ] {
        assert!(
            matches!(
                decide(&state, &bad, secs(2)),
                Err(Rejection::InvalidRules { .. })
            ),
            "{bad:?}"
        );
    }
    // Growing a hold counts too.
    let mut state = state;
    run(&mut state, &reserve_for(1, "ann", 2), secs(2));
    let amend = Command::Amend(crate::command::Amend {
        reservation_id: rid(1),
        qty: qty(3),
        placement: Default::default(),
    });
    assert!(matches!(
        decide(&state, &amend, secs(3)),
        Err(Rejection::PurchaseLimit { .. })
    ));
}

#[test]
fn freed_stock_goes_to_the_waitlist_first_in_first_out() {
    let mut state = SkuState::from_events(&[registered_physical(2, 0)]).unwrap();
    run(&mut state, &rules(None, 0, 30), secs(1));
    run(&mut state, &reserve_for(1, "ann", 2), secs(2));
    run(&mut state, &join("bob", 1), secs(3));
    run(&mut state, &join("cat", 1), secs(4));
    assert_eq!(
        decide(&state, &join("bob", 1), secs(4)),
        Err(Rejection::AlreadyWaiting {
            customer: customer("bob"),
            position: 1
        })
    );
    // A newcomer queues behind them: stock freed later is theirs.
    assert_eq!(
        decide(&state, &reserve_for(2, "dan", 1), secs(5)),
        Err(Rejection::Waitlisted { waiting: 2 })
    );
    assert!(serve(&mut state, secs(5)).is_empty());
    run(&mut state, &release(1), secs(6));
    let served = serve(&mut state, secs(6));
    let holders: Vec<_> = served
        .iter()
        .map(|e| match e {
            Event::StockReserved(r) => (r.customer.clone().unwrap(), r.waitlist, r.expires_at),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        holders,
        vec![
            (customer("bob"), Some(0), secs(36)),
            (customer("cat"), Some(1), secs(36))
        ]
    );
    assert_eq!(state.stock().unwrap().waitlist_len().0, 0);
}

#[test]
fn a_place_waits_whole_and_is_skipped_by_no_one() {
    let mut state = SkuState::from_events(&[registered_physical(1, 0)]).unwrap();
    run(&mut state, &reserve_for(1, "ann", 1), secs(2));
    run(&mut state, &join("bob", 2), secs(3));
    run(&mut state, &join("cat", 1), secs(4));
    run(&mut state, &release(1), secs(5));
    // One unit free: bob waits for two, and cat, behind him, does not jump the line.
    assert!(serve(&mut state, secs(5)).is_empty());
    let place = state
        .stock()
        .unwrap()
        .waitlist_place(&customer("cat"))
        .unwrap();
    assert_eq!((place.position, place.units_ahead), (2, qty(2)));
    run(
        &mut state,
        &adjust(crate::command::StockChange::Delta(2), "received"),
        secs(6),
    );
    assert_eq!(serve(&mut state, secs(6)).len(), 2);
}

#[test]
fn a_waiter_leaves_or_is_dropped_by_the_limit_at_their_turn() {
    let mut state = limited(1, 1, 3600);
    run(&mut state, &reserve_for(1, "ann", 1), secs(2));
    run(&mut state, &join("bob", 1), secs(3));
    run(&mut state, &join("cat", 1), secs(4));
    let leave = |who: &str| {
        Command::LeaveWaitlist(LeaveWaitlist {
            customer: customer(who),
        })
    };
    run(&mut state, &leave("bob"), secs(5));
    assert_eq!(
        decide(&state, &leave("bob"), secs(5)),
        Err(Rejection::NotWaiting {
            customer: customer("bob")
        })
    );
    // Cat buys elsewhere in the meantime? Not here: at her turn her limit is checked.
    // Ann joins behind cat, having already bought her one unit.
    run(&mut state, &commit(1), secs(6));
    assert!(matches!(
        decide(&state, &join("ann", 1), secs(6)),
        Err(Rejection::PurchaseLimit { .. })
    ));
    run(
        &mut state,
        &adjust(crate::command::StockChange::Delta(1), "found"),
        secs(7),
    );
    let served = serve(&mut state, secs(7));
    assert!(
        matches!(&served[..], [Event::StockReserved(r)] if r.customer == Some(customer("cat")))
    );
    let _ = LeftReason::PurchaseLimit;
}

/// Random histories of several customers under a limit, with a waitlist: against a flat
/// model, no customer ever holds and buys more than the limit over the window; no new hold
/// is taken while anyone waits; places are served strictly in line order, and after the
/// engine's serving loop nobody first in line could have been served; the staged side, the
/// ledger, a fold and a snapshot all read as the writer does.
mod random {
    use std::collections::{BTreeMap, HashMap, VecDeque};

    use proptest::prelude::*;

    use super::*;
    use crate::command::{Expire, StockChange};
    use crate::event::StockReserved;
    use crate::rejection::Resolution;
    use crate::state::{HoldFacts, Landed, Ledger};
    use crate::time::Timestamp;

    const CUSTOMERS: u8 = 4;

    #[derive(Debug, Clone)]
    enum Op {
        Reserve { who: u8, qty: u64, ttl_ms: u64 },
        Commit(u8),
        Release(u8),
        Expire(u8),
        Sell { id: u8, qty: u64 },
        Grow { id: u8, qty: u64 },
        Join { who: u8, qty: u64 },
        Leave(u8),
        Restock(u64),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..CUSTOMERS, 1u64..4, 1u64..5_000)
                .prop_map(|(who, qty, ttl_ms)| Op::Reserve { who, qty, ttl_ms }),
            2 => (0u8..40).prop_map(Op::Commit),
            1 => (0u8..40).prop_map(Op::Release),
            1 => (0u8..40).prop_map(Op::Expire),
            1 => (0u8..40, 1u64..3).prop_map(|(id, qty)| Op::Sell { id, qty }),
            1 => (0u8..40, 1u64..3).prop_map(|(id, qty)| Op::Grow { id, qty }),
            3 => (0..CUSTOMERS, 1u64..4).prop_map(|(who, qty)| Op::Join { who, qty }),
            1 => (0..CUSTOMERS).prop_map(Op::Leave),
            1 => (1u64..4).prop_map(Op::Restock),
            2 => (1u64..4_000).prop_map(Op::Advance),
        ]
    }

    fn who(n: u8) -> CustomerId {
        customer(&format!("c{n}"))
    }

    #[derive(Debug, Default)]
    struct Model {
        /// Live holds: id -> (customer, units, expires_at).
        holds: BTreeMap<u128, (CustomerId, u64, u64)>,
        /// Sales while the limit was set: customer -> (at, units).
        sales: HashMap<CustomerId, Vec<(u64, u64)>>,
        line: VecDeque<(u64, CustomerId, u64)>,
    }

    impl Model {
        fn counted(&self, c: &CustomerId, now: u64, window: u64) -> u64 {
            let held: u64 = self.holds.values().filter(|h| &h.0 == c).map(|h| h.1).sum();
            let bought: u64 = self.sales.get(c).map_or(0, |s| {
                s.iter()
                    .filter(|(at, _)| *at + window > now)
                    .map(|s| s.1)
                    .sum()
            });
            held + bought
        }
    }

    fn command(op: &Op, ids: &mut u128) -> Option<Command> {
        let id = |n: u8| rid(u128::from(n) + 1);
        Some(match *op {
            Op::Reserve {
                who: w,
                qty: q,
                ttl_ms,
            } => {
                *ids = *ids % 40 + 1;
                let mut c = reserve_for(*ids, &format!("c{w}"), q);
                if let Command::Reserve(r) = &mut c {
                    r.ttl = Duration::from_millis(ttl_ms);
                }
                c
            }
            Op::Commit(n) => commit(u128::from(n) + 1),
            Op::Release(n) => release(u128::from(n) + 1),
            Op::Expire(n) => expire(u128::from(n) + 1),
            Op::Sell { id: n, qty: q } => Command::Reduce(crate::command::Reduce {
                reservation_id: id(n),
                qty: qty(q),
                sell: true,
            }),
            Op::Grow { id: n, qty: q } => Command::Amend(crate::command::Amend {
                reservation_id: id(n),
                qty: qty(q + 1),
                placement: Default::default(),
            }),
            Op::Join { who: w, qty: q } => join(&format!("c{w}"), q),
            Op::Leave(w) => Command::LeaveWaitlist(LeaveWaitlist { customer: who(w) }),
            Op::Restock(n) => adjust(StockChange::Delta(n as i64), "restock"),
            Op::Advance(_) => return None,
        })
    }

    fn run(on_hand: u64, limit: u64, window_s: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let window = window_s * 1000;
        let first = registered_physical(on_hand, 0);
        let mut state = SkuState::from_events(std::slice::from_ref(&first)).unwrap();
        let mut pipelined = state.clone();
        let mut ledger = Ledger::default();
        ledger.apply(&first, None).unwrap();
        let mut log = vec![first];
        let mut model = Model::default();
        let mut now = 1_000u64;
        let mut ids = 0u128;
        let mut staged: VecDeque<Event> = VecDeque::new();
        let set = rules(Some(limit), window_s, 2);
        let mut commands: Vec<Command> = vec![set];
        let mut ops = ops.into_iter();
        while let Some(cmd) = commands.pop().or_else(|| {
            ops.by_ref().find_map(|op| {
                if let Op::Advance(ms) = op {
                    now += ms;
                    return Some(Command::ServeWaitlist);
                }
                command(&op, &mut ids)
            })
        }) {
            let at = Timestamp::from_millis(now);
            if matches!(cmd, Command::ServeWaitlist) && commands.is_empty() {
                // As the engine's timer does: write what lapsed (each followed by serving).
                let lapsed: Vec<_> = state.stock().unwrap().lapsed(at).map(|r| r.id).collect();
                commands.extend(
                    lapsed
                        .into_iter()
                        .map(|reservation_id| Command::Expire(Expire { reservation_id })),
                );
            }
            let waiting_before = model.line.len();
            let events = match decide(&state, &cmd, at) {
                Ok(events) => events,
                Err(_) => {
                    // The engine's serving loop stopped: whoever is first in line could
                    // not be served, for want of stock (the limit would have dropped them).
                    if matches!(cmd, Command::ServeWaitlist)
                        && let Some((_, _, q)) = model.line.front()
                    {
                        prop_assert!(!state.stock().unwrap().available(at).covers(qty(*q)));
                    }
                    continue;
                }
            };
            for event in &events {
                // Check against the model before it changes.
                match event {
                    Event::StockReserved(StockReserved {
                        customer: Some(c),
                        qty: q,
                        waitlist,
                        ..
                    }) => {
                        prop_assert!(model.counted(c, now, window) + q.get() <= limit);
                        match waitlist {
                            Some(n) => {
                                let first = model.line.front().cloned();
                                prop_assert_eq!(first, Some((*n, c.clone(), q.get())));
                            }
                            None => prop_assert_eq!(waiting_before, 0),
                        }
                    }
                    Event::ReservationIncreased(e) => {
                        let c = model.holds[&e.reservation_id.as_uuid().as_u128()].0.clone();
                        prop_assert!(model.counted(&c, now, window) + e.qty.get() <= limit);
                    }
                    _ => {}
                }
                let ended = event
                    .reservation_id()
                    .filter(|_| !matches!(event, Event::StockReserved(_)))
                    .and_then(|id| state.stock()?.reservation(&id))
                    .map(|r| HoldFacts {
                        parts: Vec::new(),
                        qty: r.qty,
                        reserved_at: r.reserved_at,
                        expires_at: r.expires_at,
                    });
                ledger
                    .apply(event, ended)
                    .map_err(|e| TestCaseError::fail(format!("ledger: {e}")))?;
                state
                    .apply(event)
                    .map_err(|e| TestCaseError::fail(format!("apply: {e}")))?;
                pipelined
                    .stage(event)
                    .map_err(|e| TestCaseError::fail(format!("stage: {e}")))?;
                log.push(event.clone());
                let id = |r: &crate::ids::ReservationId| r.as_uuid().as_u128();
                match event {
                    Event::StockReserved(e) => {
                        if e.waitlist.is_some() {
                            model.line.pop_front();
                        }
                        if let Some(c) = &e.customer {
                            model.holds.insert(
                                id(&e.reservation_id),
                                (c.clone(), e.qty.get(), e.expires_at.as_millis()),
                            );
                        }
                    }
                    Event::ReservationCommitted(e) => {
                        let (c, q, _) = model.holds.remove(&id(&e.reservation_id)).unwrap();
                        model.sales.entry(c).or_default().push((now, q));
                    }
                    Event::ReservationReleased(e) => {
                        model.holds.remove(&id(&e.reservation_id));
                    }
                    Event::ReservationExpired(e) => {
                        model.holds.remove(&id(&e.reservation_id));
                    }
                    Event::ReservationReduced(e) => {
                        let h = model.holds.get_mut(&id(&e.reservation_id)).unwrap();
                        h.1 -= e.qty.get();
                        let c = h.0.clone();
                        if e.outcome == Resolution::Committed {
                            model.sales.entry(c).or_default().push((now, e.qty.get()));
                        }
                    }
                    Event::ReservationIncreased(e) => {
                        model.holds.get_mut(&id(&e.reservation_id)).unwrap().1 += e.qty.get();
                    }
                    Event::WaitlistJoined(e) => {
                        model
                            .line
                            .push_back((e.number, e.customer.clone(), e.qty.get()));
                    }
                    Event::WaitlistLeft(e) => {
                        prop_assert!(
                            e.reason == LeftReason::Left
                                || model.line.front().map(|f| f.0) == Some(e.number)
                        );
                        model.line.retain(|(n, _, _)| *n != e.number);
                    }
                    _ => {}
                }
                staged.push_back(event.clone());
            }
            // The pipelined side lands all but the last few: what it shows is the writer's.
            while staged.len() > log.len() % 3 {
                let Some(event) = staged.pop_front() else {
                    break;
                };
                if pipelined.land(&event) == Ok(Landed::Dropped) {
                    pipelined.discard_staged();
                    for e in &staged {
                        pipelined.stage(e).unwrap();
                    }
                }
            }
            // After every decision the engine serves the line, until no one can be.
            commands.push(Command::ServeWaitlist);
            let stock = state.stock().unwrap();
            for n in 0..CUSTOMERS {
                prop_assert_eq!(
                    stock.counted(&who(n), at).get(),
                    model.counted(&who(n), now, window)
                );
                prop_assert_eq!(
                    pipelined.speculative().unwrap().counted(&who(n), at),
                    stock.counted(&who(n), at)
                );
            }
            prop_assert_eq!(ledger.view(at), Some(stock.view(at)));
            prop_assert_eq!(pipelined.speculative().unwrap().view(at), stock.view(at));
            // The line as the staged side shows it (its places split between the applied
            // side and the layer) is the writer's.
            prop_assert_eq!(
                pipelined.speculative().unwrap().waitlist(64),
                stock.waitlist(64)
            );
            let listed: Vec<u64> = stock.waitlist(64).iter().map(|p| p.number).collect();
            let modelled: Vec<u64> = model.line.iter().take(64).map(|(n, _, _)| *n).collect();
            prop_assert_eq!(listed, modelled);
            // Each waiter's own place, counted from whichever end is nearer, is the line's.
            let mut ahead = 0u64;
            for (i, (n, c, q)) in model.line.iter().enumerate() {
                for side in [stock, pipelined.speculative().unwrap()] {
                    let place = side.waitlist_place(c).unwrap();
                    prop_assert_eq!(
                        (place.number, place.position, place.units_ahead.get()),
                        (*n, i as u64 + 1, ahead)
                    );
                }
                ahead += q;
            }
        }
        crate::tests::folds_and_restores(&log, &state)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

        #[test]
        fn limits_hold_and_the_line_is_served_in_order(
            on_hand in 0u64..6,
            limit in 1u64..5,
            window_s in 1u64..15,
            ops in proptest::collection::vec(op(), 1..150),
        ) {
            run(on_hand, limit, window_s, ops)?;
        }
    }
}
