use crate::command::{Command, RegisterSku, StockChange};
use crate::pool::PoolConfig;
use crate::rejection::Rejection;
use crate::testing::*;

fn register(pool: PoolConfig) -> Command {
    Command::RegisterSku(RegisterSku { sku: sku(), pool })
}

#[test]
fn registering_a_new_sku_records_its_pool() {
    let pool = PoolConfig::Physical {
        locations: Vec::new(),
        on_hand: qty(10),
        safety_stock: qty(2),
    };
    given([])
        .when(register(pool.clone()))
        .then([registered(pool)]);
}

#[test]
fn registering_twice_is_rejected() {
    given([registered_physical(1, 0)])
        .when(register(PoolConfig::Digital {
            license_limit: None,
        }))
        .then_rejected(Rejection::AlreadyRegistered { sku: sku() });
}

#[test]
fn a_print_on_demand_period_of_zero_is_rejected() {
    let outcome = given([]).when(register(PoolConfig::PrintOnDemand {
        capacity: qty(5),
        period_millis: 0,
    }));
    outcome.then_rejected(Rejection::InvalidPool {
        reason: "a print-on-demand period must be at least 1 ms".into(),
    });
}

#[test]
fn every_other_command_on_an_unregistered_sku_is_rejected() {
    for command in [
        reserve(1, 1, 60),
        commit(1),
        release(1),
        expire(1),
        adjust(StockChange::Delta(5), "receiving"),
    ] {
        given([]).when(command).then_rejected(Rejection::UnknownSku);
    }
}
