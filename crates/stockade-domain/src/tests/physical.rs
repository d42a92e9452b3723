use crate::command::{Adjust, Command, StockChange};
use crate::quantity::ArithmeticError;
use crate::rejection::Rejection;
use crate::state::Availability;
use crate::testing::*;

#[test]
fn a_reservation_within_availability_is_accepted() {
    let state = given([registered_physical(10, 0)])
        .at(secs(1))
        .when(reserve(1, 4, 900))
        .then([reserved(1, 4, secs(1), secs(901))]);
    let stock = state.stock().unwrap();
    assert_eq!(stock.available(secs(2)), Availability::Limited(qty(6)));
}

#[test]
fn safety_stock_is_never_offered() {
    given([registered_physical(10, 3)])
        .when(reserve(1, 8, 60))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(8),
            available: qty(7),
        });
}

#[test]
fn a_reservation_beyond_availability_is_rejected() {
    given([registered_physical(5, 0), reserved(1, 4, secs(0), secs(60))])
        .at(secs(1))
        .when(reserve(2, 2, 60))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(2),
            available: qty(1),
        });
}

#[test]
fn a_zero_quantity_is_rejected() {
    given([registered_physical(5, 0)])
        .when(reserve(1, 0, 60))
        .then_rejected(Rejection::InvalidQuantity);
}

#[test]
fn a_huge_quantity_is_rejected_not_wrapped() {
    given([registered_physical(5, 0), reserved(1, 3, secs(0), secs(60))])
        .when(reserve(2, i64::MAX as u64, 60))
        .then_rejected(Rejection::InsufficientStock {
            requested: qty(i64::MAX as u64),
            available: qty(2),
        });
    // Past the range: refused for what it is, whatever the stock.
    given([registered_physical(5, 0)])
        .when(reserve(2, u64::MAX, 60))
        .then_rejected(Rejection::OutOfRange {
            source: ArithmeticError::TooLarge { value: u64::MAX },
        });
}

#[test]
fn a_zero_or_unrepresentable_ttl_is_rejected() {
    given([registered_physical(5, 0)])
        .when(reserve(1, 1, 0))
        .then_rejected(Rejection::InvalidTtl);
    given([registered_physical(5, 0)])
        .at(secs(10))
        .when(reserve(1, 1, u64::MAX))
        .then_rejected(Rejection::InvalidTtl);
    // A week is the longest hold; a second more is refused.
    given([registered_physical(5, 0)])
        .when(reserve(1, 1, 7 * 24 * 3600))
        .then([reserved(1, 1, secs(0), secs(7 * 24 * 3600))]);
    given([registered_physical(5, 0)])
        .when(reserve(1, 1, 7 * 24 * 3600 + 1))
        .then_rejected(Rejection::InvalidTtl);
}

#[test]
fn a_reservation_id_cannot_be_reused_while_live() {
    given([registered_physical(5, 0), reserved(1, 1, secs(0), secs(60))])
        .when(reserve(1, 1, 60))
        .then_rejected(Rejection::DuplicateReservation {
            reservation_id: rid(1),
        });
}

#[test]
fn committing_takes_the_units_off_the_shelf() {
    let state = given([registered_physical(5, 0), reserved(1, 2, secs(0), secs(60))])
        .at(secs(5))
        .when(commit(1))
        .then([committed(1, 2, secs(5))]);
    let view = state.stock().unwrap().view(secs(6));
    assert_eq!(view.limit, Some(qty(3)));
    assert_eq!(view.reserved, qty(0));
    assert_eq!(view.available, Availability::Limited(qty(3)));
}

#[test]
fn a_positive_delta_receives_stock() {
    let change = StockChange::Delta(7);
    given([registered_physical(5, 0)])
        .at(secs(3))
        .when(adjust(change, "receiving PO-9"))
        .then([adjusted(change, 5, 12, "receiving PO-9", &[], secs(3))]);
}

#[test]
fn a_negative_delta_below_zero_is_rejected() {
    given([registered_physical(5, 0)])
        .when(adjust(StockChange::Delta(-6), "damage"))
        .then_rejected(Rejection::BelowZero {
            current: qty(5),
            delta: -6,
        });
}

#[test]
fn a_delta_past_the_quantity_range_is_rejected() {
    let max = i64::MAX as u64;
    given([registered_physical(max - 1, 0)])
        .when(adjust(StockChange::Delta(2), "receiving"))
        .then_rejected(Rejection::OutOfRange {
            source: ArithmeticError::Overflow {
                lhs: max - 1,
                rhs: 2,
            },
        });
    given([registered_physical(5, 0)])
        .when(adjust(StockChange::Count(qty(max + 1)), "count"))
        .then_rejected(Rejection::OutOfRange {
            source: ArithmeticError::TooLarge { value: max + 1 },
        });
}

#[test]
fn a_zero_delta_is_rejected() {
    given([registered_physical(5, 0)])
        .when(adjust(StockChange::Delta(0), "nothing"))
        .then_rejected(Rejection::ZeroDelta);
}

#[test]
fn an_adjustment_needs_a_reason_of_bounded_length() {
    for reason in ["", "   ", &"x".repeat(513)] {
        given([registered_physical(5, 0)])
            .when(adjust(StockChange::Delta(1), reason))
            .then_rejected(Rejection::InvalidReason { max: 512 });
    }
}

#[test]
fn an_adjustment_reference_is_bounded() {
    given([registered_physical(5, 0)])
        .when(Command::Adjust(Adjust {
            location: None,
            change: StockChange::Delta(1),
            reason: "receiving".into(),
            reference: Some("r".repeat(257)),
        }))
        .then_rejected(Rejection::InvalidReference { max: 256 });
}

#[test]
fn a_count_below_what_is_reserved_is_accepted_and_names_the_latest_reservations_at_risk() {
    let change = StockChange::Count(qty(3));
    let state = given([
        registered_physical(10, 0),
        reserved(1, 2, secs(1), secs(600)),
        reserved(2, 2, secs(2), secs(600)),
        reserved(3, 2, secs(3), secs(600)),
    ])
    .at(secs(10))
    .when(adjust(change, "cycle count"))
    .then([adjusted(change, 10, 3, "cycle count", &[2, 3], secs(10))]);
    let stock = state.stock().unwrap();
    assert_eq!(stock.shortfall(secs(11)), qty(3));
    assert_eq!(stock.available(secs(11)), Availability::Limited(qty(0)));
}

#[test]
fn a_short_sku_rejects_new_reservations() {
    given([
        registered_physical(10, 0),
        reserved(1, 4, secs(1), secs(600)),
        adjusted(StockChange::Count(qty(3)), 10, 3, "count", &[1], secs(2)),
    ])
    .at(secs(3))
    .when(reserve(2, 1, 60))
    .then_rejected(Rejection::Short { shortfall: qty(1) });
}

#[test]
fn a_short_sku_commits_the_covered_reservations_and_refuses_those_at_risk() {
    let history = [
        registered_physical(10, 0),
        reserved(1, 2, secs(1), secs(600)),
        reserved(2, 2, secs(2), secs(600)),
        adjusted(StockChange::Count(qty(3)), 10, 3, "count", &[2], secs(3)),
    ];
    given(history.clone())
        .at(secs(4))
        .when(commit(2))
        .then_rejected(Rejection::AtRisk {
            reservation_id: rid(2),
        });
    given(history)
        .at(secs(4))
        .when(commit(1))
        .then([committed(1, 2, secs(4))]);
}

#[test]
fn a_sku_stops_being_short_once_enough_reservations_end() {
    let state = given([
        registered_physical(10, 0),
        reserved(1, 2, secs(1), secs(600)),
        reserved(2, 2, secs(2), secs(600)),
        adjusted(StockChange::Count(qty(3)), 10, 3, "count", &[2], secs(3)),
    ])
    .at(secs(4))
    .when(release(2))
    .then([released(2, 2, secs(4))]);
    let stock = state.stock().unwrap();
    assert!(stock.shortfall(secs(5)).is_zero());
    assert_eq!(stock.available(secs(5)), Availability::Limited(qty(1)));
}
