//! Fair selling through the engine on SQLite: a purchase limit per customer holds across
//! many concurrent orders and across a restart in the middle of its window; a waitlist is
//! served first in, first out through expiry storms, each place getting the hold id it
//! was promised, and no newcomer takes freed stock while anyone waits. The independent
//! audit (which re-checks limits and the line from the log) passes every time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::collections::HashMap;
use std::time::Duration;

use stockade_domain::{
    CustomerId, Event, Quantity, Rejection, ReservationId, Sku, Timestamp, WaitlistPlace,
};
use stockade_engine::{Error, FairSelling, Inventory, ManualClock, Origin, ReserveOptions};
use stockade_store::{Position, scan_all};
use stockade_tests::PATIENCE;
use stockade_tests::engine::{checked_log, open_with_clock, register, rejection};

const START: u64 = 1_800_000_000_000;
const DAY: Duration = Duration::from_secs(24 * 3600);

fn customer(name: &str) -> CustomerId {
    CustomerId::new(name).unwrap()
}

fn as_customer(name: &str, ttl: Duration) -> ReserveOptions {
    ReserveOptions {
        ttl: Some(ttl),
        customer: Some(customer(name)),
        ..ReserveOptions::default()
    }
}

async fn limit(inventory: &Inventory, sku: &Sku, per_customer: u64, window: Duration) {
    let rules = FairSelling {
        per_customer: Some(Quantity::new(per_customer)),
        window,
        waitlist_hold: Duration::from_secs(30),
    };
    inventory
        .set_fair_selling(sku, rules, &Origin::default())
        .await
        .unwrap();
}

/// Every event of the log, decoded, in log order.
async fn events(inventory: &Inventory) -> Vec<Event> {
    let mut out = Vec::new();
    scan_all(inventory.store().as_ref(), Position::START, 1024, |r| {
        out.push(stockade_store::codec::decode(r).unwrap().0);
        Ok(())
    })
    .await
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_orders_from_ten_customers_never_pass_a_limit_of_two() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let drop = register(&inventory, "DROP-SNEAKER", 10_000).await;
    limit(&inventory, &drop, 2, 30 * DAY).await;
    // 100 orders per customer, all at once; half of the held ones are bought at once.
    let orders = (0..1000).map(|i| {
        let inventory = inventory.clone();
        let drop = drop.clone();
        async move {
            let who = format!("buyer-{}", i % 10);
            let held = inventory
                .reserve(&drop, Quantity::new(1), as_customer(&who, DAY))
                .await;
            if let Ok(r) = &held
                && i % 2 == 0
            {
                inventory.commit(r.id, &Origin::default()).await.unwrap();
            }
            (who, held)
        }
    });
    let outcomes = futures::future::join_all(orders).await;
    let mut held: HashMap<String, u64> = HashMap::new();
    for (who, outcome) in outcomes {
        match outcome {
            Ok(_) => *held.entry(who).or_default() += 1,
            Err(Error::Rejected {
                rejection:
                    Rejection::PurchaseLimit {
                        limit, remaining, ..
                    },
                ..
            }) => {
                assert_eq!(limit, Quantity::new(2));
                assert_eq!(remaining, Quantity::ZERO, "refused with units left");
            }
            Err(other) => panic!("{who}: {other}"),
        }
    }
    // Exactly two each: the limit, never more, and no refusal while units were left.
    assert_eq!(held.len(), 10);
    assert!(held.values().all(|n| *n == 2), "{held:?}");
    // The log agrees, customer by customer, and passes the audit's own limit check.
    let mut logged: HashMap<CustomerId, u64> = HashMap::new();
    for e in events(&inventory).await {
        if let Event::StockReserved(r) = e {
            *logged.entry(r.customer.unwrap()).or_default() += r.qty.get();
        }
    }
    assert!(logged.values().all(|n| *n == 2), "{logged:?}");
    checked_log(&inventory.store()).await;
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_holds_across_a_restart_in_the_middle_of_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let drop = register(&inventory, "DROP-JACKET", 100).await;
    limit(&inventory, &drop, 2, 7 * DAY).await;
    let bought = inventory
        .reserve(&drop, Quantity::new(2), as_customer("ann", DAY))
        .await
        .unwrap();
    inventory
        .commit(bought.id, &Origin::default())
        .await
        .unwrap();
    // Another customer's holds and history around hers.
    for _ in 0..3 {
        let r = inventory
            .reserve(&drop, Quantity::new(1), as_customer("bob", DAY))
            .await;
        if let Ok(r) = r {
            inventory.commit(r.id, &Origin::default()).await.unwrap();
        }
    }
    inventory.shutdown().await;

    clock.advance(3 * DAY);
    let inventory = open_with_clock(dir.path(), &clock).await;
    let refused = rejection(
        inventory
            .reserve(&drop, Quantity::new(1), as_customer("ann", DAY))
            .await,
    );
    assert!(
        matches!(refused, Rejection::PurchaseLimit { counted, .. } if counted == Quantity::new(2)),
        "{refused:?}"
    );
    let view = inventory
        .fair_selling(&drop, Some(&customer("ann")), 10)
        .await
        .unwrap();
    assert_eq!(view.counted, Some(Quantity::new(2)));
    // Once her purchase leaves the window, she may buy again: after another restart too.
    clock.advance(4 * DAY + Duration::from_secs(1));
    inventory.shutdown().await;
    let inventory = open_with_clock(dir.path(), &clock).await;
    inventory
        .reserve(&drop, Quantity::new(2), as_customer("ann", DAY))
        .await
        .unwrap();
    checked_log(&inventory.store()).await;
    inventory.shutdown().await;
}

/// Waits until no one on `sku`'s waitlist can be served any more (the actor serves after
/// every decision, the expiries included, in the background).
async fn served_until(inventory: &Inventory, sku: &Sku, waiting: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let view = inventory.fair_selling(sku, None, 0).await.unwrap();
        if view.waiting == waiting {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still waiting, expected {waiting}",
            view.waiting
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sells `sku` out to `carts` one-unit holds of a minute, each for a customer of its own.
async fn sold_to_carts(inventory: &Inventory, sku: &Sku, carts: u64) {
    for i in 0..carts {
        inventory
            .reserve(
                sku,
                Quantity::new(1),
                as_customer(&format!("cart-{i}"), Duration::from_secs(60)),
            )
            .await
            .unwrap();
    }
}

/// Puts `fans` customers on `sku`'s waitlist for `qty` each, in order: their places.
async fn line_up(inventory: &Inventory, sku: &Sku, fans: u64, qty: u64) -> Vec<WaitlistPlace> {
    let mut places = Vec::new();
    for i in 0..fans {
        let joined = inventory
            .join_waitlist(
                sku,
                customer(&format!("fan-{i}")),
                Quantity::new(qty),
                &Origin::default(),
            )
            .await
            .unwrap();
        places.push(joined.place);
    }
    places
}

/// The waitlist holds in the log, in log order: (place number, hold id, units).
async fn served(inventory: &Inventory) -> Vec<(u64, ReservationId, Quantity)> {
    events(inventory)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::StockReserved(r) => r.waitlist.map(|n| (n, r.reservation_id, r.qty)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waitlist_is_served_first_in_first_out_through_expiry_storms() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let drop = register(&inventory, "DROP-CONSOLE", 50).await;
    let rules = FairSelling {
        per_customer: Some(Quantity::new(2)),
        window: 30 * DAY,
        waitlist_hold: Duration::from_secs(120),
    };
    inventory
        .set_fair_selling(&drop, rules, &Origin::default())
        .await
        .unwrap();
    // Sold out to 50 carts that will all be abandoned.
    sold_to_carts(&inventory, &drop, 50).await;
    // 40 customers line up for 2 each: 80 units, more than will be freed at once.
    let places = line_up(&inventory, &drop, 40, 2).await;
    let positions: Vec<u64> = places.iter().map(|p| p.position).collect();
    assert_eq!(positions, (1..=40).collect::<Vec<u64>>());
    let promised: Vec<(u64, ReservationId)> =
        places.iter().map(|p| (p.number, p.hold_id)).collect();
    assert!(matches!(
        rejection(
            inventory
                .join_waitlist(
                    &drop,
                    customer("fan-3"),
                    Quantity::new(1),
                    &Origin::default()
                )
                .await
        ),
        Rejection::AlreadyWaiting { position: 4, .. }
    ));
    // Storm one: every cart lapses together; the 50 units go to the first 25 in line.
    clock.advance(Duration::from_secs(61));
    served_until(&inventory, &drop, 15).await;
    // While anyone waits, a newcomer does not get freed stock.
    assert!(matches!(
        rejection(
            inventory
                .reserve(&drop, Quantity::new(1), as_customer("late", DAY))
                .await
        ),
        Rejection::Waitlisted { waiting: 15 }
    ));
    // Storm two: the 25 waitlist holds go unclaimed and lapse; the last 15 get 30 units.
    clock.advance(Duration::from_secs(121));
    served_until(&inventory, &drop, 0).await;
    // The line is empty: 20 units are free for anyone again.
    inventory
        .reserve(&drop, Quantity::new(2), as_customer("late", DAY))
        .await
        .unwrap();

    let served = served(&inventory).await;
    // Everyone served, in line order, each with the hold id they were promised.
    let got: Vec<(u64, ReservationId)> = served.iter().map(|(n, id, _)| (*n, *id)).collect();
    assert_eq!(got, promised);
    assert!(served.iter().all(|(_, _, q)| *q == Quantity::new(2)));
    let report = checked_log(&inventory.store()).await;
    assert_eq!(report.expired, 75, "50 carts and 25 waitlist holds lapsed");
    inventory.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_that_lapse_while_the_engine_is_down_go_to_the_line_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(START));
    let inventory = open_with_clock(dir.path(), &clock).await;
    let drop = register(&inventory, "DROP-LAMP", 3).await;
    sold_to_carts(&inventory, &drop, 3).await;
    let promised: Vec<ReservationId> = line_up(&inventory, &drop, 4, 1)
        .await
        .iter()
        .map(|p| p.hold_id)
        .collect();
    inventory.shutdown().await;

    // The carts lapse while nothing runs; the line is served when the SKU wakes.
    clock.advance(Duration::from_secs(90));
    let inventory = open_with_clock(dir.path(), &clock).await;
    served_until(&inventory, &drop, 1).await;
    let served: Vec<ReservationId> = served(&inventory)
        .await
        .iter()
        .map(|(_, id, _)| *id)
        .collect();
    assert_eq!(served, promised[..3]);
    let place = inventory
        .fair_selling(&drop, Some(&customer("fan-3")), 0)
        .await
        .unwrap()
        .place
        .unwrap();
    assert_eq!(place.position, 1);
    checked_log(&inventory.store()).await;
    inventory.shutdown().await;
}
