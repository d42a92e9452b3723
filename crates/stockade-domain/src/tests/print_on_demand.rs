use crate::command::StockChange;
use crate::pool::{DAY_MILLIS, PoolConfig};
use crate::rejection::Rejection;
use crate::state::Availability;
use crate::testing::*;
use crate::time::Timestamp;

const DAY: u64 = DAY_MILLIS / 1000;

fn press(capacity: u64) -> crate::event::Event {
    registered(PoolConfig::PrintOnDemand {
        capacity: qty(capacity),
        period_millis: DAY_MILLIS,
    })
}

#[test]
fn reservations_count_against_the_period_they_were_made_in() {
    given([press(3), reserved(1, 3, secs(10), secs(10 + 900))])
        .at(secs(20))
        .when(reserve(2, 1, 900))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(1),
            available: qty(0),
        });
}

#[test]
fn a_new_period_brings_fresh_capacity() {
    given([press(3), reserved(1, 3, secs(10), secs(10 + 2 * DAY))])
        .at(secs(DAY + 5))
        .when(reserve(2, 3, 900))
        .then([reserved(2, 3, secs(DAY + 5), secs(DAY + 905))]);
}

#[test]
fn sales_keep_counting_for_the_rest_of_their_period() {
    let state = given([
        press(3),
        reserved(1, 2, secs(10), secs(900)),
        committed(1, 2, secs(20)),
    ])
    .state()
    .clone();
    let stock = state.stock().unwrap();
    assert_eq!(stock.available(secs(30)), Availability::Limited(qty(1)));
    assert_eq!(
        stock.available(Timestamp::from_millis(DAY_MILLIS)),
        Availability::Limited(qty(3))
    );
}

#[test]
fn releasing_frees_capacity_in_the_reservations_period() {
    let state = given([press(3), reserved(1, 3, secs(10), secs(900))])
        .at(secs(20))
        .when(release(1))
        .then([released(1, 3, secs(20))]);
    assert_eq!(
        state.stock().unwrap().available(secs(21)),
        Availability::Limited(qty(3))
    );
}

#[test]
fn lowering_capacity_below_todays_usage_puts_the_latest_at_risk() {
    let change = StockChange::Delta(-2);
    given([
        press(4),
        reserved(1, 2, secs(1), secs(900)),
        reserved(2, 2, secs(2), secs(900)),
    ])
    .at(secs(3))
    .when(adjust(change, "press maintenance"))
    .then([adjusted(change, 4, 2, "press maintenance", &[2], secs(3))]);
}

#[test]
fn a_clock_stepped_back_cannot_reopen_a_past_period() {
    // The latest event is in period 1; a caller whose clock reads period 0 is decided at
    // the latest event's instant, against period 1's usage.
    given([press(3), reserved(1, 3, secs(DAY + 1), secs(DAY + 900))])
        .at(secs(DAY - 1))
        .when(reserve(2, 1, 900))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(1),
            available: qty(0),
        });
}
