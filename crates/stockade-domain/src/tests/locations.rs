//! A SKU at several locations: where each hold's units come from, that they go back
//! there, per-location counts and shortfalls, transfers, and a random-history property
//! that no location is ever promised beyond what it offers.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::allocation::{Part, Placement, Strategy as Allocation};
use crate::command::{
    Adjust, Amend, Command, Extend, ReceiveTransfer, Reduce, RegisterSku, Reserve, ShipTransfer,
    StockChange,
};
use crate::decide::decide;
use crate::event::{Event, StockAdjusted, StockReserved, TransferReceived, TransferShipped};
use crate::ids::{LocationId, TransferId};
use crate::pool::{LocationConfig, MAX_LOCATIONS, PoolConfig};
use crate::rejection::Rejection;
use crate::state::{HoldFacts, Ledger, SkuState};
use crate::testing::*;
use crate::time::Timestamp;

fn loc(id: &str) -> LocationId {
    LocationId::new(id).unwrap()
}

fn at(id: &str, on_hand: u64, safety_stock: u64, priority: u32) -> LocationConfig {
    LocationConfig {
        location: loc(id),
        on_hand: qty(on_hand),
        safety_stock: qty(safety_stock),
        priority,
    }
}

/// Berlin (3, first by priority), Munich (5), Hamburg (8, 1 of it safety stock).
fn three() -> Event {
    registered(PoolConfig::at_locations(vec![
        at("berlin", 3, 0, 1),
        at("munich", 5, 0, 2),
        at("hamburg", 8, 1, 3),
    ]))
}

fn reserve_placed(id: u128, n: u64, placement: Placement) -> Command {
    let Command::Reserve(mut r) = reserve(id, n, 60) else {
        unreachable!()
    };
    r.placement = placement;
    Command::Reserve(r)
}

fn split(strategy: Allocation) -> Placement {
    Placement {
        allow_split: true,
        strategy,
        ..Placement::default()
    }
}

fn reserved_at(id: u128, n: u64, parts: &[(&str, u64)], at: Timestamp) -> Event {
    let Event::StockReserved(e) =
        reserved(id, n, at, at.checked_add(Duration::from_secs(60)).unwrap())
    else {
        unreachable!()
    };
    Event::StockReserved(StockReserved {
        parts: parts
            .iter()
            .map(|(l, q)| Part {
                location: loc(l),
                qty: qty(*q),
            })
            .collect(),
        ..e
    })
}

fn adjust_at(location: Option<&str>, change: StockChange) -> Command {
    Command::Adjust(Adjust {
        location: location.map(loc),
        change,
        reason: "count".into(),
        reference: None,
    })
}

fn ship(id: &str, from: &str, to: &str, n: u64) -> Command {
    Command::ShipTransfer(ShipTransfer {
        transfer_id: TransferId::new(id).unwrap(),
        from: loc(from),
        to: loc(to),
        qty: qty(n),
        reference: None,
    })
}

fn shipped(id: &str, from: &str, to: &str, n: u64) -> Event {
    Event::TransferShipped(TransferShipped {
        transfer_id: TransferId::new(id).unwrap(),
        from: loc(from),
        to: loc(to),
        qty: qty(n),
        reference: None,
        at: Timestamp::EPOCH,
    })
}

/// (location, reserved, available) at `now`, for compact expectations.
fn figures(state: &SkuState, now: Timestamp) -> Vec<(String, u64, u64)> {
    state
        .stock()
        .unwrap()
        .locations(now)
        .into_iter()
        .map(|l| (l.location.to_string(), l.reserved.get(), l.available.get()))
        .collect()
}

fn invalid(reason: &str) -> Rejection {
    Rejection::InvalidPool {
        reason: reason.into(),
    }
}

#[test]
fn registration_takes_locations_whose_sums_are_the_totals() {
    let pool = PoolConfig::at_locations(vec![at("berlin", 3, 1, 1), at("munich", 5, 0, 2)]);
    assert_eq!(
        pool,
        PoolConfig::Physical {
            on_hand: qty(8),
            safety_stock: qty(1),
            locations: vec![at("berlin", 3, 1, 1), at("munich", 5, 0, 2)],
        }
    );
    given([])
        .when(register_pool(pool.clone()))
        .then([registered(pool)]);

    let wrong_total = PoolConfig::Physical {
        on_hand: qty(9),
        safety_stock: qty(0),
        locations: vec![at("berlin", 3, 0, 1)],
    };
    let twice = PoolConfig::at_locations(vec![at("berlin", 3, 0, 1), at("berlin", 1, 0, 2)]);
    let too_many = PoolConfig::at_locations(
        (0..=MAX_LOCATIONS)
            .map(|i| at(&format!("l{i}"), 1, 0, 0))
            .collect(),
    );
    for (pool, expected) in [
        (
            wrong_total,
            invalid(
                "on_hand 9 and safety_stock 0 must be the locations' sums (3 and 0); give the \
                 locations alone",
            ),
        ),
        (twice, invalid("location berlin is listed twice")),
        (
            too_many,
            invalid("a SKU can be stocked at 1-1000 locations"),
        ),
    ] {
        given([]).when(register_pool(pool)).then_rejected(expected);
    }
}

fn register_pool(pool: PoolConfig) -> Command {
    Command::RegisterSku(RegisterSku { sku: sku(), pool })
}

/// `(location, units)` pairs, as a hold's parts are expected.
type Parts = &'static [(&'static str, u64)];

#[test]
fn a_line_takes_its_units_where_the_strategy_says_and_records_them() {
    let now = secs(1);
    let cases: [(Placement, u64, Parts); 5] = [
        (Placement::default(), 2, &[("berlin", 2)]),
        (Placement::default(), 4, &[("munich", 4)]),
        (Placement::at(loc("hamburg")), 1, &[("hamburg", 1)]),
        (
            split(Allocation::Priority),
            9,
            &[("berlin", 3), ("munich", 5), ("hamburg", 1)],
        ),
        (
            split(Allocation::FewestSplits),
            9,
            &[("hamburg", 7), ("munich", 2)],
        ),
    ];
    for (placement, n, parts) in cases {
        given([three()])
            .at(now)
            .when(reserve_placed(1, n, placement))
            .then([reserved_at(1, n, parts, now)]);
    }
}

#[test]
fn a_line_that_cannot_be_placed_is_refused_with_what_its_rules_allow() {
    let cases = [
        (
            Placement::at(loc("paris")),
            1,
            Rejection::UnknownLocation {
                location: loc("paris"),
            },
        ),
        (
            Placement::at(loc("berlin")),
            4,
            Rejection::InsufficientStock {
                requested: qty(4),
                available: qty(3),
            },
        ),
        // No single location covers 8 (hamburg offers 7 beside its safety stock).
        (
            Placement::default(),
            8,
            Rejection::InsufficientStock {
                requested: qty(8),
                available: qty(7),
            },
        ),
        (
            split(Allocation::MostStock),
            16,
            Rejection::InsufficientStock {
                requested: qty(16),
                available: qty(15),
            },
        ),
    ];
    for (placement, n, expected) in cases {
        given([three()])
            .when(reserve_placed(1, n, placement))
            .then_rejected(expected);
    }
}

#[test]
fn the_last_unit_at_a_location_goes_to_one_line_and_others_are_placed_elsewhere() {
    let now = secs(1);
    let state = given([three()])
        .at(now)
        .when(reserve_placed(1, 3, Placement::at(loc("berlin"))))
        .then([reserved_at(1, 3, &[("berlin", 3)], now)]);
    assert_eq!(figures(&state, now)[0], ("berlin".into(), 3, 0));
    // Berlin is empty now: a line that must come from it is refused, one that may come
    // from anywhere is placed at the next location by priority.
    let history = [three(), reserved_at(1, 3, &[("berlin", 3)], now)];
    given(history.clone())
        .at(now)
        .when(reserve_placed(2, 1, Placement::at(loc("berlin"))))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(1),
            available: qty(0),
        });
    given(history)
        .at(now)
        .when(reserve_placed(2, 1, Placement::default()))
        .then([reserved_at(2, 1, &[("munich", 1)], now)]);
}

#[test]
fn commit_release_and_expiry_give_back_to_the_locations_the_units_came_from() {
    let now = secs(1);
    let history = [
        three(),
        reserved_at(1, 9, &[("berlin", 3), ("munich", 5), ("hamburg", 1)], now),
        reserved_at(2, 2, &[("hamburg", 2)], now),
    ];
    let held = given(history.clone()).state().clone();
    assert_eq!(
        figures(&held, now),
        [
            ("berlin".into(), 3, 0),
            ("munich".into(), 5, 0),
            ("hamburg".into(), 3, 4)
        ]
    );

    let sold = given(history.clone())
        .at(now)
        .when(commit(1))
        .then([committed(1, 9, now)]);
    let stock = sold.stock().unwrap();
    let on_hand: Vec<u64> = stock
        .locations(now)
        .iter()
        .map(|l| l.on_hand.get())
        .collect();
    assert_eq!(on_hand, [0, 0, 7]);
    assert_eq!(stock.limit(), Some(qty(7)));

    let given_back = given(history.clone())
        .at(now)
        .when(release(1))
        .then([released(1, 9, now)]);
    assert_eq!(
        figures(&given_back, now),
        [
            ("berlin".into(), 0, 3),
            ("munich".into(), 0, 5),
            ("hamburg".into(), 2, 5)
        ]
    );

    // Lapsed holds are left out at once, before their expiry is written, per location.
    let later = secs(100);
    assert_eq!(
        figures(&held, later),
        [
            ("berlin".into(), 0, 3),
            ("munich".into(), 0, 5),
            ("hamburg".into(), 0, 7)
        ]
    );
    let expired_state =
        given(history)
            .at(later)
            .when(expire(2))
            .then([expired(2, 2, secs(61), later)]);
    assert_eq!(figures(&expired_state, later)[2], ("hamburg".into(), 0, 7));
}

#[test]
fn a_sku_at_several_locations_is_counted_per_location_and_only_that_location_turns_short() {
    let now = secs(1);
    let history = [
        three(),
        reserved_at(1, 2, &[("berlin", 2)], now),
        reserved_at(2, 1, &[("berlin", 1)], now),
        reserved_at(3, 4, &[("munich", 4)], now),
    ];
    given(history.clone())
        .at(now)
        .when(adjust(StockChange::Count(qty(1)), "count"))
        .then_rejected(Rejection::LocationRequired);
    given(history.clone())
        .at(now)
        .when(adjust_at(Some("paris"), StockChange::Count(qty(1))))
        .then_rejected(Rejection::UnknownLocation {
            location: loc("paris"),
        });
    // Berlin counted at 2 with 3 promised: the newest hold there is at risk, none at Munich.
    let short = given(history.clone())
        .at(now)
        .when(adjust_at(Some("berlin"), StockChange::Count(qty(2))))
        .then([Event::StockAdjusted(StockAdjusted {
            location: Some(loc("berlin")),
            change: StockChange::Count(qty(2)),
            previous: qty(3),
            current: qty(2),
            reason: "count".into(),
            reference: None,
            at_risk: vec![rid(2)],
            at: now,
        })]);
    let stock = short.stock().unwrap();
    assert_eq!(stock.limit(), Some(qty(15)));
    assert_eq!(stock.shortfall(now), qty(1));
    assert_eq!(stock.at_risk(now), vec![rid(2)]);
    let mut after = history.to_vec();
    after.extend(
        decide(
            &given(history).state().clone(),
            &adjust_at(Some("berlin"), StockChange::Count(qty(2))),
            now,
        )
        .unwrap(),
    );
    // The short location refuses a line that must come from it; others still sell.
    given(after.clone())
        .at(now)
        .when(reserve_placed(4, 1, Placement::at(loc("berlin"))))
        .then_rejected(Rejection::Short { shortfall: qty(1) });
    given(after.clone())
        .at(now)
        .when(reserve_placed(4, 1, Placement::default()))
        .then([reserved_at(4, 1, &[("munich", 1)], now)]);
    given(after.clone())
        .at(now)
        .when(commit(2))
        .then_rejected(Rejection::AtRisk {
            reservation_id: rid(2),
        });
    given(after)
        .at(now)
        .when(commit(1))
        .then([committed(1, 2, now)]);
}

#[test]
fn a_transfer_leaves_one_location_and_arrives_at_the_other() {
    let now = secs(1);
    let history = [three(), reserved_at(1, 2, &[("munich", 2)], now)];
    let cases = [
        (
            ship("T1", "munich", "berlin", 4),
            Rejection::InsufficientStock {
                requested: qty(4),
                available: qty(3),
            },
        ),
        (
            ship("T1", "munich", "munich", 1),
            Rejection::InvalidTransfer {
                reason: "a transfer needs two different locations".into(),
            },
        ),
        (
            ship("T1", "paris", "berlin", 1),
            Rejection::UnknownLocation {
                location: loc("paris"),
            },
        ),
        (
            ship("T1", "munich", "berlin", 0),
            Rejection::InvalidQuantity,
        ),
        (
            Command::ReceiveTransfer(ReceiveTransfer {
                transfer_id: TransferId::new("T9").unwrap(),
            }),
            Rejection::UnknownTransfer {
                transfer_id: TransferId::new("T9").unwrap(),
            },
        ),
    ];
    for (command, expected) in cases {
        given(history.clone())
            .at(now)
            .when(command)
            .then_rejected(expected);
    }

    let in_transit = given(history.clone())
        .at(now)
        .when(ship("T1", "munich", "berlin", 3))
        .then([Event::TransferShipped(TransferShipped {
            at: now,
            ..match shipped("T1", "munich", "berlin", 3) {
                Event::TransferShipped(e) => e,
                _ => unreachable!(),
            }
        })]);
    let view = in_transit.stock().unwrap().view(now);
    assert_eq!(view.limit, Some(qty(13)));
    assert_eq!(view.in_transit, qty(3));
    assert_eq!(
        view.locations
            .iter()
            .map(|l| (l.on_hand.get(), l.incoming.get()))
            .collect::<Vec<_>>(),
        [(3, 3), (2, 0), (8, 0)]
    );
    let mut history = history.to_vec();
    history.push(shipped("T1", "munich", "berlin", 3));
    given(history.clone())
        .at(now)
        .when(ship("T1", "hamburg", "berlin", 1))
        .then_rejected(Rejection::DuplicateTransfer {
            transfer_id: TransferId::new("T1").unwrap(),
        });
    let arrived = given(history)
        .at(now)
        .when(Command::ReceiveTransfer(ReceiveTransfer {
            transfer_id: TransferId::new("T1").unwrap(),
        }))
        .then([Event::TransferReceived(TransferReceived {
            transfer_id: TransferId::new("T1").unwrap(),
            to: loc("berlin"),
            qty: qty(3),
            at: now,
        })]);
    let view = arrived.stock().unwrap().view(now);
    assert_eq!(view.limit, Some(qty(16)));
    assert_eq!(view.in_transit, qty(0));
    assert_eq!(figures(&arrived, now)[0], ("berlin".into(), 0, 6));
}

#[test]
fn units_in_transit_always_fit_where_they_arrive() {
    let max = crate::quantity::Quantity::MAX.get();
    let history = [
        registered(PoolConfig::at_locations(vec![
            at("a", max - 1, 0, 0),
            at("b", 1, 0, 1),
        ])),
        shipped("T1", "b", "a", 1),
    ];
    // A count that would leave no room for the unit on its way is refused, so the
    // receipt can never be decided into an event its fold refuses.
    let refused = decide(
        given(history.clone()).state(),
        &adjust_at(Some("a"), StockChange::Delta(1)),
        Timestamp::EPOCH,
    );
    assert!(
        matches!(refused, Err(Rejection::OutOfRange { .. })),
        "{refused:?}"
    );
    given(history)
        .when(Command::ReceiveTransfer(ReceiveTransfer {
            transfer_id: TransferId::new("T1").unwrap(),
        }))
        .then([Event::TransferReceived(TransferReceived {
            transfer_id: TransferId::new("T1").unwrap(),
            to: loc("a"),
            qty: qty(1),
            at: Timestamp::EPOCH,
        })]);
}

#[test]
fn a_sku_registered_without_locations_is_at_the_default_one_and_keeps_its_events() {
    let now = secs(1);
    let history = [registered_physical(5, 0)];
    // Naming its one location is allowed and records nothing new.
    given(history.clone())
        .at(now)
        .when(reserve_placed(1, 2, Placement::at(loc("default"))))
        .then([reserved(1, 2, now, secs(61))]);
    given(history.clone())
        .at(now)
        .when(reserve_placed(1, 2, Placement::at(loc("berlin"))))
        .then_rejected(Rejection::UnknownLocation {
            location: loc("berlin"),
        });
    given(history.clone())
        .at(now)
        .when(adjust_at(Some("default"), StockChange::Delta(1)))
        .then([Event::StockAdjusted(StockAdjusted {
            location: Some(loc("default")),
            ..match adjusted(StockChange::Delta(1), 5, 6, "count", &[], now) {
                Event::StockAdjusted(e) => e,
                _ => unreachable!(),
            }
        })]);
    // Its reads show no per-location rows: the totals say it all.
    assert!(
        given(history)
            .state()
            .stock()
            .unwrap()
            .view(now)
            .locations
            .is_empty()
    );
    // A digital SKU has no locations at all.
    given([registered(PoolConfig::Digital {
        license_limit: None,
    })])
    .when(reserve_placed(1, 1, Placement::at(loc("default"))))
    .then_rejected(Rejection::UnknownLocation {
        location: loc("default"),
    });
    given([registered(PoolConfig::Digital {
        license_limit: None,
    })])
    .when(ship("T1", "a", "b", 1))
    .then_rejected(Rejection::UnsupportedForPool {
        pool: crate::pool::PoolKind::Digital,
        what: "transfer stock (it has no locations)".into(),
    });
}

#[test]
fn events_that_contradict_the_locations_are_refused_by_the_fold() {
    let now = secs(1);
    let bad = [
        // No parts at a SKU with several locations.
        reserved(1, 2, now, secs(61)),
        reserved_at(1, 2, &[("paris", 2)], now),
        reserved_at(1, 2, &[("berlin", 1)], now),
        reserved_at(1, 2, &[("berlin", 1), ("berlin", 1)], now),
        adjusted(StockChange::Delta(1), 3, 4, "count", &[], now),
    ];
    for event in bad {
        let mut state = given([three()]).state().clone();
        let before = state.clone();
        assert!(state.apply(&event).is_err(), "{event:?}");
        assert_eq!(state, before, "a refused event changed nothing");
    }
}

#[test]
fn a_snapshot_with_split_holds_round_trips_and_a_damaged_one_is_refused() {
    let now = secs(1);
    let state = given([
        three(),
        reserved_at(1, 9, &[("berlin", 3), ("munich", 5), ("hamburg", 1)], now),
        reserved_at(2, 2, &[("hamburg", 2)], now),
        shipped("T1", "hamburg", "berlin", 1),
    ])
    .state()
    .clone();
    let bytes = rmp_serde::to_vec_named(&state).unwrap();
    let back: SkuState = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, state);
    assert!(back.validate().is_ok());

    // The same state with one part's figure lost no longer adds up.
    let other = given([
        three(),
        reserved_at(1, 9, &[("berlin", 3), ("munich", 5), ("hamburg", 1)], now),
    ])
    .state()
    .clone();
    // Rename the `splits` key (same length, so the encoding stays well formed): it then
    // decodes as absent, and the split hold has no parts.
    let mut bytes = rmp_serde::to_vec_named(&other).unwrap();
    let key = b"\xa6splits";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    bytes[at + 4] = b'1';
    let damaged: SkuState = rmp_serde::from_slice(&bytes).unwrap();
    assert!(damaged.validate().is_err());
}

// ---- property ------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        id: u8,
        qty: u64,
        ttl_ms: u64,
        hard: Option<u8>,
        split: bool,
        strategy: u8,
    },
    Commit(u8),
    Release(u8),
    Expire(u8),
    Extend(u8, u64),
    Reduce(u8, u64, bool),
    Amend {
        id: u8,
        qty: u64,
        hard: Option<u8>,
        split: bool,
    },
    Count(u8, u64),
    Ship(u8, u8, u8, u64),
    Receive(u8),
    Advance(u64),
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, 0u64..6, 1u64..5000, proptest::option::of(0u8..4), any::<bool>(), 0u8..3)
            .prop_map(|(id, qty, ttl_ms, hard, split, strategy)| Op::Reserve { id, qty, ttl_ms, hard, split, strategy }),
        2 => (0u8..12).prop_map(Op::Commit),
        2 => (0u8..12).prop_map(Op::Release),
        1 => (0u8..12).prop_map(Op::Expire),
        1 => (0u8..12, 1u64..9000).prop_map(|(id, ms)| Op::Extend(id, ms)),
        2 => (0u8..12, 0u64..5, any::<bool>()).prop_map(|(id, n, sell)| Op::Reduce(id, n, sell)),
        2 => (0u8..12, 0u64..8, proptest::option::of(0u8..4), any::<bool>())
            .prop_map(|(id, qty, hard, split)| Op::Amend { id, qty, hard, split }),
        1 => (0u8..3, 0u64..8).prop_map(|(l, n)| Op::Count(l, n)),
        1 => (0u8..4, 0u8..3, 0u8..3, 0u64..4).prop_map(|(t, a, b, n)| Op::Ship(t, a, b, n)),
        1 => (0u8..4).prop_map(Op::Receive),
        2 => (1u64..3000).prop_map(Op::Advance),
    ]
}

fn command(op: &Op) -> Option<Command> {
    let name = |i: u8| loc(NAMES.get(usize::from(i)).copied().unwrap_or("nowhere"));
    let transfer = |t: u8| TransferId::new(format!("T{t}")).unwrap();
    Some(match *op {
        Op::Reserve {
            id,
            qty: n,
            ttl_ms,
            hard,
            split,
            strategy,
        } => Command::Reserve(Reserve {
            customer: None,
            reservation_id: rid(u128::from(id) + 1),
            order_id: None,
            lines: Vec::new(),
            qty: qty(n),
            ttl: Duration::from_millis(ttl_ms),
            channel: web(),
            placement: Placement {
                location: hard.map(name),
                allow_split: split,
                strategy: Allocation::ALL[usize::from(strategy) % 3],
            },
        }),
        Op::Commit(id) => commit(u128::from(id) + 1),
        Op::Release(id) => release(u128::from(id) + 1),
        Op::Expire(id) => expire(u128::from(id) + 1),
        Op::Extend(id, ms) => Command::Extend(Extend {
            reservation_id: rid(u128::from(id) + 1),
            ttl: Duration::from_millis(ms),
        }),
        Op::Reduce(id, n, sell) => Command::Reduce(Reduce {
            reservation_id: rid(u128::from(id) + 1),
            qty: qty(n),
            sell,
        }),
        Op::Amend {
            id,
            qty: n,
            hard,
            split,
        } => Command::Amend(Amend {
            reservation_id: rid(u128::from(id) + 1),
            qty: qty(n),
            placement: Placement {
                location: hard.map(name),
                allow_split: split,
                strategy: Allocation::MostStock,
            },
        }),
        Op::Count(l, n) => adjust_at(Some(NAMES[usize::from(l)]), StockChange::Count(qty(n))),
        Op::Ship(t, a, b, n) => Command::ShipTransfer(ShipTransfer {
            transfer_id: transfer(t),
            from: name(a),
            to: name(b),
            qty: qty(n),
            reference: None,
        }),
        Op::Receive(t) => Command::ReceiveTransfer(ReceiveTransfer {
            transfer_id: transfer(t),
        }),
        Op::Advance(_) => return None,
    })
}

/// Decides every op against the state; every decided event must apply (to the state, to
/// a staged copy landed behind it, and to a ledger told the holds' parts); no location
/// may ever hold more than it offered when a reservation was accepted; and the ledger's
/// view must be the state's.
fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut state = SkuState::default();
    let mut pipelined = SkuState::default();
    let mut ledger = Ledger::default();
    let registration = registered(PoolConfig::at_locations(vec![
        at("a", 4, 1, 2),
        at("b", 3, 0, 1),
        at("c", 5, 0, 3),
    ]));
    for side in [&mut state, &mut pipelined] {
        side.apply(&registration).unwrap();
    }
    ledger.apply(&registration, None).unwrap();
    let mut holds: HashMap<crate::ids::ReservationId, HoldFacts> = HashMap::new();
    let mut now = Timestamp::EPOCH;
    for op in ops {
        if let Op::Advance(ms) = op {
            now = now.checked_add(Duration::from_millis(ms)).unwrap();
            continue;
        }
        let Some(command) = command(&op) else {
            continue;
        };
        let Ok(events) = decide(&state, &command, now) else {
            continue;
        };
        for event in &events {
            let ended = match event {
                Event::StockReserved(e) => {
                    holds.insert(
                        e.reservation_id,
                        HoldFacts {
                            qty: e.qty,
                            reserved_at: e.at,
                            expires_at: e.expires_at,
                            parts: e.parts.clone(),
                        },
                    );
                    None
                }
                other => other.reservation_id().and_then(|id| holds.remove(&id)),
            };
            // A changed hold is still live: the reader keeps its changed record.
            if let Some(changed) = ended.as_ref().and_then(|f| f.after(event))
                && let Some(id) = event.reservation_id()
            {
                holds.insert(id, changed);
            }
            ledger
                .apply(event, ended)
                .map_err(|e| TestCaseError::fail(format!("ledger: {e} at {event:?}")))?;
            state
                .apply(event)
                .map_err(|e| TestCaseError::fail(format!("apply: {e} at {event:?}")))?;
            pipelined
                .stage(event)
                .map_err(|e| TestCaseError::fail(format!("stage: {e} at {event:?}")))?;
            let _ = pipelined
                .land(event)
                .map_err(|e| TestCaseError::fail(format!("land: {e} at {event:?}")))?;
            let taken = match event {
                Event::StockReserved(e) => Some(&e.parts),
                Event::ReservationIncreased(e) => Some(&e.parts),
                _ => None,
            };
            if let Some(parts) = taken {
                // Never oversold: where a hold takes units, what is held there (lapsed
                // holds left out) stays within what the location offers.
                let locations = state.stock().unwrap().locations(now);
                for l in locations
                    .iter()
                    .filter(|l| parts.iter().any(|p| p.location == l.location))
                {
                    let offered = l.on_hand.saturating_sub(l.safety_stock);
                    prop_assert!(
                        l.reserved <= offered,
                        "{} holds {} of {}",
                        l.location,
                        l.reserved,
                        offered
                    );
                }
                prop_assert!(!parts.is_empty(), "a SKU at three locations records parts");
            }
        }
        prop_assert!(state.validate().is_ok(), "{:?}", state.validate());
        prop_assert_eq!(&state, &pipelined);
        // The reader's record of every live hold is the writer's, parts included.
        let stock = state.stock().unwrap();
        prop_assert_eq!(holds.len(), stock.live_count());
        for (id, facts) in &holds {
            let r = stock.reservation(id).unwrap();
            prop_assert_eq!((facts.qty, facts.expires_at), (r.qty, r.expires_at));
            let sum: u64 = facts.parts.iter().map(|p| p.qty.get()).sum();
            prop_assert_eq!(sum, r.qty.get(), "parts of {:?}", facts);
        }
        prop_assert_eq!(
            ledger.view(now),
            state.stock().map(|s| s.view(now)),
            "ledger and state disagree"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_histories_at_three_locations_never_oversell_a_location(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        run(ops)?;
    }
}
