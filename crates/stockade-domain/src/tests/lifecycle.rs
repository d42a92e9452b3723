//! Commit, release and expiry of a reservation, and lazy expiry.

use crate::rejection::Rejection;
use crate::state::Availability;
use crate::testing::*;

fn one_reservation() -> Vec<crate::event::Event> {
    vec![registered_physical(5, 0), reserved(1, 2, secs(0), secs(60))]
}

#[test]
fn releasing_gives_the_units_back() {
    let state = given(one_reservation())
        .at(secs(10))
        .when(release(1))
        .then([released(1, 2, secs(10))]);
    assert_eq!(
        state.stock().unwrap().available(secs(11)),
        Availability::Limited(qty(5))
    );
}

#[test]
fn an_unknown_reservation_cannot_be_committed_released_or_expired() {
    for command in [commit(9), release(9), expire(9)] {
        given(one_reservation())
            .at(secs(1))
            .when(command)
            .then_rejected(Rejection::UnknownReservation {
                reservation_id: rid(9),
            });
    }
}

#[test]
fn a_reservation_resolves_at_most_once() {
    let cases = [
        committed(1, 2, secs(5)),
        released(1, 2, secs(5)),
        expired(1, 2, secs(60), secs(61)),
    ];
    for resolution_event in cases {
        for command in [commit(1), release(1), expire(1)] {
            let mut history = one_reservation();
            history.push(resolution_event.clone());
            // No longer live: the state forgets it (the engine finds the resolution in
            // the log to say "already committed").
            given(history).at(secs(62)).when(command).then_rejected(
                Rejection::UnknownReservation {
                    reservation_id: rid(1),
                },
            );
        }
    }
}

#[test]
fn a_lapsed_reservation_stops_counting_before_its_expiry_event() {
    let state = given(one_reservation()).state().clone();
    let stock = state.stock().unwrap();
    assert_eq!(stock.available(secs(59)), Availability::Limited(qty(3)));
    // At expires_at exactly the hold is gone, although no event says so yet.
    assert_eq!(stock.available(secs(60)), Availability::Limited(qty(5)));
    assert_eq!(stock.lapsed(secs(60)).count(), 1);
}

#[test]
fn a_lapsed_reservation_frees_stock_for_the_next_buyer() {
    given([registered_physical(2, 0), reserved(1, 2, secs(0), secs(60))])
        .at(secs(60))
        .when(reserve(2, 2, 60))
        .then([reserved(2, 2, secs(60), secs(120))]);
}

#[test]
fn a_lapsed_reservation_cannot_be_committed_or_released() {
    for command in [commit(1), release(1)] {
        given(one_reservation())
            .at(secs(60))
            .when(command)
            .then_rejected(Rejection::Lapsed {
                reservation_id: rid(1),
                expires_at: secs(60),
            });
    }
}

#[test]
fn expiry_records_when_the_hold_lapsed_and_when_it_was_written() {
    given(one_reservation())
        .at(secs(75))
        .when(expire(1))
        .then([expired(1, 2, secs(60), secs(75))]);
}

#[test]
fn expiry_before_the_deadline_is_rejected() {
    given(one_reservation())
        .at(secs(59))
        .when(expire(1))
        .then_rejected(Rejection::NotYetExpired {
            reservation_id: rid(1),
            expires_at: secs(60),
        });
}

#[test]
fn the_next_expiry_is_the_earliest_live_one() {
    let state = given([
        registered_physical(5, 0),
        reserved(1, 1, secs(0), secs(90)),
        reserved(2, 1, secs(0), secs(30)),
        reserved(3, 1, secs(0), secs(60)),
        released(2, 1, secs(1)),
    ])
    .state()
    .clone();
    assert_eq!(
        state.stock().unwrap().next_expiry(),
        Some((secs(60), rid(3)))
    );
}

#[test]
fn the_state_holds_live_reservations_only() {
    let state = given([
        registered_physical(5, 0),
        reserved(1, 1, secs(0), secs(60)),
        reserved(2, 1, secs(0), secs(60)),
        committed(1, 1, secs(5)),
        released(2, 1, secs(6)),
        reserved(3, 1, secs(7), secs(60)),
    ])
    .state()
    .clone();
    let stock = state.stock().unwrap();
    assert_eq!(stock.live_count(), 1);
    assert!(stock.reservation(&rid(1)).is_none());
    // Resolving leaves nothing behind: the state of a SKU with one live hold is the same
    // whatever came before it.
    let fresh = given([registered_physical(4, 0), reserved(3, 1, secs(7), secs(60))])
        .state()
        .clone();
    assert_eq!(stock.live_count(), fresh.stock().unwrap().live_count());
    assert_eq!(
        stock.view(secs(8)).reserved,
        fresh.stock().unwrap().view(secs(8)).reserved
    );
}

#[test]
fn a_ttl_under_a_millisecond_is_rejected() {
    use std::time::Duration;
    let mut command = reserve(1, 1, 60);
    if let crate::command::Command::Reserve(r) = &mut command {
        r.ttl = Duration::from_micros(500);
    }
    given([registered_physical(5, 0)])
        .at(secs(1))
        .when(command)
        .then_rejected(Rejection::InvalidTtl);
}

#[test]
fn decisions_never_happen_before_the_latest_event() {
    given([
        registered_physical(5, 0),
        reserved(1, 2, secs(100), secs(160)),
    ])
    .at(secs(50))
    .when(release(1))
    .then([released(1, 2, secs(100))]);
}

#[test]
fn a_hold_keeps_its_order_while_live_and_drops_it_when_resolved() {
    use crate::event::{Event, StockReserved};
    use crate::ids::OrderId;
    let order = OrderId::new("order-1").unwrap();
    let with_order = Event::StockReserved(StockReserved {
        order_id: Some(order.clone()),
        lines: Vec::new(),
        ..match reserved(1, 1, secs(0), secs(60)) {
            Event::StockReserved(e) => e,
            _ => unreachable!(),
        }
    });
    let state = given([registered_physical(5, 0), with_order.clone()])
        .state()
        .clone();
    let stock = state.stock().unwrap();
    assert_eq!(stock.order_of(&rid(1)), Some(&order));
    assert_eq!(stock.reservation(&rid(1)).map(|r| r.qty), Some(qty(1)));
    let state = given([
        registered_physical(5, 0),
        with_order,
        released(1, 1, secs(1)),
    ])
    .state()
    .clone();
    assert_eq!(state.stock().unwrap().order_of(&rid(1)), None);
    assert!(state.validate().is_ok());
}
