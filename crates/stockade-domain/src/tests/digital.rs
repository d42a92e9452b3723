use crate::command::StockChange;
use crate::pool::{PoolConfig, PoolKind};
use crate::quantity::ArithmeticError;
use crate::rejection::Rejection;
use crate::state::Availability;
use crate::testing::*;

fn unlimited() -> crate::event::Event {
    registered(PoolConfig::Digital {
        license_limit: None,
    })
}

fn licensed(limit: u64) -> crate::event::Event {
    registered(PoolConfig::Digital {
        license_limit: Some(qty(limit)),
    })
}

#[test]
fn an_unlimited_pool_always_has_availability() {
    let state = given([unlimited()])
        .when(reserve(1, 1_000_000, 60))
        .then([reserved(1, 1_000_000, secs(0), secs(60))]);
    assert_eq!(
        state.stock().unwrap().available(secs(1)),
        Availability::Unlimited
    );
}

#[test]
fn an_unlimited_pool_rejects_holds_that_would_overflow() {
    let max = i64::MAX as u64;
    given([unlimited(), reserved(1, max - 1, secs(0), secs(60))])
        .when(reserve(2, 2, 60))
        .then_rejected(Rejection::OutOfRange {
            source: ArithmeticError::Overflow {
                lhs: max - 1,
                rhs: 2,
            },
        });
}

#[test]
fn an_unlimited_pool_cannot_be_adjusted() {
    given([unlimited()])
        .when(adjust(StockChange::Delta(5), "more"))
        .then_rejected(Rejection::UnsupportedForPool {
            pool: PoolKind::Digital,
            what: "be adjusted (it has no limit)".into(),
        });
}

#[test]
fn sold_licenses_keep_counting_against_the_limit() {
    given([
        licensed(3),
        reserved(1, 2, secs(0), secs(60)),
        committed(1, 2, secs(1)),
    ])
    .at(secs(2))
    .when(reserve(2, 2, 60))
    .then_rejected(Rejection::InsufficientStock {
        requested: qty(2),
        available: qty(1),
    });
}

#[test]
fn raising_the_license_limit_makes_room() {
    let change = StockChange::Delta(2);
    let state = given([licensed(3), reserved(1, 3, secs(0), secs(60))])
        .at(secs(1))
        .when(adjust(change, "bought more seats"))
        .then([adjusted(change, 3, 5, "bought more seats", &[], secs(1))]);
    assert_eq!(
        state.stock().unwrap().available(secs(1)),
        Availability::Limited(qty(2))
    );
}

#[test]
fn a_license_limit_below_sold_plus_reserved_turns_the_sku_short() {
    let change = StockChange::Count(qty(2));
    given([
        licensed(5),
        reserved(1, 1, secs(0), secs(60)),
        committed(1, 1, secs(1)),
        reserved(2, 2, secs(2), secs(60)),
    ])
    .at(secs(3))
    .when(adjust(change, "license audit"))
    .then([adjusted(change, 5, 2, "license audit", &[2], secs(3))]);
}
