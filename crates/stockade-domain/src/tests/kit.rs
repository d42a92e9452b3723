//! A kit: a definition on its own stream; its components are held in its place.

use crate::command::{Command, RegisterSku, StockChange};
use crate::ids::Sku;
use crate::pool::{Component, MAX_COMPONENTS, PoolConfig, PoolKind};
use crate::rejection::Rejection;
use crate::testing::*;

fn component(name: &str, n: u64) -> Component {
    Component {
        sku: Sku::new(name).unwrap(),
        qty: qty(n),
    }
}

fn kit(components: Vec<Component>) -> PoolConfig {
    PoolConfig::Kit { components }
}

fn register(pool: PoolConfig) -> Command {
    Command::RegisterSku(RegisterSku { sku: sku(), pool })
}

fn invalid(reason: &str) -> Rejection {
    Rejection::InvalidPool {
        reason: reason.into(),
    }
}

#[test]
fn a_kit_is_registered_with_its_components() {
    let pool = kit(vec![component("MUG", 2), component("TEA", 1)]);
    given([])
        .when(register(pool.clone()))
        .then([registered(pool)]);
}

#[test]
fn a_kit_needs_distinct_components_of_one_unit_or_more_and_never_itself() {
    let cases = [
        (kit(vec![]), invalid("a kit needs 1-50 components")),
        (
            kit(vec![component("MUG", 0)]),
            invalid("component MUG needs a quantity of at least 1"),
        ),
        (
            kit(vec![component("MUG", 1), component(sku().as_str(), 1)]),
            invalid(&format!("kit {} cannot contain itself", sku())),
        ),
        (
            kit(vec![component("MUG", 1), component("MUG", 2)]),
            invalid("component MUG is listed twice; list it once with the total quantity"),
        ),
        (
            kit((0..=MAX_COMPONENTS)
                .map(|i| component(&format!("C{i}"), 1))
                .collect()),
            invalid("a kit needs 1-50 components"),
        ),
    ];
    for (pool, rejection) in cases {
        given([]).when(register(pool)).then_rejected(rejection);
    }
}

#[test]
fn a_kit_holds_nothing_and_has_nothing_to_adjust() {
    let pool = kit(vec![component("MUG", 2)]);
    given([registered(pool.clone())])
        .when(reserve(1, 1, 60))
        .then_rejected(Rejection::UnsupportedForPool {
            pool: PoolKind::Kit,
            what: "be held itself (an order for a kit holds its components)".into(),
        });
    given([registered(pool)])
        .when(adjust(StockChange::Delta(5), "receiving"))
        .then_rejected(Rejection::UnsupportedForPool {
            pool: PoolKind::Kit,
            what: "be adjusted (its stock is its components')".into(),
        });
}

#[test]
fn a_stream_that_holds_stock_on_a_kit_is_inconsistent() {
    let pool = kit(vec![component("MUG", 2), component("TEA", 1)]);
    let mut state = crate::state::SkuState::default();
    state.apply(&registered(pool)).unwrap();
    assert_eq!(
        state.apply(&reserved(1, 1, secs(1), secs(60))),
        Err(crate::rejection::Inconsistency::NotHoldable(PoolKind::Kit))
    );
    let view = state.stock().unwrap().view(secs(2));
    assert_eq!(view.pool, PoolKind::Kit);
    assert_eq!(
        view.components,
        vec![component("MUG", 2), component("TEA", 1)]
    );
    assert_eq!(view.limit, None);
}
