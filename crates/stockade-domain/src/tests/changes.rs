//! Changing a live hold: extending it, selling or giving back part of it, and amending
//! its quantity. One given / when / then per rule; the random histories in `properties`
//! and `locations` check the same commands against a model and the fold.

use std::time::Duration;

use crate::allocation::{Part, Placement};
use crate::command::{Amend, Command, Extend, Reduce};
use crate::event::{
    Event, ReservationExtended, ReservationIncreased, ReservationReduced, StockReserved,
};
use crate::ids::LocationId;
use crate::pool::{LocationConfig, PoolConfig};
use crate::rejection::{Rejection, Resolution};
use crate::state::Availability;
use crate::testing::*;
use crate::time::Timestamp;

fn extend(id: u128, ttl_secs: u64) -> Command {
    Command::Extend(Extend {
        reservation_id: rid(id),
        ttl: Duration::from_secs(ttl_secs),
    })
}

fn reduce(id: u128, n: u64, sell: bool) -> Command {
    Command::Reduce(Reduce {
        reservation_id: rid(id),
        qty: qty(n),
        sell,
    })
}

fn amend(id: u128, n: u64) -> Command {
    Command::Amend(Amend {
        reservation_id: rid(id),
        qty: qty(n),
        placement: Placement::default(),
    })
}

/// 5 on hand, reservation 1 holds 2 from 0 s to 60 s.
fn held() -> Vec<Event> {
    vec![registered_physical(5, 0), reserved(1, 2, secs(0), secs(60))]
}

fn available(state: &crate::state::SkuState, at: Timestamp) -> Availability {
    state.stock().unwrap().available(at)
}

#[test]
fn an_extension_moves_the_expiry_and_keeps_the_units_held() {
    let state = given(held())
        .at(secs(50))
        .when(extend(1, 600))
        .then([Event::ReservationExtended(ReservationExtended {
            reservation_id: rid(1),
            previous_expires_at: secs(60),
            expires_at: secs(650),
            at: secs(50),
        })]);
    // Past its first expiry, still held.
    assert_eq!(available(&state, secs(100)), Availability::Limited(qty(3)));
    assert_eq!(available(&state, secs(650)), Availability::Limited(qty(5)));
    assert_eq!(
        state.stock().unwrap().next_expiry(),
        Some((secs(650), rid(1)))
    );
}

#[test]
fn an_extension_is_refused_once_lapsed_beyond_seven_days_or_earlier_than_now() {
    given(held())
        .at(secs(60))
        .when(extend(1, 600))
        .then_rejected(Rejection::Lapsed {
            reservation_id: rid(1),
            expires_at: secs(60),
        });
    let week = 7 * 24 * 3600;
    given(held())
        .at(secs(10))
        .when(extend(1, week))
        .then_rejected(Rejection::BeyondMaxHold {
            reservation_id: rid(1),
            latest: secs(week),
        });
    given(held())
        .at(secs(10))
        .when(extend(1, 30))
        .then_rejected(Rejection::NotAnExtension {
            reservation_id: rid(1),
            expires_at: secs(60),
        });
    given(held())
        .at(secs(10))
        .when(extend(1, 0))
        .then_rejected(Rejection::InvalidTtl);
    given(held())
        .at(secs(10))
        .when(extend(9, 600))
        .then_rejected(Rejection::UnknownReservation {
            reservation_id: rid(9),
        });
}

#[test]
fn part_of_a_hold_sold_leaves_the_rest_held_until_its_expiry() {
    let state =
        given(held())
            .at(secs(10))
            .when(reduce(1, 1, true))
            .then([Event::ReservationReduced(ReservationReduced {
                reservation_id: rid(1),
                qty: qty(1),
                remaining: qty(1),
                outcome: Resolution::Committed,
                parts: Vec::new(),
                at: secs(10),
            })]);
    let stock = state.stock().unwrap();
    assert_eq!(stock.limit(), Some(qty(4)), "one unit left the shelf");
    assert_eq!(stock.reservation(&rid(1)).unwrap().qty, qty(1));
    assert_eq!(available(&state, secs(11)), Availability::Limited(qty(3)));
    // The rest lapses as the hold would have.
    assert_eq!(available(&state, secs(60)), Availability::Limited(qty(4)));
}

#[test]
fn part_of_a_hold_given_back_is_available_at_once() {
    let state =
        given(held())
            .at(secs(10))
            .when(reduce(1, 1, false))
            .then([Event::ReservationReduced(ReservationReduced {
                reservation_id: rid(1),
                qty: qty(1),
                remaining: qty(1),
                outcome: Resolution::Released,
                parts: Vec::new(),
                at: secs(10),
            })]);
    assert_eq!(state.stock().unwrap().limit(), Some(qty(5)));
    assert_eq!(available(&state, secs(11)), Availability::Limited(qty(4)));
}

#[test]
fn the_whole_hold_reduced_is_its_commit_or_release() {
    given(held())
        .at(secs(10))
        .when(reduce(1, 2, true))
        .then([committed(1, 2, secs(10))]);
    given(held())
        .at(secs(10))
        .when(reduce(1, 2, false))
        .then([released(1, 2, secs(10))]);
}

#[test]
fn reducing_by_more_than_is_held_or_nothing_is_refused() {
    given(held())
        .at(secs(10))
        .when(reduce(1, 3, true))
        .then_rejected(Rejection::ExceedsHold {
            reservation_id: rid(1),
            requested: qty(3),
            held: qty(2),
        });
    given(held())
        .at(secs(10))
        .when(reduce(1, 0, false))
        .then_rejected(Rejection::InvalidQuantity);
    given(held())
        .at(secs(60))
        .when(reduce(1, 1, true))
        .then_rejected(Rejection::Lapsed {
            reservation_id: rid(1),
            expires_at: secs(60),
        });
}

#[test]
fn part_of_a_hold_at_risk_may_be_given_back_but_not_sold() {
    let short = vec![
        registered_physical(5, 0),
        reserved(1, 2, secs(0), secs(60)),
        reserved(2, 3, secs(1), secs(60)),
        adjusted(
            crate::command::StockChange::Count(qty(3)),
            5,
            3,
            "count",
            &[2],
            secs(2),
        ),
    ];
    given(short.clone())
        .at(secs(10))
        .when(reduce(2, 1, true))
        .then_rejected(Rejection::AtRisk {
            reservation_id: rid(2),
        });
    given(short)
        .at(secs(10))
        .when(reduce(2, 1, false))
        .then([Event::ReservationReduced(ReservationReduced {
            reservation_id: rid(2),
            qty: qty(1),
            remaining: qty(2),
            outcome: Resolution::Released,
            parts: Vec::new(),
            at: secs(10),
        })]);
}

#[test]
fn an_amendment_grows_a_hold_only_within_what_is_available() {
    let state = given(held())
        .at(secs(10))
        .when(amend(1, 5))
        .then([Event::ReservationIncreased(ReservationIncreased {
            reservation_id: rid(1),
            qty: qty(3),
            total: qty(5),
            parts: Vec::new(),
            at: secs(10),
        })]);
    assert_eq!(available(&state, secs(11)), Availability::Limited(qty(0)));
    // Its expiry and place in line are unchanged.
    let r = state.stock().unwrap().reservation(&rid(1)).unwrap();
    assert_eq!((r.expires_at, r.seq), (secs(60), 0));
    given(held())
        .at(secs(10))
        .when(amend(1, 6))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(4),
            available: qty(3),
        });
}

#[test]
fn an_amendment_shrinks_a_hold_or_ends_it_at_zero() {
    given(held())
        .at(secs(10))
        .when(amend(1, 1))
        .then([Event::ReservationReduced(ReservationReduced {
            reservation_id: rid(1),
            qty: qty(1),
            remaining: qty(1),
            outcome: Resolution::Released,
            parts: Vec::new(),
            at: secs(10),
        })]);
    given(held())
        .at(secs(10))
        .when(amend(1, 0))
        .then([released(1, 2, secs(10))]);
    given(held())
        .at(secs(10))
        .when(amend(1, 2))
        .then_rejected(Rejection::Unchanged {
            reservation_id: rid(1),
            qty: qty(2),
        });
}

#[test]
fn a_print_on_demand_hold_grows_only_within_its_own_period() {
    let pool = PoolConfig::PrintOnDemand {
        capacity: qty(10),
        period_millis: 60_000,
    };
    let events = vec![registered(pool), reserved(1, 2, secs(0), secs(300))];
    given(events.clone())
        .at(secs(30))
        .when(amend(1, 3))
        .then([Event::ReservationIncreased(ReservationIncreased {
            reservation_id: rid(1),
            qty: qty(1),
            total: qty(3),
            parts: Vec::new(),
            at: secs(30),
        })]);
    given(events)
        .at(secs(90))
        .when(amend(1, 3))
        .then_rejected(Rejection::UnsupportedForPool {
            pool: crate::pool::PoolKind::PrintOnDemand,
            what: "grow a hold made in an earlier period (hold the extra units anew)".into(),
        });
}

fn loc(id: &str) -> LocationId {
    LocationId::new(id).unwrap()
}

fn part(l: &str, n: u64) -> Part {
    Part {
        location: loc(l),
        qty: qty(n),
    }
}

#[test]
fn at_several_locations_a_reduction_takes_the_last_parts_first_and_gives_them_back_there() {
    let site = |l: &str, n| LocationConfig {
        location: loc(l),
        on_hand: qty(n),
        safety_stock: qty(0),
        priority: 0,
    };
    let pool = PoolConfig::at_locations(vec![site("berlin", 3), site("paris", 4)]);
    let Event::StockReserved(hold) = reserved(1, 5, secs(0), secs(60)) else {
        unreachable!()
    };
    let split = Event::StockReserved(StockReserved {
        parts: vec![part("berlin", 3), part("paris", 2)],
        ..hold
    });
    let state = given([registered(pool), split])
        .at(secs(10))
        .when(reduce(1, 3, true))
        .then([Event::ReservationReduced(ReservationReduced {
            reservation_id: rid(1),
            qty: qty(3),
            remaining: qty(2),
            outcome: Resolution::Committed,
            parts: vec![part("paris", 2), part("berlin", 1)],
            at: secs(10),
        })]);
    let figures: Vec<_> = state
        .stock()
        .unwrap()
        .locations(secs(11))
        .into_iter()
        .map(|l| (l.location.to_string(), l.on_hand.get(), l.reserved.get()))
        .collect();
    assert_eq!(
        figures,
        vec![("berlin".into(), 2, 2), ("paris".into(), 2, 0)]
    );
    assert_eq!(state.validate(), Ok(()));
    // Grown again, at the location asked for.
    let amended = Command::Amend(Amend {
        reservation_id: rid(1),
        qty: qty(4),
        placement: Placement::at(loc("paris")),
    });
    let mut state = state;
    let events = crate::decide::decide(&state, &amended, secs(12)).unwrap();
    assert_eq!(
        events,
        vec![Event::ReservationIncreased(ReservationIncreased {
            reservation_id: rid(1),
            qty: qty(2),
            total: qty(4),
            parts: vec![part("paris", 2)],
            at: secs(12),
        })]
    );
    state.apply(&events[0]).unwrap();
    assert_eq!(state.validate(), Ok(()));
}
